package sipclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The UE's transport is its own, small and explicit, on top of sipgo's
// message model and parser. sipgo's transport layer (sip.TransportLayer)
// does not fit a UE doing TS 33.203 sec-agree, for reasons seen here:
//
//   - every message must leave from a given port (unprotected, port_uc) and
//     responses must be accepted on another (port_us); sipgo picks
//     connections from pools keyed by one address string, and with a fixed
//     local port it looks TCP connections up by the local address only, so
//     a request can go out on a connection to the wrong peer. Here TCP
//     connections are keyed by (local, remote).
//   - re-dialling TCP from a fixed port (5060, port_uc) needs SO_REUSEADDR,
//     which sipgo's dialer does not set.
//   - sipgo refuses UDP messages over 1300 bytes (ErrUDPMTUCongestion);
//     a REGISTER offering several mechanisms is larger. Here the size rule
//     of RFC 3261 §18.1.1 is applied by the transaction layer (send.go).
//   - sipgo's tracer hook and its timers (sip.T1, Timer_F) are process-global;
//     a UE and the lab core share one process in tests, and each Client has
//     its own trace and T1.
//
// The messages themselves are sipgo's (sip.Request, sip.Response, its
// header types and parser).

// maxMessage bounds one SIP message (header and body) on a stream.
const maxMessage = 65535

// inbound is one received SIP message and where it arrived.
type inbound struct {
	msg     sip.Message
	network string
	local   netip.AddrPort
	remote  netip.AddrPort
	conn    *tcpConn // the TCP connection it arrived on; nil for UDP
	at      time.Time
}

type connKey struct{ local, remote netip.AddrPort }

// transport owns the Client's sockets: UDP sockets by local port, TCP
// listeners by local port, and TCP connections by (local, remote).
type transport struct {
	ip     netip.Addr
	sinks  sinks
	handle func(*inbound)
	log    *slog.Logger

	mu       sync.Mutex
	closed   bool
	udp      map[uint16]*net.UDPConn
	listen   map[uint16]*net.TCPListener
	conns    map[connKey]*tcpConn
	wg       sync.WaitGroup
	parseErr func(error) // test hook: parse failures
}

func newTransport(ip netip.Addr, s sinks, handle func(*inbound), log *slog.Logger) *transport {
	return &transport{
		ip:     ip,
		sinks:  s,
		handle: handle,
		log:    log,
		udp:    map[uint16]*net.UDPConn{},
		listen: map[uint16]*net.TCPListener{},
		conns:  map[connKey]*tcpConn{},
	}
}

func (t *transport) network() string {
	if t.ip.Is4() {
		return "4"
	}
	return "6"
}

// bindUDP opens a UDP socket on port (0: ephemeral) and starts reading it.
func (t *transport) bindUDP(port uint16) (uint16, error) {
	la := net.UDPAddrFromAddrPort(netip.AddrPortFrom(t.ip, port))
	c, err := net.ListenUDP("udp"+t.network(), la)
	if err != nil {
		return 0, fmt.Errorf("bind UDP %s: %w", la, err)
	}
	got := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return 0, ErrClosed
	}
	t.udp[got] = c
	t.wg.Add(1)
	t.mu.Unlock()
	go t.readUDP(c, got)
	return got, nil
}

// bindServer opens port (0: ephemeral) for both UDP and TCP (a listener),
// as port_us must be: the P-CSCF's requests arrive on it over UDP or, when
// large or configured so, on a TCP connection it opens.
func (t *transport) bindServer(port uint16) (uint16, error) {
	var lastErr error
	for range 16 {
		p, err := t.bindUDP(port)
		if err != nil {
			return 0, err
		}
		if err = t.listenTCP(p); err == nil {
			return p, nil
		}
		t.release(p)
		lastErr = err
		if port != 0 {
			break
		}
	}
	return 0, lastErr
}

func (t *transport) listenTCP(port uint16) error {
	lc := net.ListenConfig{Control: reuseAddr}
	la := netip.AddrPortFrom(t.ip, port).String()
	l, err := lc.Listen(context.Background(), "tcp"+t.network(), la)
	if err != nil {
		return fmt.Errorf("listen TCP %s: %w", la, err)
	}
	tl := l.(*net.TCPListener)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		tl.Close()
		return ErrClosed
	}
	t.listen[port] = tl
	t.wg.Add(1)
	t.mu.Unlock()
	go t.accept(tl)
	return nil
}

// release closes everything bound to local port: the UDP socket, the TCP
// listener and every TCP connection from or to it.
func (t *transport) release(port uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.udp[port]; ok {
		c.Close()
		delete(t.udp, port)
	}
	if l, ok := t.listen[port]; ok {
		l.Close()
		delete(t.listen, port)
	}
	for k, c := range t.conns {
		if k.local.Port() == port {
			c.abort()
			delete(t.conns, k)
		}
	}
}

func (t *transport) close() {
	t.mu.Lock()
	t.closed = true
	for p, c := range t.udp {
		c.Close()
		delete(t.udp, p)
	}
	for p, l := range t.listen {
		l.Close()
		delete(t.listen, p)
	}
	for k, c := range t.conns {
		c.abort()
		delete(t.conns, k)
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// sendUDP sends one message from local port to dst.
func (t *transport) sendUDP(from uint16, dst netip.AddrPort, data []byte) error {
	t.mu.Lock()
	c := t.udp[from]
	t.mu.Unlock()
	if c == nil {
		return fmt.Errorf("send UDP from port %d: socket not open", from)
	}
	// Traced before the write, so that the answer never precedes it.
	t.sinks.emit(Packet{Time: time.Now(), Sent: true, Network: "udp",
		Local: netip.AddrPortFrom(t.ip, from), Remote: dst, Data: data})
	if _, err := c.WriteToUDPAddrPort(data, dst); err != nil {
		return fmt.Errorf("send UDP %d -> %s: %w", from, dst, err)
	}
	return nil
}

func (t *transport) readUDP(c *net.UDPConn, port uint16) {
	defer t.wg.Done()
	local := netip.AddrPortFrom(t.ip, port)
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors surface on some kernels as read errors on an
			// unconnected socket; they are not fatal to the socket.
			t.log.Debug("UDP read", "port", port, "err", err)
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		data := bytes.Clone(buf[:n])
		if len(bytes.Trim(data, "\r\n\x00")) == 0 {
			continue // keep-alive (RFC 5626 §4.4.1)
		}
		t.deliver(data, "udp", local, from, nil)
	}
}

// deliver traces one received message, parses it and hands it on.
func (t *transport) deliver(data []byte, network string, local, remote netip.AddrPort, conn *tcpConn) {
	at := time.Now()
	t.sinks.emit(Packet{Time: at, Network: network, Local: local, Remote: remote, Data: data})
	msg, err := sip.ParseMessage(data)
	if err != nil {
		t.dropped(fmt.Errorf("%s message from %s: %w", strings.ToUpper(network), remote, err))
		return
	}
	t.handle(&inbound{msg: msg, network: network, local: local, remote: remote, conn: conn, at: at})
}

func (t *transport) dropped(err error) {
	t.log.Debug("dropped unparsable message", "err", err)
	if t.parseErr != nil {
		t.parseErr(err)
	}
}

// tcpConn is one TCP connection of the Client, outgoing or accepted.
type tcpConn struct {
	t   *transport
	c   *net.TCPConn
	key connKey
	wmu sync.Mutex
	// done is closed when the reader stops (peer closed, reset, or release).
	done chan struct{}
}

// dialTCP returns the connection from local port (0: ephemeral) to dst,
// dialling it if there is none. The lookup is by both ends: one fixed local
// port may have connections to several peers (after a P-CSCF restart, or to
// the unprotected and a protected port) and each request must go to its own.
func (t *transport) dialTCP(ctx context.Context, from uint16, dst netip.AddrPort) (*tcpConn, error) {
	if from != 0 {
		t.mu.Lock()
		c := t.conns[connKey{netip.AddrPortFrom(t.ip, from), dst}]
		t.mu.Unlock()
		if c != nil {
			select {
			case <-c.done:
			default:
				return c, nil
			}
		}
	}
	d := net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(t.ip, from)),
		Control:   reuseAddr, // a fixed port may still have a connection in TIME_WAIT
	}
	nc, err := d.DialContext(ctx, "tcp"+t.network(), dst.String())
	if err != nil {
		return nil, fmt.Errorf("connect TCP %d -> %s: %w", from, dst, err)
	}
	return t.adopt(nc.(*net.TCPConn))
}

func (t *transport) adopt(nc *net.TCPConn) (*tcpConn, error) {
	la := nc.LocalAddr().(*net.TCPAddr).AddrPort()
	ra := nc.RemoteAddr().(*net.TCPAddr).AddrPort()
	key := connKey{
		netip.AddrPortFrom(la.Addr().Unmap(), la.Port()),
		netip.AddrPortFrom(ra.Addr().Unmap(), ra.Port()),
	}
	c := &tcpConn{t: t, c: nc, key: key, done: make(chan struct{})}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		nc.Close()
		return nil, ErrClosed
	}
	if old := t.conns[key]; old != nil {
		old.c.Close()
	}
	t.conns[key] = c
	t.wg.Add(1)
	t.mu.Unlock()
	go c.read()
	return c, nil
}

func (t *transport) accept(l *net.TCPListener) {
	defer t.wg.Done()
	for {
		nc, err := l.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Debug("TCP accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if _, err := t.adopt(nc); err != nil {
			return
		}
	}
}

// write sends one whole message on the connection.
func (c *tcpConn) write(data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.t.sinks.emit(Packet{Time: time.Now(), Sent: true, Network: "tcp",
		Local: c.key.local, Remote: c.key.remote, Data: data})
	if _, err := c.c.Write(data); err != nil {
		return fmt.Errorf("send TCP %s -> %s: %w", c.key.local, c.key.remote, err)
	}
	return nil
}

func (c *tcpConn) read() {
	t := c.t
	defer t.wg.Done()
	defer close(c.done)
	defer func() {
		c.c.Close()
		t.mu.Lock()
		if t.conns[c.key] == c {
			delete(t.conns, c.key)
		}
		t.mu.Unlock()
	}()
	var buf []byte
	chunk := make([]byte, 16384)
	crlf := 0 // CRLF bytes seen since the last message, across reads
	for {
		quickACK(c.c)
		n, err := c.c.Read(chunk)
		if n > 0 {
			buf = append(buf, chunk[:n]...)
			for {
				skip, size, ferr := frame(buf)
				if ferr != nil {
					t.dropped(fmt.Errorf("TCP stream from %s: %w", c.key.remote, ferr))
					return // no boundary to resynchronise on
				}
				// A double-CRLF ping is answered with a CRLF pong (RFC 5626
				// §3.5.1); it may arrive split over several reads.
				for crlf += skip; crlf >= 4; crlf -= 4 {
					_ = c.writeRaw([]byte("\r\n"))
				}
				buf = buf[skip:]
				if size == 0 {
					break
				}
				crlf = 0
				data := bytes.Clone(buf[:size])
				buf = buf[size:]
				t.deliver(data, "tcp", c.key.local, c.key.remote, c)
			}
			if len(buf) == 0 {
				buf = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// abort closes the connection with a reset (SO_LINGER 0). The UE closes a
// connection only when it is done with it (its port_uc is released, or the
// Client closes), and an orderly close would leave the 4-tuple in
// TIME_WAIT here: a new connection from the same fixed port (5060) to the
// same P-CSCF port, as a restarted imsue makes, would then fail with
// EADDRNOTAVAIL for up to a minute.
func (c *tcpConn) abort() {
	c.c.SetLinger(0)
	c.c.Close()
}

func (c *tcpConn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.c.Write(b)
	return err
}

// frame finds the first SIP message on a stream (RFC 3261 §18.3). It
// returns how many leading bytes to discard (CRLF keep-alives before a
// start line, RFC 3261 §7.5) and the size of the complete message that
// follows them, or size 0 when more data is needed. A message must carry
// Content-Length on a stream; an absent one counts as 0.
func frame(buf []byte) (skip, size int, err error) {
	for skip+1 < len(buf) && buf[skip] == '\r' && buf[skip+1] == '\n' {
		skip += 2
	}
	b := buf[skip:]
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > maxMessage {
			return skip, 0, fmt.Errorf("no end of header within %d bytes", maxMessage)
		}
		return skip, 0, nil
	}
	cl := 0
	for line := range bytes.SplitSeq(b[:end], []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("content-length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		v, perr := strconv.Atoi(string(bytes.TrimSpace(value)))
		if perr != nil || v < 0 {
			return skip, 0, fmt.Errorf("bad Content-Length %q", bytes.TrimSpace(value))
		}
		cl = v
	}
	total := end + 4 + cl
	if total > maxMessage {
		return skip, 0, fmt.Errorf("message of %d bytes exceeds %d", total, maxMessage)
	}
	if len(b) < total {
		return skip, 0, nil
	}
	return skip, total, nil
}

// reuseAddr sets SO_REUSEADDR, so that a fixed local port can be bound
// again while an earlier connection from it lingers in TIME_WAIT, and so
// that one port can carry connections to several peers.
func reuseAddr(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = setReuseAddr(fd)
	})
	if err != nil {
		return err
	}
	return serr
}
