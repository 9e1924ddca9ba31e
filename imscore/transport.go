package imscore

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/sipnet"
)

// The core's SIP transport is sipnet, the one the UE uses. What is the
// core's own here is the P-CSCF's view of its ports: which role each port
// plays (TS 33.203 §7.1: the unprotected port, port_ps shared by every UE,
// one port_pc per SA set), and the choice of the port every message leaves
// from: responses to a protected UDP request leave from port_pc towards the
// UE's port_us, not from the port the request came in on, and requests to
// the UE leave from port_pc of the SA set in use.

// dialTimeout bounds a TCP connection the P-CSCF opens to a UE's port_us.
const dialTimeout = 3 * time.Second

// portRole says what traffic a local port carries.
type portRole uint8

const (
	roleUnprotected portRole = iota + 1 // initial REGISTERs (Config.Addr)
	roleServer                          // port_ps: protected requests from the UEs' port_uc
	roleClient                          // port_pc of one SA set: the core's requests, UDP responses
)

func (r portRole) String() string {
	switch r {
	case roleUnprotected:
		return "unprotected"
	case roleServer:
		return "port_ps"
	case roleClient:
		return "port_pc"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// endpoint is one local port number, bound for UDP and TCP, with its role.
type endpoint struct {
	role   portRole
	addr   netip.AddrPort // as bound; the IP may be unspecified
	set    *secSet        // roleClient: the SA set the port belongs to
	closed atomic.Bool
}

// inbound is one received message with the endpoint it arrived on.
type inbound struct {
	msg       sip.Message
	ep        *endpoint
	transport string // "UDP" or "TCP"
	remote    netip.AddrPort
	conn      *sipnet.Conn // TCP only
}

// route says how to send one message.
type route = sipnet.Route

// udpRoute sends from the endpoint's socket to dst.
func udpRoute(ep *endpoint, dst netip.AddrPort) route {
	return route{Network: "udp", From: ep.addr, To: dst}
}

// tcpRoute sends on a connection.
func tcpRoute(c *sipnet.Conn) route { return route{Conn: c} }

// transportOf is the Via transport token of a route.
func transportOf(r route) string {
	if r.Conn != nil {
		return "TCP"
	}
	return strings.ToUpper(r.Network)
}

// bindEndpoint binds a port (0: a free one) for UDP and TCP and serves it.
// port_pc is shared: the P-CSCF dials TCP from it while it listens.
func (c *Core) bindEndpoint(port uint16, role portRole) (*endpoint, error) {
	a, err := c.tp.Bind(netip.AddrPortFrom(c.bindIP, port), role == roleClient)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{role: role, addr: a}
	c.epMu.Lock()
	c.eps[a.Port()] = ep
	c.epMu.Unlock()
	return ep, nil
}

// closeEndpoint releases the port and every connection on it.
func (c *Core) closeEndpoint(ep *endpoint) {
	if ep == nil || !ep.closed.CompareAndSwap(false, true) {
		return
	}
	c.epMu.Lock()
	if c.eps[ep.addr.Port()] == ep {
		delete(c.eps, ep.addr.Port())
	}
	c.epMu.Unlock()
	c.tp.Release(ep.addr)
}

// receive is the transport's handler: it finds the endpoint a request
// arrived on and dispatches it.
func (c *Core) receive(in *sipnet.Inbound) {
	<-c.ready
	ep := c.endpointOf(in)
	if ep == nil {
		c.log.Debug("request on a port being released", "port", in.Local.Port(), "from", in.Remote)
		return
	}
	c.handleRequest(c.inbound(in, ep), in.Msg.(*sip.Request))
}

func (c *Core) endpointOf(in *sipnet.Inbound) *endpoint {
	c.epMu.Lock()
	defer c.epMu.Unlock()
	return c.eps[in.Local.Port()]
}

func (c *Core) inbound(in *sipnet.Inbound, ep *endpoint) inbound {
	return inbound{msg: in.Msg, ep: ep, transport: strings.ToUpper(in.Network), remote: in.Remote, conn: in.Conn}
}

// dialFrom opens (or reuses) the TCP connection from the endpoint's port
// to dst: the P-CSCF's requests over TCP leave from port_pc (TS 33.203
// §7.1).
func (c *Core) dialFrom(ep *endpoint, local netip.Addr, dst netip.AddrPort) (*sipnet.Conn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, dialTimeout)
	defer cancel()
	return c.tp.Dial(ctx, netip.AddrPortFrom(local, ep.addr.Port()), dst)
}

// finalize puts Content-Length last (a stream transport needs it, RFC 3261
// §18.3). It is called once per message, before the message is shared.
func finalize(msg sipnet.Editable) { sipnet.SetContentLength(msg) }

// send writes one message along r, outside any transaction.
func (c *Core) send(r route, msg sip.Message) error {
	if err := c.tp.SendMsg(c.ctx, r, msg); err != nil {
		c.log.Warn("send failed", "route", r.String(), "err", err)
		return fmt.Errorf("send %s: %w", r, err)
	}
	return nil
}

// logSink logs every SIP message at debug level, keys redacted.
type logSink struct{ log *slog.Logger }

func (s logSink) WritePacket(p sipnet.Packet) error {
	dir := "sip recv"
	if p.Sent {
		dir = "sip send"
	}
	s.log.Debug(dir, "transport", strings.ToUpper(p.Network), "local", p.Local, "remote", p.Remote, "msg", string(sipnet.Redact(p.Data)))
	return nil
}

func hostOf(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// removeHeader removes every header named name (sipgo's RemoveHeader
// matches the exact spelling only).
func removeHeader(msg sip.Message, name string) {
	type remover interface {
		RemoveHeader(string) bool
		Headers() []sip.Header
	}
	r, ok := msg.(remover)
	if !ok {
		return
	}
	for {
		found := ""
		for _, h := range r.Headers() {
			if strings.EqualFold(h.Name(), name) {
				found = h.Name()
				break
			}
		}
		if found == "" || !r.RemoveHeader(found) {
			return
		}
	}
}

// acceptResponse is the Accept of the core's client transactions: the
// P-CSCF's rule (pcscf.acceptResponse).
func (c *Core) acceptResponse(in *sipnet.Inbound) bool { return c.p.acceptResponse(in) }

// retransmission reports whether req repeats a request being or already
// answered (its server transaction resends the final response, and the
// transport counts it), so that it is not acted on again: one 401, one SA
// set. It may send: call it without a role's lock.
func (c *Core) retransmission(req *sip.Request) bool { return !c.tp.Begin(req) }

// handleRequest admits a request according to the port it arrived on.
func (c *Core) handleRequest(in inbound, req *sip.Request) {
	if req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		c.stats.malformed.Add(1)
		c.log.Info("discarding request without Via, From, To, Call-ID or CSeq", "from", in.remote)
		return
	}
	if req.IsAck() {
		return // no INVITE transactions here
	}
	req.SetSource(in.remote.String())
	req.SetTransport(in.transport)
	if c.cfg.Faults.drop(string(req.Method)) {
		c.log.Info("fault: dropping request", "method", req.Method, "from", in.remote)
		return
	}
	switch in.ep.role {
	case roleUnprotected:
		c.p.onUnprotected(in, req)
	case roleServer:
		c.p.onProtected(in, req)
	default:
		c.discard(in, req, "request sent to port_pc")
	}
}

func (c *Core) discard(in inbound, req *sip.Request, why string) {
	c.stats.discarded.Add(1)
	c.log.Info("discarding request", "method", req.Method, "from", in.remote, "transport", in.transport, "port", in.ep.addr.Port(), "reason", why)
}
