package sipnet

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ErrClosed is returned by the methods of a closed Transport.
var ErrClosed = errors.New("sipnet: transport closed")

// DefaultWriteTimeout bounds one TCP write: a peer that stops reading must
// not block a sender forever.
const DefaultWriteTimeout = 5 * time.Second

// Config configures a Transport.
type Config struct {
	// Net provides the sockets; nil means Kernel.
	Net Net
	// Timers are this Transport's SIP timers; zero fields take RFC 3261's.
	Timers Timers
	// Sinks receive every message sent and received (a TextTracer, a
	// PcapWriter).
	Sinks []PacketSink
	// Handler receives every parsed request (responses go to their client
	// transaction; one that matches none is counted as stray and dropped).
	// It is called from the socket's reader goroutine: a Handler that
	// blocks holds up that socket.
	Handler func(*Inbound)
	// Log receives debug lines about dropped data; nil discards them.
	Log *slog.Logger
	// WriteTimeout bounds each TCP write; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxInbound bounds the connections accepted and alive at once over
	// all listeners; a connection beyond it is reset at once. 0: no bound.
	MaxInbound int
	// IdleTimeout closes an accepted connection that carried nothing for
	// that long. 0: never.
	IdleTimeout time.Duration
}

// Inbound is one received SIP message and where it arrived.
type Inbound struct {
	Msg     sip.Message
	Network string         // "udp" or "tcp"
	Local   netip.AddrPort // the socket's address (its IP may be unspecified)
	Remote  netip.AddrPort
	Conn    *Conn // the TCP connection it arrived on; nil for UDP
	At      time.Time
}

// Stats are a Transport's counters.
type Stats struct {
	Malformed   uint64 // datagrams and streams that did not parse
	Stray       uint64 // responses that matched no client transaction
	Unaccepted  uint64 // responses refused by their transaction's Accept
	Absorbed    uint64 // request retransmissions absorbed by a server transaction
	Resent      uint64 // final responses resent to a retransmitted request
	Pongs       uint64 // CRLF keep-alive pongs sent (RFC 5626 §3.5.1)
	RefusedConn uint64 // inbound connections reset for MaxInbound
	ClientTxs   int    // client transactions running now
}

type connKey struct{ local, remote netip.AddrPort }

// Transport owns a set of sockets: UDP sockets and TCP listeners by local
// address, TCP connections by (local, remote), plus the client and server
// transactions that run over them.
type Transport struct {
	net     Net
	timers  Timers
	sinks   []PacketSink
	handle  func(*Inbound)
	log     *slog.Logger
	wtime   time.Duration
	maxIn   int
	idle    time.Duration
	inbound atomic.Int64

	mu     sync.Mutex
	closed bool
	// closing is closed by Close: it ends every client transaction.
	closing chan struct{}
	udp     map[netip.AddrPort]PacketConn
	listen  map[netip.AddrPort]Listener
	conns   map[connKey]*Conn
	wg      sync.WaitGroup

	txMu   sync.Mutex
	client map[txKey]*ClientTx
	server map[serverKey]*serverTx
	swept  time.Time

	stats struct {
		malformed, stray, unaccepted, absorbed, resent, pongs, refused atomic.Uint64
	}
}

// New returns a Transport with no sockets.
func New(cfg Config) *Transport {
	t := &Transport{
		net:    cfg.Net,
		timers: cfg.Timers.withDefaults(),
		sinks:  cfg.Sinks,
		handle: cfg.Handler,
		log:    cfg.Log,
		wtime:  cfg.WriteTimeout,
		maxIn:  cfg.MaxInbound,
		idle:   cfg.IdleTimeout,
		udp:    map[netip.AddrPort]PacketConn{},
		listen: map[netip.AddrPort]Listener{},
		conns:  map[connKey]*Conn{},
		client: map[txKey]*ClientTx{},
		server: map[serverKey]*serverTx{},

		closing: make(chan struct{}),
	}
	if t.net == nil {
		t.net = Kernel{}
	}
	if t.handle == nil {
		t.handle = func(*Inbound) {}
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.wtime <= 0 {
		t.wtime = DefaultWriteTimeout
	}
	return t
}

// Timers returns the Transport's timers.
func (t *Transport) Timers() Timers { return t.timers }

// Net returns the Net the Transport's sockets come from.
func (t *Transport) Net() Net { return t.net }

// Stats returns a snapshot of the counters.
func (t *Transport) Stats() Stats {
	t.txMu.Lock()
	running := len(t.client)
	t.txMu.Unlock()
	return Stats{ClientTxs: running,
		Malformed: t.stats.malformed.Load(), Stray: t.stats.stray.Load(),
		Unaccepted: t.stats.unaccepted.Load(), Absorbed: t.stats.absorbed.Load(),
		Resent: t.stats.resent.Load(), Pongs: t.stats.pongs.Load(), RefusedConn: t.stats.refused.Load(),
	}
}

// BindUDP opens a UDP socket on laddr (port 0: the Net chooses) and starts
// reading it. It returns the bound address.
func (t *Transport) BindUDP(laddr netip.AddrPort) (netip.AddrPort, error) {
	c, err := t.net.ListenUDP(laddr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind UDP %s: %w", laddr, err)
	}
	got := c.LocalAddr()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return netip.AddrPort{}, ErrClosed
	}
	t.udp[got] = c
	t.wg.Add(1)
	t.mu.Unlock()
	go t.readUDP(c, got)
	return got, nil
}

// Bind opens one port number for both UDP and TCP, as a SIP server port
// must be (RFC 3261 §18.2.1): port_us, port_ps, the unprotected 5060. With
// port 0 it retries until the number the Net chose for UDP is free for TCP
// too. shared lets this Transport dial TCP from the port while it listens
// (the P-CSCF's port_pc).
func (t *Transport) Bind(laddr netip.AddrPort, shared bool) (netip.AddrPort, error) {
	tries := 1
	if laddr.Port() == 0 {
		tries = 64
	}
	var lastErr error
	for range tries {
		got, err := t.BindUDP(laddr)
		if err != nil {
			return netip.AddrPort{}, err
		}
		if err = t.listenTCP(got, shared); err == nil {
			return got, nil
		}
		t.Release(got)
		lastErr = err
	}
	return netip.AddrPort{}, lastErr
}

func (t *Transport) listenTCP(laddr netip.AddrPort, shared bool) error {
	l, err := t.net.ListenTCP(laddr, shared)
	if err != nil {
		return fmt.Errorf("listen TCP %s: %w", laddr, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	t.listen[laddr] = l
	t.wg.Add(1)
	t.mu.Unlock()
	go t.accept(l, laddr)
	return nil
}

// Release closes everything bound to laddr: the UDP socket, the TCP
// listener and every TCP connection from or to it (reset, see Conn.Abort).
// A laddr with an unspecified IP also matches connections whose local IP
// is concrete.
func (t *Transport) Release(laddr netip.AddrPort) {
	t.mu.Lock()
	var victims []*Conn
	if c, ok := t.udp[laddr]; ok {
		c.Close()
		delete(t.udp, laddr)
	}
	if l, ok := t.listen[laddr]; ok {
		l.Close()
		delete(t.listen, laddr)
	}
	for k, c := range t.conns {
		if k.local == laddr || (laddr.Addr().IsUnspecified() && k.local.Port() == laddr.Port()) {
			victims = append(victims, c)
			delete(t.conns, k)
		}
	}
	t.mu.Unlock()
	for _, c := range victims {
		c.Abort()
	}
}

// CloseConns closes (reset) every connection for which match is true.
func (t *Transport) CloseConns(match func(c *Conn) bool) {
	t.mu.Lock()
	var victims []*Conn
	for k, c := range t.conns {
		if match(c) {
			victims = append(victims, c)
			delete(t.conns, k)
		}
	}
	t.mu.Unlock()
	for _, c := range victims {
		c.Abort()
	}
}

// Close closes every socket and connection, ends every client transaction
// and waits for the reader goroutines. It is idempotent.
func (t *Transport) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.wg.Wait()
		return
	}
	t.closed = true
	close(t.closing)
	for a, c := range t.udp {
		c.Close()
		delete(t.udp, a)
	}
	for a, l := range t.listen {
		l.Close()
		delete(t.listen, a)
	}
	victims := make([]*Conn, 0, len(t.conns))
	for k, c := range t.conns {
		victims = append(victims, c)
		delete(t.conns, k)
	}
	t.mu.Unlock()
	for _, c := range victims {
		c.Abort()
	}
	t.wg.Wait()
}

// SendUDP sends one message from the socket bound to from (as Bind or
// BindUDP returned it) to dst.
func (t *Transport) SendUDP(from, dst netip.AddrPort, data []byte) error {
	t.mu.Lock()
	c := t.udp[from]
	t.mu.Unlock()
	if c == nil {
		return fmt.Errorf("send UDP from %s: socket not open", from)
	}
	// Traced before the write, so that the answer is never traced first.
	// The source address of a socket bound to an unspecified IP is looked
	// up (a route lookup: a socket and some ten allocations) only for the
	// sinks that show it.
	if len(t.sinks) > 0 {
		local := from
		if local.Addr().IsUnspecified() {
			if a, ok := t.net.LocalFor(dst.Addr()); ok {
				local = netip.AddrPortFrom(a, from.Port())
			}
		}
		t.emit(Packet{Time: time.Now(), Sent: true, Network: "udp", Local: local, Remote: dst, Data: data})
	}
	if _, err := c.WriteTo(data, dst); err != nil {
		return fmt.Errorf("send UDP %s -> %s: %w", from, dst, err)
	}
	return nil
}

func (t *Transport) emit(p Packet) {
	for _, s := range t.sinks {
		_ = s.WritePacket(p)
	}
}

// readBufs recycles the 64 KiB UDP read buffers: every SA set binds new
// ports with their own readers (port_uc at the UE, port_pc at the
// P-CSCF), so a registration would otherwise allocate several of them.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 65536); return &b }}

func (t *Transport) readUDP(c PacketConn, local netip.AddrPort) {
	defer t.wg.Done()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors surface on some kernels as read errors on an
			// unconnected socket; they are not fatal to the socket.
			t.log.Debug("UDP read", "local", local, "err", err)
			continue
		}
		if len(bytes.Trim(buf[:n], "\r\n\x00")) == 0 {
			continue // keep-alive (RFC 5626 §4.4.1 allows none over UDP but peers send CRLFs)
		}
		t.deliver(buf[:n], "udp", local, from, nil)
	}
}

// deliver traces one received message, parses it and hands it on: a
// response to its client transaction, anything else to the Handler. It
// only borrows data (a read buffer, reused once it returns): sipgo's
// parser copies what the message keeps, and sinks must not retain
// Packet.Data.
func (t *Transport) deliver(data []byte, network string, local, remote netip.AddrPort, conn *Conn) {
	at := time.Now()
	t.emit(Packet{Time: at, Network: network, Local: local, Remote: remote, Data: data})
	msg, err := sip.ParseMessage(data)
	if err != nil {
		t.malformed(fmt.Errorf("%s message from %s: %w", strings.ToUpper(network), remote, err))
		return
	}
	in := &Inbound{Msg: msg, Network: network, Local: local, Remote: remote, Conn: conn, At: at}
	switch m := msg.(type) {
	case *sip.Response:
		t.matchResponse(in, m)
	case *sip.Request:
		t.handle(in)
	}
}

func (t *Transport) malformed(err error) {
	t.stats.malformed.Add(1)
	t.log.Debug("dropped unparsable data", "err", err)
}
