//go:build !linux

package sipnet

import (
	"net"
	"time"
)

// Outside Linux the socket options are left at their defaults: the UE and
// the core are built there for their unit tests only.
func setReuse(uintptr, bool) error { return nil }

func quickACK(*net.TCPConn) {}

func waitAcked(*net.TCPConn, time.Duration) bool { return false }
