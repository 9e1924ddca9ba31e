//go:build linux

package imscore

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

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
