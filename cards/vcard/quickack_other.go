//go:build !linux

package vcard

import "net"

func quickACK(net.Conn) {}
