package sipnet

import (
	"context"
	"net/netip"
	"time"
)

// Net is where a Transport's sockets come from: the host's kernel (Kernel)
// or a test double (package memnet). Implementations must be safe for
// concurrent use.
//
// Addresses are netip.AddrPort with IPv4 addresses unmapped. A local
// address may have an unspecified IP (listen on every address); a port of
// 0 asks the Net to choose one.
type Net interface {
	// ListenUDP opens a UDP socket bound to laddr.
	ListenUDP(laddr netip.AddrPort) (PacketConn, error)
	// ListenTCP opens a TCP listener on laddr. shared allows connections
	// dialled from the same port while the listener holds it (Linux:
	// SO_REUSEPORT); the P-CSCF dials from port_pc, on which it listens.
	ListenTCP(laddr netip.AddrPort, shared bool) (Listener, error)
	// DialTCP connects from laddr (port 0: any) to raddr. It must succeed
	// while an earlier connection from laddr lingers (TIME_WAIT) and while
	// a shared listener holds laddr's port.
	DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (StreamConn, error)
	// LocalFor is the local address the Net would send from towards dst
	// (the route's source address); ok is false when there is no route.
	LocalFor(dst netip.Addr) (src netip.Addr, ok bool)
}

// PacketConn is one bound UDP socket. ReadFrom blocks until a datagram
// arrives or the socket is closed (then it returns an error wrapping
// net.ErrClosed). A datagram is never split or merged.
type PacketConn interface {
	ReadFrom(b []byte) (n int, src netip.AddrPort, err error)
	WriteTo(b []byte, dst netip.AddrPort) (int, error)
	LocalAddr() netip.AddrPort
	Close() error
}

// Listener accepts TCP connections. Accept returns an error wrapping
// net.ErrClosed after Close.
type Listener interface {
	Accept() (StreamConn, error)
	Addr() netip.AddrPort
	Close() error
}

// StreamConn is one TCP connection: an ordered, reliable byte stream.
type StreamConn interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	LocalAddr() netip.AddrPort
	RemoteAddr() netip.AddrPort
	SetWriteDeadline(t time.Time) error
	// Close closes the connection in order (FIN).
	Close() error
	// Abort closes it with a reset (SO_LINGER 0): nothing lingers in
	// TIME_WAIT to stop the next connection between the same two ports.
	Abort() error
	// Drained waits, at most max, until the peer acknowledged every byte
	// written, and reports whether it did. An implementation that cannot
	// tell reports false at once.
	Drained(max time.Duration) bool
}
