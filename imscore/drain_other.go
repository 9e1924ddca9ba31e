//go:build !linux

package imscore

import (
	"net"
	"time"
)

func waitAcked(*net.TCPConn, time.Duration) bool { return false }
