//go:build linux

package netlab

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The foreign SA and policy that Foreign installs: reqid 7 is outside the
// range imsue allocates, so imsue must never list, flush or remove them.
const (
	foreignReqid = 7
	foreignSPI   = 0x7777
)

// Foreign installs, with ip xfrm as an administrator would, an SA and a
// policy in ns (from the UE's IPv4 address to 10.77.0.9, reqid 7, SPI
// 0x7777) that imsue must never touch, and returns a check that fails t
// unless both are still there. The check prefixes its failure with when
// unless when is empty.
//
// The objects come from the ip command on purpose: an independent writer,
// not imsue's own netlink code, is what another program on the UE would be.
func Foreign(t testing.TB, ns *NS) func(when string) {
	t.Helper()
	for _, args := range [][]string{
		{"-n", ns.Name, "xfrm", "state", "add", "src", "10.77.0.1", "dst", "10.77.0.9", "proto", "esp", "spi", "0x7777",
			"reqid", "7", "mode", "transport", "auth-trunc", "hmac(sha1)", "0x" + strings.Repeat("11", 20), "96",
			"enc", "cbc(aes)", "0x" + strings.Repeat("22", 16)},
		{"-n", ns.Name, "xfrm", "policy", "add", "src", "10.77.0.1/32", "dst", "10.77.0.9/32", "dir", "out",
			"tmpl", "src", "10.77.0.1", "dst", "10.77.0.9", "proto", "esp", "reqid", "7", "mode", "transport"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return func(when string) {
		t.Helper()
		prefix := ""
		if when != "" {
			prefix = when + ": "
		}
		h, err := netns.GetFromPath(ns.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		nh, err := netlink.NewHandleAt(h, unix.NETLINK_XFRM)
		if err != nil {
			t.Fatal(err)
		}
		defer nh.Close()
		st, err := nh.XfrmStateGet(&netlink.XfrmState{Dst: net.ParseIP("10.77.0.9"), Src: net.ParseIP("10.77.0.1"), Proto: netlink.XFRM_PROTO_ESP, Spi: foreignSPI})
		if err != nil || st.Reqid != foreignReqid {
			t.Fatalf("%sthe foreign SA in %s is gone: %v", prefix, ns.Name, err)
		}
		pols, err := nh.XfrmPolicyList(netlink.FAMILY_ALL)
		found := false
		for _, p := range pols {
			found = found || (len(p.Tmpls) == 1 && p.Tmpls[0].Reqid == foreignReqid)
		}
		if err != nil || !found {
			t.Fatalf("%sthe foreign policy in %s is gone: %v", prefix, ns.Name, err)
		}
	}
}

// XfrmCounter returns one of the namespace's XFRM error counters (see
// XfrmStat), failing when xfrm_stat does not have it: a counter the kernel
// does not report would otherwise read as a steady zero.
func (n *NS) XfrmCounter(name string) (uint64, error) {
	m, err := n.XfrmStat()
	if err != nil {
		return 0, err
	}
	return counter(m, name)
}

func counter(stat map[string]uint64, name string) (uint64, error) {
	v, ok := stat[name]
	if !ok {
		return 0, fmt.Errorf("xfrm_stat has no %s", name)
	}
	return v, nil
}

// TmplMismatch reads XfrmInTmplMismatch in ns, failing t on error: packets
// an inbound policy required ESP for that arrived without it, which is how
// the tests see the kernel drop cleartext on a protected port.
func TmplMismatch(t testing.TB, ns *NS) uint64 {
	t.Helper()
	v, err := ns.XfrmCounter("XfrmInTmplMismatch")
	if err != nil {
		t.Fatal(err)
	}
	return v
}
