//go:build linux

package sipclient

import (
	"net"
	"syscall"
)

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
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
