//go:build !linux

package pcsctest

import "syscall"

func dieWithParent() *syscall.SysProcAttr { return nil }
