package imscore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The core does its own SIP transport on top of sipgo's message parser and
// types rather than sipgo's transport and transaction layers, because a
// P-CSCF chooses the source port of every message itself (TS 33.203 §7.1):
// responses to a protected UDP request leave from port_pc towards the UE's
// port_us, not from the port the request came in on, and requests to the UE
// leave from port_pc of the SA set in use. sipgo's layers pick connections
// by remote address and cannot express that.

// SIP timers (RFC 3261 §17.1.2.2, §17.2.2).
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
	timerF  = 64 * timerT1 // non-INVITE client transaction timeout
	timerJ  = 64 * timerT1 // how long a server transaction absorbs retransmissions
)

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

// endpoint is one local port number with a UDP socket and a TCP listener.
type endpoint struct {
	role portRole
	addr netip.AddrPort // as bound; the IP may be unspecified
	udp  *net.UDPConn
	tcp  *net.TCPListener
	set  *secSet // roleClient: the SA set the port belongs to
	once sync.Once
}

func (ep *endpoint) close() {
	ep.once.Do(func() {
		ep.udp.Close()
		ep.tcp.Close()
	})
}

// tcpConn is one accepted or dialled TCP connection.
type tcpConn struct {
	c      *net.TCPConn
	ep     *endpoint
	local  netip.AddrPort
	remote netip.AddrPort
	wmu    sync.Mutex
	once   sync.Once
}

func (tc *tcpConn) write(b []byte) error {
	tc.wmu.Lock()
	defer tc.wmu.Unlock()
	_ = tc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := tc.c.Write(b)
	return err
}

// inbound is one received message with where it came from.
type inbound struct {
	msg       sip.Message
	ep        *endpoint
	transport string // "UDP" or "TCP"
	remote    netip.AddrPort
	conn      *tcpConn // TCP only
}

// route says how to send one message: from a UDP socket to an address, or
// on a TCP connection.
type route struct {
	transport string
	ep        *endpoint      // UDP: the socket to send from
	dst       netip.AddrPort // UDP: the destination
	conn      *tcpConn       // TCP
}

func (r route) String() string {
	if r.conn != nil {
		return fmt.Sprintf("TCP %s→%s", r.conn.local, r.conn.remote)
	}
	if r.ep == nil {
		return "nowhere"
	}
	return fmt.Sprintf("UDP :%d→%s", r.ep.addr.Port(), r.dst)
}

// listenPair binds UDP and TCP on the same port of ip. Port 0 picks a free
// UDP port and retries until TCP can bind the same number. reusePort lets a
// dialled TCP socket share the port with the listener (port_pc).
func listenPair(ip netip.Addr, port uint16, reusePort bool) (*net.UDPConn, *net.TCPListener, error) {
	udpNet, tcpNet := "udp4", "tcp4"
	if ip.Is6() {
		udpNet, tcpNet = "udp6", "tcp6"
	}
	tries := 1
	if port == 0 {
		tries = 64
	}
	var lastErr error
	for range tries {
		u, err := net.ListenUDP(udpNet, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", netip.AddrPortFrom(ip, port), err)
		}
		p := u.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		lc := net.ListenConfig{}
		if reusePort {
			lc.Control = reusePortControl
		}
		l, err := lc.Listen(context.Background(), tcpNet, netip.AddrPortFrom(ip, p).String())
		if err != nil {
			u.Close()
			lastErr = fmt.Errorf("listen tcp %s: %w", netip.AddrPortFrom(ip, p), err)
			continue
		}
		return u, l.(*net.TCPListener), nil
	}
	return nil, nil, lastErr
}

// bindEndpoint binds a port; serve starts reading it.
func bindEndpoint(ip netip.Addr, port uint16, role portRole) (*endpoint, error) {
	u, l, err := listenPair(ip, port, role == roleClient)
	if err != nil {
		return nil, err
	}
	a := u.LocalAddr().(*net.UDPAddr).AddrPort()
	return &endpoint{role: role, addr: netip.AddrPortFrom(a.Addr().Unmap(), a.Port()), udp: u, tcp: l}, nil
}

func (c *Core) serve(ep *endpoint) {
	c.wg.Add(2)
	go c.serveUDP(ep)
	go c.serveTCP(ep)
}

// readBufs recycles the 64 KiB read buffers: every SA set binds a new
// port_pc with its own readers, so a registration would otherwise allocate
// two of them.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 65535); return &b }}

func (c *Core) serveUDP(ep *endpoint) {
	defer c.wg.Done()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		n, from, err := ep.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("udp read", "port", ep.addr.Port(), "err", err)
			continue
		}
		data := buf[:n]
		if isKeepalive(data) {
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		c.traceIn("UDP", ep, from, data)
		msg, err := c.parser.ParseSIP(data)
		if err != nil {
			c.stats.malformed.Add(1)
			c.log.Info("discarding unparsable UDP datagram", "from", from, "port", ep.addr.Port(), "err", err)
			continue
		}
		c.dispatch(inbound{msg: msg, ep: ep, transport: "UDP", remote: from})
	}
}

func (c *Core) serveTCP(ep *endpoint) {
	defer c.wg.Done()
	for {
		conn, err := ep.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("tcp accept", "port", ep.addr.Port(), "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		tc := c.trackConn(conn, ep)
		if tc == nil {
			continue
		}
		c.wg.Add(1)
		go c.readTCP(tc)
	}
}

// trackConn registers a connection so that Close and Restart can close it;
// it returns nil (and closes conn) when the core is closing.
func (c *Core) trackConn(conn *net.TCPConn, ep *endpoint) *tcpConn {
	la := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	ra := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	tc := &tcpConn{
		c: conn, ep: ep,
		local:  netip.AddrPortFrom(la.Addr().Unmap(), la.Port()),
		remote: netip.AddrPortFrom(ra.Addr().Unmap(), ra.Port()),
	}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.conns == nil {
		conn.Close()
		return nil
	}
	c.conns[tc] = struct{}{}
	return tc
}

func (c *Core) closeConn(tc *tcpConn) {
	tc.once.Do(func() {
		tc.c.Close()
		c.connMu.Lock()
		delete(c.conns, tc)
		c.connMu.Unlock()
	})
}

func (c *Core) readTCP(tc *tcpConn) {
	defer c.wg.Done()
	defer c.closeConn(tc)
	stream := c.parser.NewSIPStream()
	defer stream.Close()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		n, err := tc.c.Read(buf)
		if err != nil {
			return
		}
		data := buf[:n]
		if stream.Buffer().Len() == 0 {
			data = trimKeepalive(data)
			if len(data) == 0 {
				continue
			}
		}
		err = stream.ParseSIPStream(data, func(msg sip.Message) {
			if c.tracing() {
				c.traceIn("TCP", tc.ep, tc.remote, []byte(msg.String()))
			}
			c.dispatch(inbound{msg: msg, ep: tc.ep, transport: "TCP", remote: tc.remote, conn: tc})
		})
		if err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
			c.stats.malformed.Add(1)
			c.log.Info("closing TCP connection after unparsable data", "remote", tc.remote, "port", tc.ep.addr.Port(), "err", err)
			return
		}
	}
}

// dialFrom opens a TCP connection from the endpoint's port to dst (the
// P-CSCF's requests over TCP leave from port_pc, TS 33.203 §7.1) and reads
// responses on it.
func (c *Core) dialFrom(ep *endpoint, local netip.Addr, dst netip.AddrPort) (*tcpConn, error) {
	d := net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, ep.addr.Port())),
		Control:   reusePortControl,
		Timeout:   3 * time.Second,
	}
	conn, err := d.DialContext(c.ctx, "tcp", dst.String())
	if err != nil {
		return nil, fmt.Errorf("dial tcp %s from port %d: %w", dst, ep.addr.Port(), err)
	}
	tc := c.trackConn(conn.(*net.TCPConn), ep)
	if tc == nil {
		return nil, net.ErrClosed
	}
	c.wg.Add(1)
	go c.readTCP(tc)
	return tc, nil
}

// finalize puts Content-Length last (a stream transport needs it, RFC 3261
// §18.3). It is called once per message, before the message is shared.
func finalize(msg sip.Message) {
	removeHeader(msg, "Content-Length")
	msg.SetBody(msg.Body())
}

// send writes one message along r. It does not modify msg, so that a
// stored response can be resent concurrently.
func (c *Core) send(r route, msg sip.Message) error {
	data := []byte(msg.String())
	var err error
	switch {
	case r.conn != nil:
		err = r.conn.write(data)
	case r.ep != nil && r.dst.IsValid():
		_, err = r.ep.udp.WriteToUDPAddrPort(data, r.dst)
	default:
		err = errors.New("no route")
	}
	if err != nil {
		c.log.Warn("send failed", "route", r.String(), "err", err)
		return fmt.Errorf("send %s: %w", r, err)
	}
	c.traceOut(r, data)
	return nil
}

// ---- tracing -----------------------------------------------------------

func (c *Core) tracing() bool { return c.log.Enabled(context.Background(), slog.LevelDebug) }

// ckikParam matches the ck and ik digest parameters, which carry session
// keys: they are never logged.
var ckikParam = regexp.MustCompile(`(?i)\b(ck|ik)\s*=\s*"?[0-9a-f]*"?`)

func redact(s string) string { return ckikParam.ReplaceAllString(s, `$1="<redacted>"`) }

func (c *Core) traceIn(transport string, ep *endpoint, from netip.AddrPort, data []byte) {
	if !c.tracing() {
		return
	}
	c.log.Debug("sip recv", "transport", transport, "from", from, "to_port", ep.addr.Port(), "role", ep.role.String(), "msg", redact(string(data)))
}

func (c *Core) traceOut(r route, data []byte) {
	if !c.tracing() {
		return
	}
	c.log.Debug("sip send", "route", r.String(), "msg", redact(string(data)))
}

func isKeepalive(b []byte) bool { return len(trimKeepalive(b)) == 0 }

// trimKeepalive drops the CRLF keep-alives of RFC 5626 §3.5.1 in front of a message.
func trimKeepalive(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

// ---- transactions ------------------------------------------------------

// serverTx remembers the final response to one request so that a
// retransmission of the request is answered with the same response and is
// not processed again (RFC 3261 §17.2.2): one 401, one SA set.
type serverTx struct {
	resp    sip.Message // nil while the request is being processed
	route   route
	expires time.Time
}

// txKey identifies a request for retransmission detection: Call-ID, CSeq
// and method, which a retransmission repeats exactly (the branch would do
// for RFC 3261 UAs; this also catches a UA that re-sends the same CSeq with
// a new branch).
func txKey(req *sip.Request) string {
	var callID string
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	var seq uint32
	if h := req.CSeq(); h != nil {
		seq = h.SeqNo
	}
	return callID + "\x00" + strconv.FormatUint(uint64(seq), 10) + "\x00" + string(req.Method)
}

// retransmission reports whether req repeats a request being or already
// answered, resending the final response if there is one. Otherwise it
// opens a server transaction for req.
func (c *Core) retransmission(req *sip.Request) bool {
	key := txKey(req)
	now := time.Now()
	c.txMu.Lock()
	tx, ok := c.srvTx[key]
	if ok && now.After(tx.expires) {
		delete(c.srvTx, key)
		ok = false
	}
	if !ok {
		// Sweep expired transactions at most once a second: a sweep per
		// new transaction would make each request cost O(live
		// transactions), and under load every one of them is live for
		// Timer J.
		if len(c.srvTx) > 64 && now.Sub(c.swept) > time.Second {
			c.swept = now
			for k, t := range c.srvTx {
				if now.After(t.expires) {
					delete(c.srvTx, k)
				}
			}
		}
		c.srvTx[key] = &serverTx{expires: now.Add(timerJ)}
		c.txMu.Unlock()
		return false
	}
	resp, r := tx.resp, tx.route
	c.txMu.Unlock()
	c.stats.retransmissions.Add(1)
	if resp != nil {
		c.log.Debug("request retransmission: resending the final response", "method", req.Method, "call_id", req.CallID().Value())
		_ = c.send(r, resp)
	}
	return true
}

// completeTx stores the final response of req's server transaction.
func (c *Core) completeTx(req *sip.Request, resp sip.Message, r route) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	if tx, ok := c.srvTx[txKey(req)]; ok {
		tx.resp, tx.route = resp, r
		tx.expires = time.Now().Add(timerJ)
	}
}

// clientTx is one non-INVITE client transaction (the core's NOTIFYs).
type clientTx struct {
	branch string
	final  chan *sip.Response
}

// startClientTx opens a client transaction for req and sends it once.
func (c *Core) startClientTx(r route, req *sip.Request) (*clientTx, error) {
	branch, _ := req.Via().Params.Get("branch")
	tx := &clientTx{branch: branch, final: make(chan *sip.Response, 1)}
	c.txMu.Lock()
	c.cliTx[branch] = tx
	c.txMu.Unlock()
	if err := c.send(r, req); err != nil {
		c.txMu.Lock()
		delete(c.cliTx, branch)
		c.txMu.Unlock()
		return nil, err
	}
	return tx, nil
}

// finishClientTx waits for the final response to req, retransmitting over
// UDP (RFC 3261 §17.1.2.2: T1 doubling up to T2) until Timer F.
func (c *Core) finishClientTx(tx *clientTx, r route, req *sip.Request) (*sip.Response, error) {
	defer func() {
		c.txMu.Lock()
		delete(c.cliTx, tx.branch)
		c.txMu.Unlock()
	}()
	timeoutF := time.NewTimer(timerF)
	defer timeoutF.Stop()
	interval := timerT1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	if r.conn != nil {
		retransmit.Stop() // reliable transport: no retransmissions
	}
	for {
		select {
		case resp := <-tx.final:
			return resp, nil
		case <-retransmit.C:
			_ = c.send(r, req)
			interval = min(2*interval, timerT2)
			retransmit.Reset(interval)
		case <-timeoutF.C:
			return nil, fmt.Errorf("%s: no final response within Timer F (%v)", req.Method, timerF)
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		}
	}
}

// handleResponse hands a response to the client transaction it answers.
func (c *Core) handleResponse(in inbound, resp *sip.Response) {
	if resp.StatusCode < 200 {
		return
	}
	if !c.protectedResponse(in) {
		c.stats.discarded.Add(1)
		c.log.Info("discarding response that did not arrive over an SA set", "status", resp.StatusCode, "from", in.remote, "port", in.ep.addr.Port())
		return
	}
	via := resp.Via()
	if via == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	c.txMu.Lock()
	tx := c.cliTx[branch]
	c.txMu.Unlock()
	if tx == nil {
		c.log.Debug("response matches no transaction", "status", resp.StatusCode, "from", in.remote)
		return
	}
	select {
	case tx.final <- resp:
	default: // a retransmitted final response
	}
}

// atomicCounter is a named uint64 counter.
type atomicCounter = atomic.Uint64

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
