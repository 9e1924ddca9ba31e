// Package esp holds the end-to-end proof that an IMS registration really
// goes through kernel ESP (issue 4). It has no API: its tests run inside the
// User-Mode Linux guest that test/uml/run boots (the build machines' kernel
// has no ESP), with the real `imsue register` binary in network namespace
// "ue" and the lab core (imscore, with the kernel backend installing the
// P-CSCF's mirror SAs) in namespace "pcscf", joined by netlab's veth.
//
// In the guest the tests check, for every integrity × encryption pair, UDP
// and TCP, IPv4 and IPv6: the XFRM counters of the SAs whose selectors match
// the protected REGISTER and its 200 OK moved on both sides; the UE's
// outgoing frames after the 401 are ESP (no cleartext SIP); the transport the
// UE chose. They also check re-registration (a new SA set carries the
// traffic, the old one goes), that the P-CSCF does not accept cleartext once
// the UE's SAs are gone, and that nothing of imsue is left in the kernel
// after a normal exit, SIGINT, SIGTERM, or SIGKILL followed by `imsue sa
// flush` or by the next `imsue register`, while a foreign SA added with
// `ip xfrm` survives.
//
// On the host, TestUMLHostTshark gives tshark each case's capture and the
// --esp-keys file imsue wrote, and requires it to decrypt the protected
// REGISTER and its 200 OK.
package esp
