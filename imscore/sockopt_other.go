//go:build !linux

package imscore

import "syscall"

// reusePortControl is a no-op where SO_REUSEPORT is not wired up: dialling
// TCP from port_pc then fails with "address in use" and the NOTIFY is lost.
func reusePortControl(_, _ string, _ syscall.RawConn) error { return nil }
