package kernel

// Tests against the running kernel, each in a fresh network namespace of its
// own (unnamed: nothing appears in /run/netns, and it vanishes with the
// test). They need root. The build and CI machines' kernel has XFRM but no
// ESP and no DES, so here Install must fail cleanly; the policy half of the
// backend (selectors, templates, ownership, List, Flush, rollback) is
// exercised for real by installing sets without their states.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/internal/nstest"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
)

func dumpAll(t *testing.T, h *netlink.Handle) ([]netlink.XfrmState, []netlink.XfrmPolicy) {
	t.Helper()
	st, err := h.XfrmStateList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := h.XfrmPolicyList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	return st, pol
}

// foreignPolicy adds, as another program would, a policy with reqid 5.
func foreignPolicy(t *testing.T, h *netlink.Handle, src, dst string, sport, dport int, dir netlink.Dir) netlink.XfrmPolicy {
	t.Helper()
	s, d := net.ParseIP(src), net.ParseIP(dst)
	bits := 32
	if s.To4() == nil {
		bits = 128
	}
	p := netlink.XfrmPolicy{
		Src: &net.IPNet{IP: s, Mask: net.CIDRMask(bits, bits)}, Dst: &net.IPNet{IP: d, Mask: net.CIDRMask(bits, bits)},
		SrcPort: sport, DstPort: dport, Dir: dir,
		Tmpls: []netlink.XfrmPolicyTmpl{{Src: s, Dst: d, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT, Reqid: 5}},
	}
	if err := h.XfrmPolicyAdd(&p); err != nil {
		t.Fatalf("foreign policy: %v", err)
	}
	return p
}

func countOwned(states []netlink.XfrmState, pols []netlink.XfrmPolicy) (ns, np int) {
	for _, s := range states {
		if Owned(uint32(s.Reqid)) {
			ns++
		}
	}
	for i := range pols {
		if policyReqID(&pols[i]) != 0 {
			np++
		}
	}
	return
}

func hasReqid5(pols []netlink.XfrmPolicy) bool {
	for _, p := range pols {
		for _, tm := range p.Tmpls {
			if tm.Reqid == 5 {
				return true
			}
		}
	}
	return false
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("state dir holds %d entries after the set is gone: %v", len(ents), ents[0].Name())
	}
}

// probeState adds and deletes an ESP state with the given algorithms,
// directly through netlink, to learn what this kernel supports.
func probeState(h *netlink.Handle, v6 bool, enc string, key []byte) error {
	src, dst := net.ParseIP("192.0.2.1"), net.ParseIP("192.0.2.2")
	if v6 {
		src, dst = net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
	}
	st := netlink.XfrmState{Src: src, Dst: dst, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT, Spi: 0x999,
		Auth:  &netlink.XfrmStateAlgo{Name: "hmac(sha1)", Key: make([]byte, 20), TruncateLen: 96},
		Crypt: &netlink.XfrmStateAlgo{Name: enc, Key: key}}
	err := h.XfrmStateAdd(&st)
	if err == nil {
		h.XfrmStateDel(&st)
	}
	return err
}

// TestHostInstallWithoutESP: on a kernel without ESP, Install fails with an
// error that wraps ipsec.ErrUnsupported, says ESP is missing and that
// --ipsec none exists, and leaves no state, no policy and no record, while
// another program's policy stays.
func TestHostInstallWithoutESP(t *testing.T) {
	for _, tt := range []struct {
		name       string
		ue, pcscf  string
		auth       ipsec.Auth
		authKey    string
		enc        ipsec.Enc
		encKey     string
		wantFamily string
	}{
		{"ipv4 sha1 aes", "10.77.0.1", "10.77.0.2", ipsec.AuthHMACSHA196, exIK + "00000000", ipsec.EncAESCBC, exCK, "IPv4"},
		{"ipv6 md5 null", "fd77::1", "fd77::2", ipsec.AuthHMACMD596, exIK, ipsec.EncNull, "", "IPv6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, h := nstest.New(t)
			if err := probeState(h, tt.wantFamily == "IPv6", "cbc(aes)", make([]byte, 16)); !errors.Is(err, unix.EPROTONOSUPPORT) {
				t.Skipf("this kernel has ESP for %s (probe: %v); the no-ESP path is proven where it lacks it", tt.wantFamily, err)
			}
			foreignPolicy(t, h, tt.ue, tt.pcscf, 6000, 6001, netlink.XFRM_DIR_OUT)
			dir := filepath.Join(t.TempDir(), "state")
			b, err := New(Config{NetNS: path, StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			set := ueSet(t, tt.ue, tt.pcscf, tt.auth, unhex(t, tt.authKey), tt.enc, unhex(t, tt.encKey))
			err = b.Install(context.Background(), set)
			var kerr *Error
			if !errors.Is(err, ipsec.ErrUnsupported) || !errors.Is(err, unix.EPROTONOSUPPORT) || !errors.As(err, &kerr) {
				t.Fatalf("Install: %v; want an *Error wrapping ErrUnsupported and EPROTONOSUPPORT", err)
			}
			msg := err.Error()
			for _, want := range []string{"no ESP for " + tt.wantFamily, "--ipsec none", "spi=8193"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			states, pols := dumpAll(t, h)
			if len(states) != 0 || len(pols) != 1 || !hasReqid5(pols) {
				t.Fatalf("after the failed install: %d states, %d policies (want 0 and the foreign one)", len(states), len(pols))
			}
			emptyDir(t, dir)
			if err := b.Remove(context.Background(), set); err != nil {
				t.Fatalf("Remove of a set that failed to install: %v", err)
			}
		})
	}
}

// TestHostInstallWithoutDES: a kernel without DES rejects cbc(des3_ede) with
// ENOSYS before it looks for ESP; the error names the cipher and the module.
func TestHostInstallWithoutDES(t *testing.T) {
	path, h := nstest.New(t)
	if err := probeState(h, false, "cbc(des3_ede)", make([]byte, 24)); !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.ENOENT) {
		t.Skipf("this kernel does not reject cbc(des3_ede) as missing (probe: %v)", err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	b, err := New(Config{NetNS: path, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	set := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncDES3EDECBC, unhex(t, exCK+exCK[:16]))
	err = b.Install(context.Background(), set)
	if !errors.Is(err, ipsec.ErrUnsupported) {
		t.Fatalf("Install: %v; want ErrUnsupported", err)
	}
	for _, want := range []string{"cbc(des3_ede)", "des_generic", "--ipsec none"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	states, pols := dumpAll(t, h)
	if len(states)+len(pols) != 0 {
		t.Fatalf("%d states and %d policies left", len(states), len(pols))
	}
	emptyDir(t, dir)
}

// installPoliciesOnly runs the real install path (record, netlink, rollback)
// with the states left out, which is what this ESP-less kernel can hold.
func installPoliciesOnly(t *testing.T, b *Backend, set *ipsec.SASet) error {
	t.Helper()
	objs, err := buildSet(set, 0)
	if err != nil {
		t.Fatal(err)
	}
	objs.states = nil
	return b.install(context.Background(), set, objs)
}

func TestHostPoliciesListAndFlush(t *testing.T) {
	for _, fam := range []struct{ ue, pcscf, bits string }{{"10.77.0.1", "10.77.0.2", "/32"}, {"fd77::1", "fd77::2", "/128"}} {
		t.Run(fam.ue, func(t *testing.T) {
			path, h := nstest.New(t)
			foreignPolicy(t, h, fam.ue, fam.pcscf, 6000, 6001, netlink.XFRM_DIR_OUT)
			dir := filepath.Join(t.TempDir(), "state")
			b, err := New(Config{NetNS: path, StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			set := ueSet(t, fam.ue, fam.pcscf, ipsec.AuthHMACSHA196, unhex(t, exIK+"00000000"), ipsec.EncAESCBC, unhex(t, exCK))
			if err := installPoliciesOnly(t, b, set); err != nil {
				t.Fatal(err)
			}
			if err := installPoliciesOnly(t, b, set); err == nil || !strings.Contains(err.Error(), "already installed") {
				t.Fatalf("second install of the same set: %v", err)
			}
			// What the kernel holds, read back independently.
			_, pols := dumpAll(t, h)
			if len(pols) != 5 {
				t.Fatalf("%d policies, want 4 + the foreign one", len(pols))
			}
			seen := 0
			for _, p := range pols {
				reqid := policyReqID(&p)
				if reqid == 0 {
					continue
				}
				seen++
				if p.Proto != 0 || p.Priority != PolicyPriority || !strings.HasSuffix(p.Src.String(), fam.bits) || !strings.HasSuffix(p.Dst.String(), fam.bits) {
					t.Errorf("policy %v: want no protocol, priority %d, host prefixes", p, PolicyPriority)
				}
				if p.SrcPort == 0 || p.DstPort == 0 || len(p.Tmpls) != 1 || p.Tmpls[0].Spi < 4096 || p.Tmpls[0].Mode != netlink.XFRM_MODE_TRANSPORT {
					t.Errorf("policy %v: want both ports and one transport template with the SPI", p)
				}
				wantDir := netlink.XFRM_DIR_IN
				if p.Src.IP.Equal(net.ParseIP(fam.ue)) {
					wantDir = netlink.XFRM_DIR_OUT
				}
				if p.Dir != wantDir {
					t.Errorf("policy %v: dir %v, want %v", p, p.Dir, wantDir)
				}
			}
			if seen != 4 {
				t.Fatalf("%d imsue policies", seen)
			}

			sets, err := List(context.Background(), Config{NetNS: path, StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if len(sets) != 1 || len(sets[0].Policies) != 4 || len(sets[0].States) != 0 || !Owned(sets[0].ReqID) {
				t.Fatalf("List: %+v", sets)
			}
			if o := sets[0].Owner; o == nil || o.PID != os.Getpid() || !o.Alive {
				t.Fatalf("owner %+v, want this live process", o)
			}
			p0 := sets[0].Policies[0]
			if p0.Dir != ipsec.Out || p0.SPI != 8192 || p0.Src.Port() != 5101 || p0.Dst.Port() != 5200 || p0.Src.Addr().String() != fam.ue {
				t.Errorf("first policy %+v, want out %s:5101 → :5200 spi 8192", p0, fam.ue)
			}

			n, err := Flush(context.Background(), Config{NetNS: path, StateDir: dir}, FlushStale)
			if err != nil || n != (Flushed{}) {
				t.Fatalf("FlushStale removed %+v (%v) of a live owner's set", n, err)
			}
			n, err = Flush(context.Background(), Config{NetNS: path, StateDir: dir}, FlushAll)
			if err != nil || n != (Flushed{Sets: 1, Policies: 4}) {
				t.Fatalf("FlushAll: %+v, %v", n, err)
			}
			_, pols = dumpAll(t, h)
			if len(pols) != 1 || !hasReqid5(pols) {
				t.Fatalf("after flush: %d policies (want the foreign one)", len(pols))
			}
			emptyDir(t, dir)
			if err := b.Remove(context.Background(), set); err != nil {
				t.Fatalf("Remove after flush: %v", err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHostRollback: the third policy collides with another program's; the
// install fails naming the policy, and what it had created is gone.
func TestHostRollback(t *testing.T) {
	path, h := nstest.New(t)
	foreignPolicy(t, h, "10.77.0.2", "10.77.0.1", 5200, 5101, netlink.XFRM_DIR_IN) // = SA #3's
	dir := filepath.Join(t.TempDir(), "state")
	b, err := New(Config{NetNS: path, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	set := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncNull, nil)
	err = installPoliciesOnly(t, b, set)
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "add policy dir in for SA #3") || errors.Is(err, ipsec.ErrUnsupported) {
		t.Fatalf("Install: %v", err)
	}
	_, pols := dumpAll(t, h)
	if len(pols) != 1 || !hasReqid5(pols) {
		t.Fatalf("after rollback: %d policies (want the foreign one)", len(pols))
	}
	emptyDir(t, dir)
	// The set can be installed once the conflict is gone.
	if err := h.XfrmPolicyDel(&pols[0]); err != nil {
		t.Fatal(err)
	}
	if err := installPoliciesOnly(t, b, set); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, pols = dumpAll(t, h)
	if len(pols) != 0 {
		t.Fatalf("Close left %d policies", len(pols))
	}
	emptyDir(t, dir)
}

// TestHostStaleSets: sets whose owner is gone, or that have no record, are
// what FlushStale removes; a live owner's set stays.
func TestHostStaleSets(t *testing.T) {
	path, h := nstest.New(t)
	dir := filepath.Join(t.TempDir(), "state")
	cfg := Config{NetNS: path, StateDir: dir}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	live := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncNull, nil)
	dead := ueSet(t, "10.77.0.1", "10.77.0.3", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncNull, nil)
	dead.ID = 8
	orphan := ueSet(t, "10.77.0.1", "10.77.0.4", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncNull, nil)
	orphan.ID = 9
	for _, s := range []*ipsec.SASet{live, dead, orphan} {
		if err := installPoliciesOnly(t, b, s); err != nil {
			t.Fatal(err)
		}
	}
	// A process that has exited owns "dead"; "orphan" lost its record.
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	rewriteOwner(t, b.live[dead.ID].record, exited.Process.Pid)
	if err := os.Remove(b.live[orphan.ID].record); err != nil {
		t.Fatal(err)
	}
	n, err := Flush(context.Background(), cfg, FlushStale)
	if err != nil || n != (Flushed{Sets: 2, Policies: 8}) {
		t.Fatalf("FlushStale: %+v, %v", n, err)
	}
	sets, err := List(context.Background(), cfg)
	if err != nil || len(sets) != 1 || sets[0].ReqID != b.live[live.ID].reqid || len(sets[0].Policies) != 4 {
		t.Fatalf("after FlushStale: %+v, %v", sets, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, pols := dumpAll(t, h)
	if len(pols) != 0 {
		t.Fatalf("%d policies left", len(pols))
	}
	emptyDir(t, dir)
}

func rewriteOwner(t *testing.T, path string, pid int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	r.PID = pid
	nb, _ := json.Marshal(r)
	if err := os.WriteFile(path, nb, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestHostRemoveByAnotherBackend: a Backend that did not install a set
// removes the imsue-tagged objects matching it, never another program's
// policy with the same selector.
func TestHostRemoveByAnotherBackend(t *testing.T) {
	path, h := nstest.New(t)
	dir := filepath.Join(t.TempDir(), "state")
	cfg := Config{NetNS: path, StateDir: dir}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	set := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncNull, nil)
	if err := installPoliciesOnly(t, a, set); err != nil {
		t.Fatal(err)
	}
	// Another set shares SA #1's selector with a foreign policy.
	other := ueSet(t, "10.77.0.1", "10.77.0.9", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncNull, nil)
	foreignPolicy(t, h, "10.77.0.1", "10.77.0.9", 5100, 5201, netlink.XFRM_DIR_OUT)

	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range []*ipsec.SASet{set, other, set} {
		if err := b.Remove(context.Background(), s); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	_, pols := dumpAll(t, h)
	if len(pols) != 1 || !hasReqid5(pols) {
		t.Fatalf("%d policies left, want only the foreign one", len(pols))
	}
	emptyDir(t, dir)
	if err := a.Close(); err != nil {
		t.Fatalf("Close of the first backend after its set was removed elsewhere: %v", err)
	}
}

// TestHostNoCapNetAdmin drops CAP_NET_ADMIN from this thread's effective set
// (capabilities are per thread) and opens the backend on it.
func TestHostNoCapNetAdmin(t *testing.T) {
	testenv.NeedRoot(t)
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var saved, dropped [2]unix.CapUserData
	if err := unix.Capget(&hdr, &saved[0]); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	dropped = saved
	dropped[0].Effective &^= 1 << unix.CAP_NET_ADMIN
	if err := unix.Capset(&hdr, &dropped[0]); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	_, err := New(Config{StateDir: t.TempDir()})
	if rerr := unix.Capset(&hdr, &saved[0]); rerr != nil {
		t.Fatalf("restore capabilities: %v", rerr) // thread stays locked and dies with the test goroutine
	}
	runtime.UnlockOSThread()
	if !errors.Is(err, ipsec.ErrUnsupported) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") || !strings.Contains(err.Error(), "--ipsec none") {
		t.Fatalf("New without CAP_NET_ADMIN: %v", err)
	}
}

func TestHostMissingNetns(t *testing.T) {
	testenv.NeedRoot(t)
	_, err := New(Config{NetNS: "imsue-test-no-such-netns", StateDir: t.TempDir()})
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Op != "open network namespace" || !strings.Contains(err.Error(), "/run/netns/imsue-test-no-such-netns") {
		t.Fatalf("New: %v", err)
	}
	if errors.Is(err, ipsec.ErrUnsupported) {
		t.Fatal("a missing namespace is a configuration error, not missing kernel support")
	}
}
