package sipclient

import (
	"context"
	"errors"
	"net/netip"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/sipnet"
)

// This file is the UE's use of the transaction layer (sipnet): how its
// requests leave, and how it answers the P-CSCF's requests.

// route says how a request from the UE leaves: from local port from (TCP:
// 0 is ephemeral) to dst, with the RFC 3261 §18.1.1 size rule.
func (c *Client) route(network string, from uint16, to netip.AddrPort) sipnet.Route {
	return sipnet.Route{Network: network, From: netip.AddrPortFrom(c.local, from), To: to, MaxUDP: c.s.maxUDP}
}

// transact runs one non-INVITE client transaction (sipnet.Transport.Request):
// retransmissions over UDP, Timer F, the size rule. Responses that arrive
// after it returned (retransmissions of the final response) match no
// transaction and are dropped: the UE acts on a retransmitted 401 only once.
func (c *Client) transact(ctx context.Context, req *sip.Request, rt sipnet.Route) (*sipnet.Inbound, error) {
	return c.tp.Request(ctx, req, rt)
}

// onRequest is the transport's handler: a request from the network.
func (c *Client) onRequest(in *sipnet.Inbound) {
	req := in.Msg.(*sip.Request)
	if req.IsAck() {
		return // ACK to a non-2xx final response: absorbed
	}
	if req.Via() == nil || req.CSeq() == nil || req.CallID() == nil || req.From() == nil || req.To() == nil {
		c.malformed.Add(1) // cannot even be answered (RFC 3261 §8.1.1 minimum)
		return
	}
	if !c.tp.Begin(req) {
		return // a retransmission: answered again by its server transaction
	}

	// Only a request that came over a live SA set is acted on and answered:
	// the P-CSCF sends its requests over the SAs (TS 33.203 §7.1), and any
	// answer outside them would leave in clear. A NOTIFY can cross the
	// removal of its set, for instance the reg-event NOTIFY of a
	// de-registration over TCP, on a connection that outlives the SAs.
	id, ok := c.arrivedOver(in)
	if !ok {
		c.unanswered.Add(1)
		c.s.log.Info("request not over a live SA set: not answered", "method", req.Method,
			"network", in.Network, "from", in.Remote, "to", in.Local)
		return
	}
	res := c.answer(in, req)
	rt := c.responder(in, req)
	rt.Gate = c.overSet(id)
	if err := c.tp.Respond(req, res, rt); err != nil {
		c.s.log.Info("sending response failed", "method", req.Method, "err", err)
	}
}

// responder returns how to send responses to req. TCP: on the connection
// it came in on. UDP: to the top Via's sent-by (RFC 3261 §18.2.2, with
// received/rport honoured), from the current protected client port when the
// UE has SAs (TS 33.203 §7.1: each side sends everything from its client
// port), else from the socket it arrived on.
func (c *Client) responder(in *sipnet.Inbound, req *sip.Request) sipnet.Route {
	if in.Conn != nil {
		return sipnet.Route{Conn: in.Conn}
	}
	from := in.Local.Port()
	if uc := uint16(c.respPort.Load()); uc != 0 {
		from = uc
	}
	return sipnet.Route{Network: "udp", From: netip.AddrPortFrom(c.local, from), To: sipnet.ViaDestination(req.Via(), in.Remote)}
}

// errSetRemoved: the response was not sent because the SA set its request
// arrived over is being removed.
var errSetRemoved = errors.New("not sent: the SA set the request arrived over is being removed")

// overSet is the send gate of the answer to a request that arrived over set
// id: the response leaves only while the set is installed and not
// withdrawn, so that a request racing the set's removal (a NOTIFY crossing
// the 200 of the de-REGISTER) is never answered in clear. It holds for
// every resend of the answer too.
func (c *Client) overSet(id uint64) func(send func() error) error {
	return func(send func() error) error {
		c.sendMu.RLock()
		defer c.sendMu.RUnlock()
		if !c.live(id) {
			return errSetRemoved
		}
		return send()
	}
}

// live reports whether set id is installed and its removal has not begun.
func (c *Client) live(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.installed[id] != nil && !c.withdrawn[id]
}

// answer builds the UE's response to a request from the network and hands
// reg-event NOTIFYs to Run.
func (c *Client) answer(in *sipnet.Inbound, req *sip.Request) *sip.Response {
	switch req.Method {
	case sip.NOTIFY:
		if ev := c.acceptNotify(in, req); ev != nil {
			select {
			case c.events <- ev:
			default:
				c.s.log.Warn("reg-event NOTIFY dropped: Run is not keeping up")
			}
			return sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		}
		return sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist", nil)
	case sip.OPTIONS:
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", "NOTIFY, OPTIONS"))
		return res
	default:
		res := sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", "NOTIFY, OPTIONS"))
		return res
	}
}
