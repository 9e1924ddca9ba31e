//go:build linux

package imscore

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortControl sets SO_REUSEPORT so that the P-CSCF can dial TCP from
// port_pc while its listener holds the same port (Linux refuses that bind
// with SO_REUSEADDR alone when the other socket listens).
func reusePortControl(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
