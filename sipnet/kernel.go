package sipnet

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Kernel is the host's network: real UDP and TCP sockets.
type Kernel struct{}

var _ Net = Kernel{}

// ipNet is the network name for proto ("udp", "tcp") and a's family. The
// names are constants: proto + "4" allocated one per socket.
func ipNet(proto string, a netip.Addr) string {
	v4 := a.Is4()
	switch {
	case proto == "udp" && v4:
		return "udp4"
	case proto == "udp":
		return "udp6"
	case proto == "tcp" && v4:
		return "tcp4"
	case proto == "tcp":
		return "tcp6"
	case v4:
		return proto + "4"
	}
	return proto + "6"
}

// ListenUDP implements Net.
func (Kernel) ListenUDP(laddr netip.AddrPort) (PacketConn, error) {
	c, err := net.ListenUDP(ipNet("udp", laddr.Addr()), net.UDPAddrFromAddrPort(laddr))
	if err != nil {
		return nil, err
	}
	return kernelUDP{c}, nil
}

// ListenTCP implements Net. Listeners always set SO_REUSEADDR (a restarted
// UE or core rebinds its fixed ports at once); shared adds SO_REUSEPORT.
func (Kernel) ListenTCP(laddr netip.AddrPort, shared bool) (Listener, error) {
	ctl := reuseAddr
	if shared {
		ctl = reuseAddrPort
	}
	lc := net.ListenConfig{Control: ctl}
	l, err := lc.Listen(context.Background(), ipNet("tcp", laddr.Addr()), laddr.String())
	if err != nil {
		return nil, err
	}
	return kernelListener{l.(*net.TCPListener)}, nil
}

// DialTCP implements Net. The socket sets SO_REUSEADDR and SO_REUSEPORT
// before binding: a fixed local port may still have a connection in
// TIME_WAIT, or a shared listener.
func (Kernel) DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (StreamConn, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(laddr), Control: reuseAddrPort}
	c, err := d.DialContext(ctx, ipNet("tcp", raddr.Addr()), raddr.String())
	if err != nil {
		return nil, err
	}
	return newKernelTCP(c.(*net.TCPConn)), nil
}

// LocalFor implements Net: a connected UDP socket tells the route's source.
func (Kernel) LocalFor(dst netip.Addr) (netip.Addr, bool) {
	c, err := net.DialUDP(ipNet("udp", dst), nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), true
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

type kernelUDP struct{ c *net.UDPConn }

func (u kernelUDP) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, src, err := u.c.ReadFromUDPAddrPort(b)
	return n, unmap(src), err
}
func (u kernelUDP) WriteTo(b []byte, dst netip.AddrPort) (int, error) {
	return u.c.WriteToUDPAddrPort(b, dst)
}
func (u kernelUDP) LocalAddr() netip.AddrPort {
	return unmap(u.c.LocalAddr().(*net.UDPAddr).AddrPort())
}
func (u kernelUDP) Close() error { return u.c.Close() }

type kernelListener struct{ l *net.TCPListener }

func (l kernelListener) Accept() (StreamConn, error) {
	c, err := l.l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return newKernelTCP(c), nil
}
func (l kernelListener) Addr() netip.AddrPort { return unmap(l.l.Addr().(*net.TCPAddr).AddrPort()) }
func (l kernelListener) Close() error         { return l.l.Close() }

type kernelTCP struct {
	c             *net.TCPConn
	local, remote netip.AddrPort
}

func newKernelTCP(c *net.TCPConn) *kernelTCP {
	return &kernelTCP{c: c,
		local:  unmap(c.LocalAddr().(*net.TCPAddr).AddrPort()),
		remote: unmap(c.RemoteAddr().(*net.TCPAddr).AddrPort()),
	}
}

// Read re-arms TCP_QUICKACK first (see quickACK).
func (k *kernelTCP) Read(b []byte) (int, error) {
	quickACK(k.c)
	return k.c.Read(b)
}
func (k *kernelTCP) Write(b []byte) (int, error)        { return k.c.Write(b) }
func (k *kernelTCP) LocalAddr() netip.AddrPort          { return k.local }
func (k *kernelTCP) RemoteAddr() netip.AddrPort         { return k.remote }
func (k *kernelTCP) SetWriteDeadline(t time.Time) error { return k.c.SetWriteDeadline(t) }
func (k *kernelTCP) Close() error                       { return k.c.Close() }
func (k *kernelTCP) Abort() error {
	_ = k.c.SetLinger(0)
	return k.c.Close()
}
func (k *kernelTCP) Drained(max time.Duration) bool { return waitAcked(k.c, max) }

func reuseAddr(_, _ string, rc syscall.RawConn) error     { return control(rc, false) }
func reuseAddrPort(_, _ string, rc syscall.RawConn) error { return control(rc, true) }

func control(rc syscall.RawConn, port bool) error {
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setReuse(fd, port) }); err != nil {
		return err
	}
	return serr
}
