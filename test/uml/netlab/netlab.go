//go:build linux

// Package netlab builds the network the kernel tests run on inside the
// User-Mode Linux guest that test/uml/run boots: network namespace "ue" and
// network namespace "pcscf", joined by a veth pair (ue0 in ue, pcscf0 in
// pcscf) that carries IPv4 10.77.0.1/24 ↔ 10.77.0.2/24 and IPv6 fd77::1/64 ↔
// fd77::2/64. The UE and the P-CSCF must sit in different namespaces:
// loopback has disable_xfrm set, so ESP never applies on lo.
//
// Tests call Require first: outside the guest (IMSUE_KERNEL_TESTS and
// IMSUE_UML_GUEST unset) they skip, so that these addresses never appear on
// a build machine and `go test ./...` on the host stays harmless; the
// harness, which must not skip, fails instead when UML is missing.
//
// Code runs "in" a namespace through NS.Do, which moves a locked OS thread
// into the namespace for the duration of a function. Sockets keep the
// namespace they were created in, so the NS helpers return ordinary
// net.Conn values usable from any goroutine; processes started by NS.Start
// are born in the namespace.
package netlab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Environment variables of the harness.
const (
	// EnvKernelTests=1 enables the kernel tests (set by test/uml/run).
	EnvKernelTests = "IMSUE_KERNEL_TESTS"
	// EnvGuest=1 says the process runs in the UML guest (set by guest-init).
	EnvGuest = "IMSUE_UML_GUEST"
	// EnvOut names a directory on the host file system where guest tests
	// leave artifacts (captures, esp_sa files) for the host-side checks
	// (tests named TestUMLHost*), one directory per test binary.
	EnvOut = "IMSUE_UML_OUT"
	// EnvBin is the path of an imsue binary built by the harness.
	EnvBin = "IMSUE_BIN"
)

// The addresses of the lab. They exist only inside the guest.
var (
	UEv4    = netip.MustParseAddr("10.77.0.1")
	PCSCFv4 = netip.MustParseAddr("10.77.0.2")
	UEv6    = netip.MustParseAddr("fd77::1")
	PCSCFv6 = netip.MustParseAddr("fd77::2")
)

// Enabled reports whether kernel tests may run here.
func Enabled() bool {
	return os.Getenv(EnvKernelTests) == "1" && os.Getenv(EnvGuest) == "1"
}

// Require skips t unless it runs in the UML guest under test/uml/run.
func Require(t testing.TB) {
	t.Helper()
	if !Enabled() {
		t.Skipf("kernel test: runs inside User-Mode Linux through test/uml/run (%s=1 in the guest)", EnvKernelTests)
	}
	if os.Geteuid() != 0 {
		t.Fatal("kernel tests need root in the guest")
	}
}

// NS is one network namespace of the lab.
type NS struct {
	Name string // as `ip netns` knows it
	Path string // /run/netns/Name
	Link string // the veth end in this namespace
	V4   netip.Addr
	V6   netip.Addr

	handle netns.NsHandle
}

// Addr returns the namespace's IPv6 address if v6, else its IPv4 address.
func (n *NS) Addr(v6 bool) netip.Addr {
	if v6 {
		return n.V6
	}
	return n.V4
}

// Lab is the two namespaces and the veth between them.
type Lab struct {
	UE, PCSCF *NS
}

// New creates the lab (replacing a lab a crashed test left) and removes it
// when t ends. It requires Enabled.
func New(t testing.TB) *Lab {
	t.Helper()
	Require(t)
	l, err := create()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab: %v", err)
		}
	})
	return l
}

func create() (*Lab, error) {
	l := &Lab{
		UE:    &NS{Name: "ue", Path: "/run/netns/ue", Link: "ue0", V4: UEv4, V6: UEv6},
		PCSCF: &NS{Name: "pcscf", Path: "/run/netns/pcscf", Link: "pcscf0", V4: PCSCFv4, V6: PCSCFv6},
	}
	for _, n := range []*NS{l.UE, l.PCSCF} {
		netns.DeleteNamed(n.Name) // a previous lab's; absent is fine
		h, err := newNamed(n.Name)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("namespace %s: %w", n.Name, err)
		}
		n.handle = h
	}
	hu, err := netlink.NewHandleAt(l.UE.handle)
	if err != nil {
		l.Close()
		return nil, err
	}
	defer hu.Close()
	hp, err := netlink.NewHandleAt(l.PCSCF.handle)
	if err != nil {
		l.Close()
		return nil, err
	}
	defer hp.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: l.UE.Link},
		PeerName:      l.PCSCF.Link,
		PeerNamespace: netlink.NsFd(int(l.PCSCF.handle)),
	}
	if err := hu.LinkAdd(veth); err != nil {
		l.Close()
		return nil, fmt.Errorf("veth %s/%s: %w", l.UE.Link, l.PCSCF.Link, err)
	}
	for _, side := range []struct {
		n *NS
		h *netlink.Handle
	}{{l.UE, hu}, {l.PCSCF, hp}} {
		if err := configure(side.h, side.n); err != nil {
			l.Close()
			return nil, fmt.Errorf("namespace %s: %w", side.n.Name, err)
		}
	}
	return l, nil
}

// newNamed creates a named namespace the way `ip netns add` does, from a
// locked thread that it returns to its original namespace.
func newNamed(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), err
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if rerr := netns.Set(orig); rerr != nil {
		// The thread is stuck in another namespace: leave it locked so that
		// it ends with this goroutine instead of serving others.
		if err == nil {
			h.Close()
		}
		return netns.None(), fmt.Errorf("return to the original namespace: %w", rerr)
	}
	runtime.UnlockOSThread()
	return h, err
}

func configure(h *netlink.Handle, n *NS) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	link, err := h.LinkByName(n.Link)
	if err != nil {
		return err
	}
	for _, a := range []struct {
		addr netip.Addr
		bits int
	}{{n.V4, 24}, {n.V6, 64}} {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.addr.AsSlice(), Mask: net.CIDRMask(a.bits, a.addr.BitLen())}}
		if a.addr.Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once, no duplicate address detection
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("address %v: %w", a.addr, err)
		}
	}
	return h.LinkSetUp(link)
}

// Close deletes the namespaces (their SAs, policies and veth go with them
// once the last socket in them is closed).
func (l *Lab) Close() error {
	var errs []error
	for _, n := range []*NS{l.UE, l.PCSCF} {
		if n.handle.IsOpen() {
			n.handle.Close()
		}
		if err := netns.DeleteNamed(n.Name); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Do runs fn on an OS thread moved into the namespace.
func (n *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(n.handle); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", n.Name, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Stay locked: the thread dies with the goroutine.
		return errors.Join(fnErr, fmt.Errorf("leave namespace %s: %w", n.Name, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Start starts cmd inside the namespace: the child is forked from a thread
// that is in it.
func (n *NS) Start(cmd *exec.Cmd) error { return n.Do(cmd.Start) }

// Run runs cmd inside the namespace and waits for it.
func (n *NS) Run(cmd *exec.Cmd) error {
	if err := n.Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// ListenUDP opens a UDP socket in the namespace bound to addr.
func (n *NS) ListenUDP(addr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := n.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	return c, err
}

// ListenTCP opens a TCP listener in the namespace bound to addr.
func (n *NS) ListenTCP(addr netip.AddrPort) (*net.TCPListener, error) {
	var l *net.TCPListener
	err := n.Do(func() (err error) {
		l, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	return l, err
}

// DialTCP connects from local to remote inside the namespace.
func (n *NS) DialTCP(local, remote netip.AddrPort) (*net.TCPConn, error) {
	var c *net.TCPConn
	err := n.Do(func() (err error) {
		c, err = net.DialTCP("tcp", net.TCPAddrFromAddrPort(local), net.TCPAddrFromAddrPort(remote))
		return err
	})
	return c, err
}

// XfrmStat returns the namespace's XFRM error counters
// (/proc/net/xfrm_stat as seen from inside it), such as XfrmInTmplMismatch.
func (n *NS) XfrmStat() (map[string]uint64, error) {
	var b []byte
	err := n.Do(func() (err error) {
		// thread-self: /proc/self/net is the namespace of the thread-group
		// leader, not of this thread.
		b, err = os.ReadFile("/proc/thread-self/net/xfrm_stat")
		return err
	})
	if err != nil {
		return nil, err
	}
	return ParseXfrmStat(b)
}

// ParseXfrmStat parses /proc/net/xfrm_stat: one "Name value" per line.
func ParseXfrmStat(b []byte) (map[string]uint64, error) {
	m := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("xfrm_stat line %d: %d fields, want 2", line, len(f))
		}
		v, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("xfrm_stat line %d (%s): %w", line, f[0], err)
		}
		m[string(f[0])] = v
	}
	return m, sc.Err()
}
