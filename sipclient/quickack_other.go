//go:build !linux

package sipclient

import "net"

func quickACK(*net.TCPConn) {}
