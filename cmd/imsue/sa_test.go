package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/internal/nstest"
	"github.com/imsue/imsue/ipsec/kernel"
)

// addPolicy installs an outbound transport policy 10.0.0.1:sport →
// 10.0.0.2:dport whose template has reqid and spi, as imsue (reqid in its
// range) or another program would.
func addPolicy(t *testing.T, h *netlink.Handle, sport, dport, spi int, reqid uint32) {
	t.Helper()
	src, dst := net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.2")
	p := netlink.XfrmPolicy{
		Src: &net.IPNet{IP: src, Mask: net.CIDRMask(32, 32)}, Dst: &net.IPNet{IP: dst, Mask: net.CIDRMask(32, 32)},
		SrcPort: sport, DstPort: dport, Dir: netlink.XFRM_DIR_OUT, Priority: kernel.PolicyPriority,
		Tmpls: []netlink.XfrmPolicyTmpl{{Src: src, Dst: dst, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT, Spi: spi, Reqid: int(reqid)}},
	}
	if err := h.XfrmPolicyAdd(&p); err != nil {
		t.Fatal(err)
	}
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestSAListAndFlush(t *testing.T) {
	path, h := nstest.New(t)
	dir := t.TempDir()
	const reqid = kernel.ReqIDMin + 7
	addPolicy(t, h, 5100, 5201, 0x2001, reqid)
	addPolicy(t, h, 5101, 5200, 0x2000, reqid)
	addPolicy(t, h, 6000, 6001, 0x3000, 5) // another program's

	code, out, errs := runCLI(t, "sa", "list", "--json", "--netns", path, "--state-dir", dir)
	if code != 0 {
		t.Fatalf("sa list: exit %d, %s", code, errs)
	}
	var list saListResult
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("sa list --json: %v\n%s", err, out)
	}
	if len(list.Sets) != 1 || list.Sets[0].ReqID != reqid || list.Sets[0].Owner != nil || len(list.Sets[0].Policies) != 2 || len(list.Sets[0].SAs) != 0 {
		t.Fatalf("sa list: %s", out)
	}
	if p := list.Sets[0].Policies[0]; p.Dir != "out" || p.Src != "10.0.0.1:5101" || p.Dst != "10.0.0.2:5200" || p.SPI != 0x2000 {
		t.Errorf("first policy %+v", p)
	}

	code, out, _ = runCLI(t, "sa", "list", "--netns", path, "--state-dir", dir)
	if code != 0 || !strings.Contains(out, "set reqid 0x494d0008: no state record") || !strings.Contains(out, "10.0.0.1:5100 → 10.0.0.2:5201  spi 0x00002001") {
		t.Fatalf("sa list (text): exit %d\n%s", code, out)
	}

	code, out, errs = runCLI(t, "sa", "flush", "--json", "--stale", "--netns", path, "--state-dir", dir)
	var fl saFlushResult
	if code != 0 || json.Unmarshal([]byte(out), &fl) != nil {
		t.Fatalf("sa flush --stale: exit %d %s %s", code, out, errs)
	}
	if fl != (saFlushResult{Result: "flushed", Mode: "stale", Sets: 1, SAs: 0, Policies: 2}) {
		t.Fatalf("sa flush --stale (a set without record is stale): %+v", fl)
	}
	pols, err := h.XfrmPolicyList(netlink.FAMILY_ALL)
	if err != nil || len(pols) != 1 || pols[0].Tmpls[0].Reqid != 5 {
		t.Fatalf("after flush: %v %v (want only the foreign policy)", pols, err)
	}
	code, out, _ = runCLI(t, "sa", "flush", "--netns", path, "--state-dir", dir)
	if code != 0 || out != "removed 0 SAs and 0 policies (0 sets)\n" {
		t.Fatalf("second flush: exit %d %q", code, out)
	}
	code, out, _ = runCLI(t, "sa", "list", "--netns", path, "--state-dir", dir)
	if code != 0 || !strings.Contains(out, "no imsue SAs") {
		t.Fatalf("list after flush: exit %d %q", code, out)
	}
}

func TestSAUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"sa", "list", "extra"},
		{"sa", "flush", "--bogus"},
		{"sa", "list", "--netns", "imsue-test-no-such-netns"},
	} {
		code, _, errs := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, errs)
		}
	}
}

func TestSAExitCodeIPsec(t *testing.T) {
	for _, err := range []error{
		&kernel.Error{Op: "add SA", Err: unix.EEXIST},
		fmt.Errorf("register: %w", &kernel.Error{Op: "open", Err: unix.EPERM}),
	} {
		if code := exitCode(err); code != exitIPsec {
			t.Errorf("exitCode(%v) = %d, want %d", err, code, exitIPsec)
		}
	}
}
