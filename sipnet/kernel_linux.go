//go:build linux

package sipnet

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// setReuse sets SO_REUSEADDR and, with port, SO_REUSEPORT (Linux refuses a
// bind to a port another socket listens on with SO_REUSEADDR alone).
func setReuse(fd uintptr, port bool) error {
	if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if port {
		return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	return nil
}

// quickACK re-arms TCP_QUICKACK, which Linux clears after use, so that the
// ACK of the next segment leaves at once rather than up to 40 ms later. On a
// protected connection this matters at the end: the UE removes its SAs as
// soon as the final response is read, and a delayed ACK would then leave
// outside them (dropped by the P-CSCF's policy), making the P-CSCF
// retransmit — after its own SAs are gone, in clear text.
func quickACK(c *net.TCPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
}

// waitAcked waits, at most max, until the peer has acknowledged every byte
// written on c (SIOCOUTQ reaches 0), and reports whether it did.
func waitAcked(c *net.TCPConn, max time.Duration) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	deadline := time.Now().Add(max)
	for {
		n, ierr := -1, error(nil)
		if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
			return false
		}
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}
