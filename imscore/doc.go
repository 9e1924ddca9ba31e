// Package imscore is a lab IMS core: the P-CSCF, S-CSCF and HSS of one home
// network in one process, for `imsue core`, `imsue demo` and the tests of
// the UE side. It behaves as a correct network does, so that a UE that
// registers here also registers with a real core, and it can be told to
// misbehave (Faults) so that every failure path of a UE can be exercised.
//
// # Roles
//
// The three roles have their own types, state and locks, and talk through
// the interfaces a real deployment has between them. No role does I/O
// under its lock (sending, installing or removing SAs, dialling, handing a
// message to another role): the decision is taken under the lock and the
// I/O queued to run once it is released. Every goroutine and timer
// callback is waited for by Close.
//
// The HSS (type hss) keeps each subscriber's SQN_HE (SEQ‖IND, 5 IND bits, a
// fixed IND, SEQ incremented per vector), generates MILENAGE vectors with a
// random RAND, and resynchronises from AUTS after checking MAC-S (TS 33.102
// §6.3). The S-CSCF reaches it through hssClient, shaped like Cx (TS 29.229
// §6.1): authorize (UAR/UAA) and vectors (MAR/MAA, with the resynchronisation
// data of TS 29.228 §6.3.3), without holding its lock, as it will once
// Cx is a wire. Faults that alter vectors (BadMAC, StaleSQN) are applied by
// the HSS.
//
// The S-CSCF (type scscf) challenges with Digest AKAv1-MD5 or AKAv2-MD5
// (RFC 3310, RFC 4169) or plain MD5 digest, checks responses (qop auth,
// auth-int or none), registers contacts and answers with P-Associated-URI,
// Service-Route and Path, serves the reg event package (RFC 3680) and
// de-registers on request of the UE, on expiry, or from the network
// (Deregister, Reject, Reauthenticate). It knows nothing of SAs: it learns
// what the P-CSCF knows from the SIP messages (Path, the integrity-protected
// parameter of Authorization, P-Asserted-Identity), and its 401s carry ck
// and ik for the P-CSCF. Every decision it makes where the specifications
// leave a choice is listed at the top of scscf.go and regevent.go.
//
// The P-CSCF (type pcscf) does RFC 3329 sec-agree with the TS 33.203
// parameters: it answers the Security-Client with its Security-Server, plans
// its mirror of the UE's four SAs (mt.PlanPCSCF) and installs them through
// Config.IPsec before the 401 leaves, admits only REGISTER on the
// unprotected port and only the flows of live SA sets on the protected
// server port, checks Security-Verify and that the protected REGISTER came
// from port_uc to port_ps, and keeps old and new SA sets across
// re-registrations (TS 33.203 §7.4). Its decisions are listed at the top of
// pcscf.go.
//
// Between the P-CSCF and the S-CSCF (Mw) travel SIP messages: the P-CSCF
// hands each request on as a *sip.Request with its Path and, in
// Authorization, integrity-protected = "yes" (over an established SA set),
// "ip-assoc-pending" (over a temporary one) or "no" (TS 24.229 §5.2.2.1,
// §5.4.1.2.1), and relays the *sip.Response: from a 401 it strips ck and ik
// and installs the temporary set, from a 200 it promotes that set, from the
// 200 to a de-REGISTER it drops the UE's sets after the response left, from
// a 403 it drops the temporary set. The S-CSCF's NOTIFYs reach the UE
// through the P-CSCF (the Path hop), over the UE's established SA set, and
// the P-CSCF learns of registrations the network ended as a P-CSCF
// subscribed to the reg event does (TS 24.229 §5.2.3). These wires are
// in-process: Go interfaces (scscfPeer, pcscfPeer, hssClient) whose payload
// is SIP messages and vectors.
//
// With CKIKInChallenge the core is the S-CSCF and HSS alone behind an
// external P-CSCF: the ck and ik stay in the 401, and the P-CSCF type only
// relays requests on Addr and sends NOTIFYs to the Path's first hop.
//
// # Ports
//
//	Config.Addr  unprotected, UDP and TCP: initial REGISTERs
//	port_ps      protected server port, one per core (Config.PortPS)
//	port_pc      protected client port, a new one per SA set
//
// UDP responses to protected requests leave from port_pc towards the UE's
// port_us; the core's own requests (NOTIFY) leave from port_pc with port_ps
// in their Via, so that the UE answers from port_uc to port_ps. Over TCP
// responses travel on the request's connection and the core's requests on
// a connection it opens from port_pc to port_us.
//
// The core runs its own small SIP transport and transaction layer on
// sipgo's message parser and types: a P-CSCF must choose the source port of
// each message, which sipgo's transport layer cannot express. Server
// transactions absorb retransmissions (one 401 and one SA set per initial
// REGISTER however often it is retransmitted); client transactions
// retransmit NOTIFYs over UDP until Timer F.
//
// # Secrets
//
// K, OPc, CK and IK never appear in logs, errors or snapshots; with
// CKIKInChallenge the ck and ik parameters are redacted from the SIP trace.
package imscore
