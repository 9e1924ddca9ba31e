// Package kamailio holds imsue's interoperability tests against a real
// P-CSCF: Kamailio 5.6 with ims_ipsec_pcscf, installing kernel ESP SAs, in
// the User-Mode Linux guest that test/uml/run boots (the build machines'
// kernels have no ESP).
//
// The lab (test/uml/netlab): imsue runs in network namespace "ue", Kamailio
// in "pcscf" (started by kamailio-pcscf from pcscf.cfg.in), and the lab core
// (imscore with CKIKInChallenge, a bare S-CSCF and HSS) behind Kamailio on
// 127.0.0.1 inside "pcscf", in the test process. Every registration uses its
// own UE address, because Kamailio keeps the pending contact of an initial
// REGISTER for 30 s and would echo its stale parameters to a new
// registration from the same IP and port.
//
// The package has no API; its tests skip outside the guest. Run them with
//
//	test/uml/run ./test/interop/kamailio
package kamailio
