//go:build linux

package nstest_test

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/imsue/imsue/internal/nstest"
)

// TestNew: the namespace is not the test's own, XFRM objects added through
// the handle stay in it, and the test process's namespace is unchanged.
func TestNew(t *testing.T) {
	self, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	path, h := nstest.New(t)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer ns.Close()
	if ns.Equal(self) {
		t.Fatalf("%s is the test's own namespace", path)
	}
	if now, err := netns.Get(); err != nil || !now.Equal(self) {
		t.Fatalf("the calling thread was left in another namespace: %v", err)
	}
	src, dst := net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.2")
	pol := &netlink.XfrmPolicy{
		Src: &net.IPNet{IP: src, Mask: net.CIDRMask(32, 32)}, Dst: &net.IPNet{IP: dst, Mask: net.CIDRMask(32, 32)},
		Dir:   netlink.XFRM_DIR_OUT,
		Tmpls: []netlink.XfrmPolicyTmpl{{Src: src, Dst: dst, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT, Reqid: 5}},
	}
	if err := h.XfrmPolicyAdd(pol); err != nil {
		t.Fatal(err)
	}
	if pols, err := h.XfrmPolicyList(netlink.FAMILY_ALL); err != nil || len(pols) != 1 {
		t.Fatalf("policies in the namespace: %d, %v; want 1", len(pols), err)
	}
	pols, err := netlink.XfrmPolicyList(netlink.FAMILY_ALL)
	for _, p := range pols {
		if len(p.Tmpls) == 1 && p.Tmpls[0].Reqid == 5 && p.Dst.IP.Equal(dst) {
			t.Fatalf("the policy appeared in the test's own namespace: %v", err)
		}
	}
}
