//go:build linux

// Package nstest gives host tests a private network namespace of their own
// for XFRM work: unnamed (nothing appears in /run/netns, unlike the UML
// lab's namespaces in test/uml/netlab) and gone when the test ends, so a
// test can install policies and states without touching the machine's.
// It needs root: without it the test is skipped, or failed under CI=true
// (see internal/testenv). Unlike netlab it runs on the build machine.
package nstest

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/internal/testenv"
)

// New creates an unnamed network namespace for t and returns a path that
// opens it (/proc/PID/fd/N, valid while t runs: what kernel.Config.NetNS
// takes) and a netlink XFRM handle inside it. Both are closed when t ends.
func New(t testing.TB) (string, *netlink.Handle) {
	t.Helper()
	testenv.NeedRoot(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("new netns: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		// This thread stays in the wrong namespace: keep it locked so it
		// dies with the goroutine.
		ns.Close()
		t.Fatalf("restore netns: %v", err)
	}
	runtime.UnlockOSThread()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_XFRM)
	if err != nil {
		ns.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); ns.Close() })
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(ns)), h
}
