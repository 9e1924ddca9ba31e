// Package sipnet is imsue's one SIP transport and non-INVITE transaction
// layer, used by the UE (sipclient) and the lab core (imscore) alike. The
// messages are sipgo's (github.com/emiago/sipgo/sip); the sockets, framing,
// retransmission timers and tracing are this package's.
//
// sipgo's own transport and transaction layers do not fit TS 33.203
// sec-agree, for reasons each of which has a test here:
//
//   - every message leaves from a port the caller names: the UE sends from
//     its unprotected port or port_uc and answers from port_uc, the P-CSCF
//     sends from port_pc (TS 33.203 §7.1). sipgo picks connections from
//     pools keyed by one address and, with a fixed local port, looks TCP
//     connections up by the local address only, so a request could leave on
//     a connection to the wrong peer. Here UDP sockets are keyed by their
//     local address and TCP connections by (local, remote);
//   - re-dialling TCP from a fixed port (5060, port_uc, port_pc) needs
//     SO_REUSEADDR, and dialling from a port that also listens needs
//     SO_REUSEPORT; sipgo's dialer sets neither;
//   - sipgo refuses UDP messages over 1300 bytes; here the size rule of
//     RFC 3261 §18.1.1 is the client transaction's (Route.MaxUDP), with a
//     fall back to UDP when TCP is refused;
//   - sipgo's timers (sip.T1, Timer_F) and its tracer are process-global;
//     here each Transport has its own Timers and PacketSinks, so a UE with
//     TS 24.229's timers and a lab core with fast ones share one process.
//
// The sockets come from a Net (the boundary, like wireguard-go's
// conn.Bind): Kernel for real sockets, memnet for an in-memory network on
// which loss, duplication and reordering are deterministic.
package sipnet
