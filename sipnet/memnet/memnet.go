// Package memnet is an in-memory sipnet.Net: hosts on one Network exchange
// UDP datagrams and TCP streams without sockets, and a test decides the
// fate of every datagram (deliver, drop, duplicate, hold back and release
// later), so that loss, duplication and reordering between a UE and a core
// are deterministic. It models wireguard-go's conn/bindtest.
package memnet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/imsue/imsue/sipnet"
)

// Datagram is one UDP datagram in flight.
type Datagram struct {
	Src, Dst netip.AddrPort
	Data     []byte
}

// Verdict is what happens to a datagram.
type Verdict uint8

const (
	Deliver   Verdict = iota // deliver it now
	Drop                     // lose it
	Duplicate                // deliver it twice
	Hold                     // keep it until Release
)

// Network is one in-memory network: a set of hosts and what they bound.
type Network struct {
	mu       sync.Mutex
	nextPort uint16
	udp      map[netip.AddrPort]*packetConn
	tcp      map[netip.AddrPort]*listener
	streams  map[[2]netip.AddrPort]bool // live connections by (local, remote)
	filter   func(Datagram) Verdict
	held     []Datagram
	sent     int
}

// New returns an empty Network.
func New() *Network {
	return &Network{
		nextPort: 20000,
		udp:      map[netip.AddrPort]*packetConn{},
		tcp:      map[netip.AddrPort]*listener{},
		streams:  map[[2]netip.AddrPort]bool{},
	}
}

// SetFilter decides the fate of every datagram sent from now on (nil:
// deliver all). It is called synchronously in the sender's WriteTo, in the
// order the datagrams are sent.
func (n *Network) SetFilter(f func(Datagram) Verdict) {
	n.mu.Lock()
	n.filter = f
	n.mu.Unlock()
}

// Release delivers the held datagrams, in the order given by order (an
// index permutation of the held list; nil: the order they were held).
func (n *Network) Release(order []int) {
	n.mu.Lock()
	held := n.held
	n.held = nil
	n.mu.Unlock()
	if order == nil {
		for i := range held {
			order = append(order, i)
		}
	}
	for _, i := range order {
		if i >= 0 && i < len(held) {
			n.deliver(held[i])
		}
	}
}

// Held returns how many datagrams are held.
func (n *Network) Held() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.held)
}

// Sent returns how many datagrams were sent (before any verdict).
func (n *Network) Sent() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent
}

// Host returns the Net of the host with address ip: what it binds with an
// unspecified IP is bound to ip, and LocalFor answers ip.
func (n *Network) Host(ip netip.Addr) sipnet.Net { return &host{n: n, ip: ip} }

type host struct {
	n  *Network
	ip netip.Addr
}

var errInUse = &os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE}

func (h *host) fill(a netip.AddrPort) netip.AddrPort {
	ip := a.Addr()
	if !ip.IsValid() || ip.IsUnspecified() {
		ip = h.ip
	}
	return netip.AddrPortFrom(ip, a.Port())
}

// port returns a's port, or a free one when it is 0. n.mu must be held.
func (n *Network) port(a netip.AddrPort, used func(netip.AddrPort) bool) netip.AddrPort {
	if a.Port() != 0 {
		return a
	}
	for {
		n.nextPort++
		if n.nextPort < 20000 {
			n.nextPort = 20000
		}
		c := netip.AddrPortFrom(a.Addr(), n.nextPort)
		if !used(c) {
			return c
		}
	}
}

func (h *host) ListenUDP(laddr netip.AddrPort) (sipnet.PacketConn, error) {
	n := h.n
	laddr = h.fill(laddr)
	n.mu.Lock()
	defer n.mu.Unlock()
	laddr = n.port(laddr, func(a netip.AddrPort) bool { return n.udp[a] != nil })
	if n.udp[laddr] != nil {
		return nil, errInUse
	}
	c := &packetConn{n: n, local: laddr, in: make(chan Datagram, 1024), done: make(chan struct{})}
	n.udp[laddr] = c
	return c, nil
}

func (h *host) ListenTCP(laddr netip.AddrPort, _ bool) (sipnet.Listener, error) {
	n := h.n
	laddr = h.fill(laddr)
	n.mu.Lock()
	defer n.mu.Unlock()
	laddr = n.port(laddr, func(a netip.AddrPort) bool { return n.tcp[a] != nil })
	if n.tcp[laddr] != nil {
		return nil, errInUse
	}
	l := &listener{n: n, addr: laddr, in: make(chan *stream, 64), done: make(chan struct{})}
	n.tcp[laddr] = l
	return l, nil
}

func (h *host) DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (sipnet.StreamConn, error) {
	n := h.n
	laddr = h.fill(laddr)
	n.mu.Lock()
	laddr = n.port(laddr, func(a netip.AddrPort) bool { return n.tcp[a] != nil || n.streams[[2]netip.AddrPort{a, raddr}] })
	key := [2]netip.AddrPort{laddr, raddr}
	if n.streams[key] {
		n.mu.Unlock()
		return nil, &os.SyscallError{Syscall: "connect", Err: syscall.EADDRNOTAVAIL}
	}
	l := n.tcp[raddr]
	n.mu.Unlock()
	if l == nil {
		return nil, &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}
	}
	a2b, b2a := newPipe(), newPipe()
	mine := &stream{n: n, local: laddr, remote: raddr, r: b2a, w: a2b}
	theirs := &stream{n: n, local: raddr, remote: laddr, r: a2b, w: b2a}
	n.mu.Lock()
	n.streams[key] = true
	n.streams[[2]netip.AddrPort{raddr, laddr}] = true
	n.mu.Unlock()
	select {
	case l.in <- theirs:
		return mine, nil
	case <-l.done:
	case <-ctx.Done():
	}
	mine.Abort()
	theirs.Abort()
	return nil, &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}
}

func (h *host) LocalFor(netip.Addr) (netip.Addr, bool) { return h.ip, true }

// ---- UDP ---------------------------------------------------------------

type packetConn struct {
	n     *Network
	local netip.AddrPort
	in    chan Datagram
	once  sync.Once
	done  chan struct{}
}

func (c *packetConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.in:
		return copy(b, d.Data), d.Src, nil
	case <-c.done:
		return 0, netip.AddrPort{}, fmt.Errorf("memnet read %s: %w", c.local, net.ErrClosed)
	}
}

func (c *packetConn) WriteTo(b []byte, dst netip.AddrPort) (int, error) {
	select {
	case <-c.done:
		return 0, fmt.Errorf("memnet write %s: %w", c.local, net.ErrClosed)
	default:
	}
	d := Datagram{Src: c.local, Dst: dst, Data: bytes.Clone(b)}
	n := c.n
	n.mu.Lock()
	n.sent++
	v := Deliver
	if n.filter != nil {
		v = n.filter(d)
	}
	if v == Hold {
		n.held = append(n.held, d)
	}
	n.mu.Unlock()
	switch v {
	case Deliver:
		n.deliver(d)
	case Duplicate:
		n.deliver(d)
		n.deliver(d)
	}
	return len(b), nil
}

// deliver queues d at its destination socket; a datagram to nowhere, or to
// a full queue, is lost, as UDP would lose it.
func (n *Network) deliver(d Datagram) {
	n.mu.Lock()
	c := n.udp[d.Dst]
	n.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case c.in <- d:
	case <-c.done:
	default:
	}
}

func (c *packetConn) LocalAddr() netip.AddrPort { return c.local }

func (c *packetConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.n.mu.Lock()
		if c.n.udp[c.local] == c {
			delete(c.n.udp, c.local)
		}
		c.n.mu.Unlock()
	})
	return nil
}

// ---- TCP ---------------------------------------------------------------

type listener struct {
	n    *Network
	addr netip.AddrPort
	in   chan *stream
	once sync.Once
	done chan struct{}
}

func (l *listener) Accept() (sipnet.StreamConn, error) {
	select {
	case s := <-l.in:
		return s, nil
	case <-l.done:
		return nil, fmt.Errorf("memnet accept %s: %w", l.addr, net.ErrClosed)
	}
}

func (l *listener) Addr() netip.AddrPort { return l.addr }

func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.n.mu.Lock()
		if l.n.tcp[l.addr] == l {
			delete(l.n.tcp, l.addr)
		}
		l.n.mu.Unlock()
	})
	return nil
}

// pipe is one direction of a stream: an unbounded buffer, so that a writer
// never waits for the reader (two readers answering each other must not
// deadlock).
type pipe struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    bytes.Buffer
	closed bool // no more data will come
	reset  bool
}

func newPipe() *pipe {
	p := &pipe{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *pipe) close(reset bool) {
	p.mu.Lock()
	p.closed = true
	p.reset = p.reset || reset
	p.cond.Broadcast()
	p.mu.Unlock()
}

type stream struct {
	n             *Network
	local, remote netip.AddrPort
	r, w          *pipe
	once          sync.Once
}

var errReset = &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}

func (s *stream) Read(b []byte) (int, error) {
	p := s.r
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.buf.Len() == 0 && !p.closed {
		p.cond.Wait()
	}
	if p.buf.Len() > 0 {
		return p.buf.Read(b)
	}
	if p.reset {
		return 0, errReset
	}
	return 0, io.EOF
}

func (s *stream) Write(b []byte) (int, error) {
	p := s.w
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}
	}
	p.buf.Write(b)
	p.cond.Broadcast()
	return len(b), nil
}

func (s *stream) LocalAddr() netip.AddrPort        { return s.local }
func (s *stream) RemoteAddr() netip.AddrPort       { return s.remote }
func (s *stream) SetWriteDeadline(time.Time) error { return nil }
func (s *stream) Drained(time.Duration) bool       { return true }
func (s *stream) Close() error                     { s.shut(false); return nil }
func (s *stream) Abort() error                     { s.shut(true); return nil }

func (s *stream) shut(reset bool) {
	s.once.Do(func() {
		s.w.close(reset)
		s.r.close(reset)
		s.n.mu.Lock()
		delete(s.n.streams, [2]netip.AddrPort{s.local, s.remote})
		s.n.mu.Unlock()
	})
}
