// Package kernel is the ipsec.Backend that installs TS 33.203 SA sets as
// Linux XFRM states and policies over netlink (NETLINK_XFRM), in the calling
// process's network namespace or in one named by Config.NetNS.
//
// # What one SA set becomes
//
// Each of the four SAs of an ipsec.SASet becomes one ESP transport-mode state
// (replay window SA.Replay; hard add-expiry SA.Lifetime, soft at 90 %;
// hmac(md5) or hmac(sha1) truncated to 96 bits; cbc(aes), cbc(des3_ede) or
// ecb(cipher_null)) and one policy (dir out for an outbound SA, dir in for an
// inbound one). Selectors hold the address pair as /32 or /128 and both ports
// but no protocol, so UDP and TCP between the same ports share one SA, as
// Kamailio and OpenSIPS do; the state carries the same selector. The policy's
// template names the SA by SPI and by the set's reqid.
//
// A set is installed as a unit: states first, then policies, so that no
// policy points at a state that is not there yet; on any error everything
// the call created is removed before the error is returned. Removal deletes
// the states first: a flow whose policy remains while its state is gone is
// dropped by the kernel, never sent in clear.
//
// # Ownership
//
// Everything imsue installs carries a reqid in the reserved range
// [ReqIDMin, ReqIDMax] (0x494d0001–0x494dffff; 0x494d is "IM"): the states'
// reqid and the reqid of every policy's template. One reqid names one set.
// IKE daemons allocate reqids counting up from small numbers (strongSwan from
// 1, Libreswan from 16384) and `ip xfrm` users type small numbers, so the
// range does not meet theirs in practice. List and Flush look at nothing
// outside it, so other programs' SAs and policies in the same namespace are
// never touched. Marks were rejected as the tag because a mark changes which
// packets a state or policy matches; policy priority was rejected because
// the templates already carry the reqid and a priority is a tunable, not an
// identity.
//
// Beside the kernel objects, a state record per set lives in
// Config.StateDir (default /run/imsue; a directory only this user can write,
// files 0600). It names the network namespace (device and inode of its nsfs
// file), the reqid, the owning process (PID and start time, so that a reused
// PID is not mistaken for the owner) and the SAs' addresses and SPIs, never
// keys. The record appears atomically before the first netlink request and
// goes after the last deletion, so a SIGKILL at any point leaves nothing, a
// record, or a record and tagged kernel objects, and Flush finds all of
// these. Flush(FlushStale), which a starting imsue calls, removes only the
// sets whose owner is gone (or that have no record at all), so two imsue
// processes, or the UE and the lab P-CSCF in one process, never remove each
// other's sets; Flush(FlushAll), behind `imsue sa flush`, removes every imsue
// set in the namespace.
//
// # Errors
//
// Every error is an *Error naming the operation and the object (never a
// key). Errors that mean this host cannot do kernel ESP also wrap
// ipsec.ErrUnsupported and say what is missing and that --ipsec none exists: a
// kernel without ESP (EPROTONOSUPPORT, "Requested type not found"), without the
// algorithm (ENOSYS/ENOENT, e.g. no DES), without XFRM netlink, or a process
// without CAP_NET_ADMIN.
package kernel
