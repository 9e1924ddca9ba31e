package kernel

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/imsue/imsue/ipsec"
)

// Kernel crypto API names of the algorithms TS 33.203 uses, and the key
// lengths (bytes) the MT layer produces for them (Annex I). hmac-sha-1-96
// also accepts the 128-bit IK alone, as Kamailio installs it: HMAC pads a
// short key with zeros, so both interoperate.
var (
	kernelAuth = map[ipsec.Auth]struct {
		name    string
		keyLens []int
	}{
		ipsec.AuthHMACMD596:  {"hmac(md5)", []int{16}},
		ipsec.AuthHMACSHA196: {"hmac(sha1)", []int{20, 16}},
	}
	kernelEnc = map[ipsec.Enc]struct {
		name    string
		keyLens []int
	}{
		ipsec.EncNull:       {"ecb(cipher_null)", []int{0}},
		ipsec.EncAESCBC:     {"cbc(aes)", []int{16, 24, 32}},
		ipsec.EncDES3EDECBC: {"cbc(des3_ede)", []int{24}},
	}
)

// icvBits is the truncated ICV length of both HMAC algorithms (RFC 2403/2404).
const icvBits = 96

// minSPI: SPIs 1–255 are reserved by IANA (RFC 4303 §2.1), 0 means none.
const minSPI = 256

// setObjects is what one SA set becomes in the kernel, in installation order.
// states[i] and policies[i] come from SA i (tests may drop some of them).
type setObjects struct {
	states   []netlink.XfrmState
	policies []netlink.XfrmPolicy
	names    [4]string // SA i as ipsec.SA.String prints it, for errors
	v6       bool
}

// buildSet validates set and translates it into states and policies tagged
// with reqid. The keys are copied, so that they can be wiped after use
// without touching the caller's set.
func buildSet(set *ipsec.SASet, reqid uint32) (*setObjects, error) {
	if set == nil {
		return nil, fmt.Errorf("nil SA set")
	}
	o := &setObjects{states: make([]netlink.XfrmState, 4), policies: make([]netlink.XfrmPolicy, 4)}
	seen := map[[2]any]int{}
	for i := range set.SAs {
		sa := &set.SAs[i]
		o.names[i] = fmt.Sprintf("#%d %v", i+1, sa)
		st, err := buildState(sa, reqid)
		if err != nil {
			return nil, fmt.Errorf("SA %s: %w", o.names[i], err)
		}
		v6 := sa.Dst.Addr().Unmap().Is6()
		if i == 0 {
			o.v6 = v6
		} else if v6 != o.v6 {
			return nil, fmt.Errorf("SA %s: address family differs from SA #1", o.names[i])
		}
		id := [2]any{sa.Dst.Addr().Unmap(), sa.SPI}
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("SA %s: destination and SPI repeat those of SA #%d", o.names[i], j+1)
		}
		seen[id] = i
		o.states[i] = st
		o.policies[i] = buildPolicy(sa, reqid)
	}
	return o, nil
}

func (o *setObjects) setReqID(reqid uint32) {
	for i := range o.states {
		o.states[i].Reqid = int(reqid)
	}
	for i := range o.policies {
		o.policies[i].Tmpls[0].Reqid = int(reqid)
	}
}

// wipe zeroes the copied keys.
func (o *setObjects) wipe() {
	for i := range o.states {
		if a := o.states[i].Auth; a != nil {
			clear(a.Key)
		}
		if c := o.states[i].Crypt; c != nil {
			clear(c.Key)
		}
	}
}

// checkSA validates the fields of sa that the kernel objects are made of;
// every error names the field.
func checkSA(sa *ipsec.SA) error {
	src, dst := sa.Src.Addr().Unmap(), sa.Dst.Addr().Unmap()
	switch {
	case !src.IsValid():
		return fmt.Errorf("Src: no address")
	case !dst.IsValid():
		return fmt.Errorf("Dst: no address")
	case src.Is4() != dst.Is4():
		return fmt.Errorf("Src %v and Dst %v: different address families", src, dst)
	case src.Zone() != "" || dst.Zone() != "":
		return fmt.Errorf("Src %v / Dst %v: scoped addresses are not supported", src, dst)
	case sa.Src.Port() == 0 || sa.Dst.Port() == 0:
		// A zero port would make the selector match every port.
		return fmt.Errorf("Src %v / Dst %v: port 0", sa.Src, sa.Dst)
	case sa.SPI < minSPI:
		return fmt.Errorf("SPI %d: below %d (0 is invalid, 1–255 are reserved)", sa.SPI, minSPI)
	case sa.Dir != ipsec.Out && sa.Dir != ipsec.In:
		return fmt.Errorf("Dir %v: neither out nor in", sa.Dir)
	case sa.Lifetime < 0:
		return fmt.Errorf("Lifetime %v: negative", sa.Lifetime)
	}
	a, ok := kernelAuth[sa.Auth]
	if !ok {
		return fmt.Errorf("Auth %q: not supported by this backend", sa.Auth)
	}
	if !lenIn(len(sa.AuthKey), a.keyLens) {
		return fmt.Errorf("AuthKey: %d bytes, %s needs %v", len(sa.AuthKey), sa.Auth, a.keyLens)
	}
	e, ok := kernelEnc[sa.Enc]
	if !ok {
		return fmt.Errorf("Enc %q: not supported by this backend", sa.Enc)
	}
	if !lenIn(len(sa.EncKey), e.keyLens) {
		return fmt.Errorf("EncKey: %d bytes, %s needs %v", len(sa.EncKey), sa.Enc, e.keyLens)
	}
	return nil
}

func lenIn(n int, lens []int) bool {
	for _, l := range lens {
		if n == l {
			return true
		}
	}
	return false
}

// buildState translates one SA into its XFRM state.
func buildState(sa *ipsec.SA, reqid uint32) (netlink.XfrmState, error) {
	if err := checkSA(sa); err != nil {
		return netlink.XfrmState{}, err
	}
	src, dst := ipOf(sa.Src.Addr()), ipOf(sa.Dst.Addr())
	st := netlink.XfrmState{
		Src:          src,
		Dst:          dst,
		Proto:        netlink.XFRM_PROTO_ESP,
		Mode:         netlink.XFRM_MODE_TRANSPORT,
		Spi:          int(sa.SPI),
		Reqid:        int(reqid),
		ReplayWindow: int(sa.Replay),
		Auth: &netlink.XfrmStateAlgo{
			Name:        kernelAuth[sa.Auth].name,
			Key:         append([]byte(nil), sa.AuthKey...),
			TruncateLen: icvBits,
		},
		Crypt: &netlink.XfrmStateAlgo{
			Name: kernelEnc[sa.Enc].name,
			Key:  append([]byte{}, sa.EncKey...), // non-nil even for null
		},
		Selector: selector(sa),
	}
	hard, soft := lifetimeSeconds(sa.Lifetime)
	st.Limits.TimeHard = hard
	st.Limits.TimeSoft = soft
	return st, nil
}

// lifetimeSeconds turns SA.Lifetime into the hard and soft add-expiry times
// (seconds since the state was added). 0 means no limit. The soft expiry,
// which only notifies (XFRM_MSG_EXPIRE), comes at 90 % of the hard one.
func lifetimeSeconds(d time.Duration) (hard, soft uint64) {
	if d <= 0 {
		return 0, 0
	}
	hard = uint64((d + time.Second - 1) / time.Second)
	if hard > math.MaxUint32 { // TS 33.203 §7.1 bounds SA lifetimes by 2^32-1 s
		hard = math.MaxUint32
	}
	return hard, hard * 9 / 10
}

// selector is the traffic selector of sa: both addresses as host prefixes,
// both ports, no protocol (so TCP and UDP both match).
func selector(sa *ipsec.SA) *netlink.XfrmPolicy {
	return &netlink.XfrmPolicy{
		Src:     hostNet(sa.Src.Addr()),
		Dst:     hostNet(sa.Dst.Addr()),
		SrcPort: int(sa.Src.Port()),
		DstPort: int(sa.Dst.Port()),
	}
}

// buildPolicy translates one SA into the policy that steers its flow.
func buildPolicy(sa *ipsec.SA, reqid uint32) netlink.XfrmPolicy {
	p := *selector(sa)
	p.Dir = netlink.XFRM_DIR_OUT
	if sa.Dir == ipsec.In {
		p.Dir = netlink.XFRM_DIR_IN
	}
	p.Priority = PolicyPriority
	p.Action = netlink.XFRM_POLICY_ALLOW
	p.Tmpls = []netlink.XfrmPolicyTmpl{{
		Src:   ipOf(sa.Src.Addr()),
		Dst:   ipOf(sa.Dst.Addr()),
		Proto: netlink.XFRM_PROTO_ESP,
		Mode:  netlink.XFRM_MODE_TRANSPORT,
		Spi:   int(sa.SPI),
		Reqid: int(reqid),
	}}
	return p
}

func ipOf(a netip.Addr) net.IP { return net.IP(a.Unmap().AsSlice()) }

func hostNet(a netip.Addr) *net.IPNet {
	a = a.Unmap()
	return &net.IPNet{IP: ipOf(a), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

// addrOf converts an address from a netlink dump.
func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// authName and encName map kernel algorithm names back to TS 33.203 names;
// an algorithm imsue does not use is reported by its kernel name.
func authName(kernelName string) ipsec.Auth {
	for k, v := range kernelAuth {
		if v.name == kernelName {
			return k
		}
	}
	return ipsec.Auth(kernelName)
}

func encName(kernelName string) ipsec.Enc {
	if kernelName == "cipher_null" { // older kernels report the bare name
		return ipsec.EncNull
	}
	for k, v := range kernelEnc {
		if v.name == kernelName {
			return k
		}
	}
	return ipsec.Enc(kernelName)
}
