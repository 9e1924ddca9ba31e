package pcsctest

import "syscall"

// dieWithParent has the child get SIGTERM when the test process dies.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
