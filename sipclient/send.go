package sipclient

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

// This file is the transaction layer of the UE (RFC 3261 §17): non-INVITE
// client transactions with UDP retransmission and Timer F, and a minimal
// server side that answers the P-CSCF's requests and absorbs their
// retransmissions. Its timers come from the Client's Config (T1), not from
// sipgo's process-wide variables.

// t2 caps the non-INVITE retransmission interval (RFC 3261 §17.1.2.2).
const t2 = 4 * time.Second

// route says how a request leaves the UE and where it goes.
type route struct {
	network string         // "udp" or "tcp"
	from    uint16         // local port it leaves from; 0 is ephemeral (TCP only)
	to      netip.AddrPort // destination
}

func (r route) String() string {
	return fmt.Sprintf("%s %d->%s", strings.ToUpper(r.network), r.from, r.to)
}

type clientTx struct {
	final chan *inbound // the first final response
	prov  chan struct{} // a provisional response arrived
}

func txKey(branch string, method sip.RequestMethod) string {
	return branch + " " + string(method)
}

// transact runs one non-INVITE client transaction: it sends req along rt and
// returns the first final response. Over UDP it retransmits at T1, 2·T1, ...
// capped at T2 (RFC 3261 §17.1.2.2); in every case it gives up after Timer F
// with a *TimeoutError. A request larger than MaxUDPSize that would go over
// UDP goes over TCP instead, with the top Via changed (RFC 3261 §18.1.1);
// if the connection is refused, it goes over UDP after all.
//
// Responses that arrive after transact returned (retransmissions of the
// final response) match no transaction and are dropped: the UE acts on a
// retransmitted 401 only once.
func (c *Client) transact(ctx context.Context, req *sip.Request, rt route) (*inbound, error) {
	method := string(req.Method)
	via := req.Via()
	if via == nil {
		return nil, fmt.Errorf("%s: request without Via", method)
	}
	branch, _ := via.Params.Get("branch")
	key := txKey(branch, req.Method)

	network := rt.network
	data := []byte(req.String())
	var conn *tcpConn
	if network == "udp" && c.s.maxUDP > 0 && len(data) > c.s.maxUDP {
		via.Transport = "TCP"
		cn, err := c.tp.dialTCP(ctx, rt.from, rt.to)
		if err == nil {
			network, conn, data = "tcp", cn, []byte(req.String())
			c.s.log.Debug("request over the UDP size limit: sent over TCP", "method", method, "bytes", len(data), "limit", c.s.maxUDP)
		} else {
			via.Transport = "UDP"
			c.s.log.Info("request over the UDP size limit, TCP refused: sent over UDP", "method", method, "bytes", len(data), "err", err)
		}
	} else if network == "tcp" {
		cn, err := c.tp.dialTCP(ctx, rt.from, rt.to)
		if err != nil {
			if localAddrError(err) {
				return nil, fmt.Errorf("%s: %w: %w", method, ErrLocalAddress, err)
			}
			return nil, &TransportError{Method: method, Err: err}
		}
		conn = cn
	}

	tx := &clientTx{final: make(chan *inbound, 1), prov: make(chan struct{}, 1)}
	c.mu.Lock()
	if _, dup := c.txs[key]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: branch %s already in use", method, branch)
	}
	c.txs[key] = tx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.txs, key)
		c.mu.Unlock()
	}()

	send := func() error {
		if conn != nil {
			return conn.write(data)
		}
		return c.tp.sendUDP(rt.from, rt.to, data)
	}
	if err := send(); err != nil {
		return nil, &TransportError{Method: method, Err: err}
	}

	timerF := time.NewTimer(c.s.timerF())
	defer timerF.Stop()
	var retransmit <-chan time.Time
	interval := c.s.t1
	var rtimer *time.Timer
	if conn == nil {
		rtimer = time.NewTimer(interval)
		defer rtimer.Stop()
		retransmit = rtimer.C
	}
	var connDone <-chan struct{}
	if conn != nil {
		connDone = conn.done
	}
	proceeding := false
	for {
		select {
		case in := <-tx.final:
			return in, nil
		case <-tx.prov:
			proceeding = true
		case <-retransmit:
			if err := send(); err != nil {
				c.s.log.Debug("retransmission failed", "method", method, "err", err)
			}
			interval = min(2*interval, max(t2, c.s.t1))
			if proceeding {
				interval = max(t2, c.s.t1)
			}
			rtimer.Reset(interval)
		case <-timerF.C:
			return nil, &TimeoutError{Method: method, After: c.s.timerF()}
		case <-connDone:
			select {
			case in := <-tx.final:
				return in, nil
			default:
			}
			return nil, &TransportError{Method: method, Err: fmt.Errorf("connection %s -> %s closed before the final response", conn.key.local, conn.key.remote)}
		case <-ctx.Done():
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
				return nil, fmt.Errorf("%s: %w (%w)", method, ctx.Err(), cause)
			}
			return nil, fmt.Errorf("%s: %w", method, ctx.Err())
		}
	}
}

// localAddrError reports whether a dial failed on the UE's side: its
// address or port could not be bound.
func localAddrError(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EACCES)
}

// dispatch is the transport's handler for every parsed message.
func (c *Client) dispatch(in *inbound) {
	switch m := in.msg.(type) {
	case *sip.Response:
		c.onResponse(in, m)
	case *sip.Request:
		c.onRequest(in, m)
	}
}

func (c *Client) onResponse(in *inbound, res *sip.Response) {
	via, cseq := res.Via(), res.CSeq()
	if via == nil || cseq == nil {
		c.stray.Add(1)
		return
	}
	branch, _ := via.Params.Get("branch")
	c.mu.Lock()
	tx := c.txs[txKey(branch, cseq.MethodName)]
	c.mu.Unlock()
	if tx == nil {
		c.stray.Add(1) // a retransmission after the transaction ended, or not ours
		return
	}
	if res.StatusCode < 200 {
		select {
		case tx.prov <- struct{}{}:
		default:
		}
		return
	}
	select {
	case tx.final <- in:
	default:
		c.stray.Add(1) // retransmitted final response, absorbed
	}
}

// serverTx remembers the answer to a request, to resend it when the
// request is retransmitted (RFC 3261 §17.2.2).
type serverTx struct {
	data  []byte
	send  func([]byte) error
	until time.Time
}

func (c *Client) onRequest(in *inbound, req *sip.Request) {
	if req.IsAck() {
		return // ACK to a non-2xx final response: absorbed
	}
	via, cseq := req.Via(), req.CSeq()
	if via == nil || cseq == nil || req.CallID() == nil || req.From() == nil || req.To() == nil {
		c.stray.Add(1) // cannot even be answered (RFC 3261 §8.1.1 minimum)
		return
	}
	branch, _ := via.Params.Get("branch")
	key := txKey(branch, req.Method) + " " + via.SentBy()
	now := time.Now()
	c.mu.Lock()
	for k, st := range c.stx {
		if now.After(st.until) {
			delete(c.stx, k)
		}
	}
	if st, ok := c.stx[key]; ok {
		c.mu.Unlock()
		if err := st.send(st.data); err != nil {
			c.s.log.Debug("resending response", "err", err)
		}
		return
	}
	c.mu.Unlock()

	// Only a request that came over a live SA set is acted on and answered:
	// the P-CSCF sends its requests over the SAs (TS 33.203 §7.1), and any
	// answer outside them would leave in clear. A NOTIFY can cross the
	// removal of its set, for instance the reg-event NOTIFY of a
	// de-registration over TCP, on a connection that outlives the SAs.
	id, ok := c.arrivedOver(in)
	if !ok {
		c.unanswered.Add(1)
		c.s.log.Info("request not over a live SA set: not answered", "method", req.Method,
			"network", in.network, "from", in.remote, "to", in.local)
		return
	}
	res := c.answer(in, req)
	data := []byte(res.String())
	send := c.overSet(id, c.responder(in, req))
	c.mu.Lock()
	c.stx[key] = &serverTx{data: data, send: send, until: now.Add(c.s.timerF())}
	c.mu.Unlock()
	if err := send(data); err != nil {
		c.s.log.Info("sending response failed", "method", req.Method, "err", err)
	}
}

// responder returns how to send responses to req. TCP: on the connection
// it came in on. UDP: to the top Via's sent-by (RFC 3261 §18.2.2, with
// received/rport honoured), from the current protected client port when the
// UE has SAs (TS 33.203 §7.1: each side sends everything from its client
// port), else from the socket it arrived on.
func (c *Client) responder(in *inbound, req *sip.Request) func([]byte) error {
	if in.conn != nil {
		conn := in.conn
		return conn.write
	}
	dst := viaDestination(req.Via(), in.remote)
	from := in.local.Port()
	if uc := uint16(c.respPort.Load()); uc != 0 {
		from = uc
	}
	return func(b []byte) error { return c.tp.sendUDP(from, dst, b) }
}

// errSetRemoved: the response was not sent because the SA set its request
// arrived over is being removed.
var errSetRemoved = errors.New("not sent: the SA set the request arrived over is being removed")

// overSet wraps send for a request that arrived over set id: the response
// leaves only while the set is installed and not withdrawn, so that a
// request racing the set's removal (a NOTIFY crossing the 200 of the
// de-REGISTER) is never answered in clear.
func (c *Client) overSet(id uint64, send func([]byte) error) func([]byte) error {
	return func(b []byte) error {
		c.sendMu.RLock()
		defer c.sendMu.RUnlock()
		if !c.live(id) {
			return errSetRemoved
		}
		return send(b)
	}
}

// live reports whether set id is installed and its removal has not begun.
func (c *Client) live(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.installed[id] != nil && !c.withdrawn[id]
}

// viaDestination is where a UDP response to a request with this top Via
// goes: received (else sent-by host when it is an address, else the packet
// source) and rport (else sent-by port, else 5060).
func viaDestination(via *sip.ViaHeader, src netip.AddrPort) netip.AddrPort {
	ip := src.Addr()
	if a, err := netip.ParseAddr(strings.Trim(via.Host, "[]")); err == nil {
		ip = a.Unmap()
	}
	if r, ok := via.Params.Get("received"); ok {
		if a, err := netip.ParseAddr(strings.Trim(r, "[]")); err == nil {
			ip = a.Unmap()
		}
	}
	port := uint16(DefaultPort)
	if via.Port > 0 && via.Port < 65536 {
		port = uint16(via.Port)
	}
	if r, ok := via.Params.Get("rport"); ok && r != "" {
		if p, err := strconv.ParseUint(r, 10, 16); err == nil && p > 0 {
			port = uint16(p)
		}
	}
	return netip.AddrPortFrom(ip, port)
}

// answer builds the UE's response to a request from the network and hands
// reg-event NOTIFYs to Run.
func (c *Client) answer(in *inbound, req *sip.Request) *sip.Response {
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
