package kernel

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/imsue/imsue/ipsec"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Keys of the examples: IK and CK as a 401 carries them, expanded per
// TS 33.203 Annex I by hand (IK||00000000 for hmac-sha-1-96, CK1||CK2||CK1
// for des-ede3-cbc).
const (
	exIK = "00112233445566778899aabbccddeeff"
	exCK = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

// ueSet is the UE's side of TS 33.203 §7.1 with port_uc 5100, port_us 5101,
// port_pc 5200, port_ps 5201, spi_uc 4096, spi_us 4097, spi_pc 8192,
// spi_ps 8193.
func ueSet(t testing.TB, ue, pcscf string, auth ipsec.Auth, authKey []byte, enc ipsec.Enc, encKey []byte) *ipsec.SASet {
	t.Helper()
	u, p := netip.MustParseAddr(ue), netip.MustParseAddr(pcscf)
	sa := func(src netip.Addr, sp uint16, dst netip.Addr, dp uint16, spi uint32, dir ipsec.Direction) ipsec.SA {
		return ipsec.SA{
			Src: netip.AddrPortFrom(src, sp), Dst: netip.AddrPortFrom(dst, dp), SPI: spi, Dir: dir,
			Auth: auth, AuthKey: authKey, Enc: enc, EncKey: encKey, Replay: 32, Lifetime: 4 * time.Minute,
		}
	}
	return &ipsec.SASet{ID: 7, SAs: [4]ipsec.SA{
		sa(u, 5100, p, 5201, 8193, ipsec.Out),
		sa(p, 5201, u, 5100, 4096, ipsec.In),
		sa(p, 5200, u, 5101, 4097, ipsec.In),
		sa(u, 5101, p, 5200, 8192, ipsec.Out),
	}}
}

func TestBuildSetIPv4(t *testing.T) {
	ik := unhex(t, exIK+"00000000")
	ck := unhex(t, exCK)
	set := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACSHA196, ik, ipsec.EncAESCBC, ck)
	const reqid = 0x494d0042
	o, err := buildSet(set, reqid)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		src, dst     string
		sport, dport int
		spi          int
		dir          netlink.Dir
	}{
		{"10.77.0.1", "10.77.0.2", 5100, 5201, 8193, netlink.XFRM_DIR_OUT},
		{"10.77.0.2", "10.77.0.1", 5201, 5100, 4096, netlink.XFRM_DIR_IN},
		{"10.77.0.2", "10.77.0.1", 5200, 5101, 4097, netlink.XFRM_DIR_IN},
		{"10.77.0.1", "10.77.0.2", 5101, 5200, 8192, netlink.XFRM_DIR_OUT},
	}
	if len(o.states) != 4 || len(o.policies) != 4 || o.v6 {
		t.Fatalf("%d states, %d policies, v6=%t", len(o.states), len(o.policies), o.v6)
	}
	for i, w := range want {
		st, p := o.states[i], o.policies[i]
		if !st.Src.Equal(net.ParseIP(w.src)) || !st.Dst.Equal(net.ParseIP(w.dst)) || len(st.Dst.To4()) != 4 {
			t.Errorf("state %d: %v → %v, want %s → %s", i, st.Src, st.Dst, w.src, w.dst)
		}
		if st.Proto != netlink.XFRM_PROTO_ESP || st.Mode != netlink.XFRM_MODE_TRANSPORT {
			t.Errorf("state %d: proto %v mode %v, want esp transport", i, st.Proto, st.Mode)
		}
		if st.Spi != w.spi || st.Reqid != reqid || st.ReplayWindow != 32 {
			t.Errorf("state %d: spi %d reqid %#x replay %d", i, st.Spi, st.Reqid, st.ReplayWindow)
		}
		if st.Limits.TimeHard != 240 || st.Limits.TimeSoft != 216 || st.Limits.ByteHard != 0 || st.Limits.PacketHard != 0 {
			t.Errorf("state %d: limits %+v, want hard 240 s, soft 216 s, no byte/packet limits", i, st.Limits)
		}
		if st.Auth == nil || st.Auth.Name != "hmac(sha1)" || st.Auth.TruncateLen != 96 || !bytes.Equal(st.Auth.Key, ik) {
			t.Errorf("state %d: auth %+v", i, st.Auth)
		}
		if st.Crypt == nil || st.Crypt.Name != "cbc(aes)" || !bytes.Equal(st.Crypt.Key, ck) {
			t.Errorf("state %d: crypt %+v", i, st.Crypt)
		}
		if st.Aead != nil || st.Encap != nil || st.Mark != nil || st.ESN {
			t.Errorf("state %d: unexpected aead/encap/mark/esn", i)
		}
		sel := st.Selector
		if sel == nil || sel.Proto != 0 || sel.SrcPort != w.sport || sel.DstPort != w.dport ||
			sel.Src.String() != w.src+"/32" || sel.Dst.String() != w.dst+"/32" {
			t.Errorf("state %d: selector %+v", i, sel)
		}
		if p.Dir != w.dir || p.Proto != 0 || p.SrcPort != w.sport || p.DstPort != w.dport ||
			p.Src.String() != w.src+"/32" || p.Dst.String() != w.dst+"/32" {
			t.Errorf("policy %d: %v", i, p)
		}
		if p.Priority != PolicyPriority || p.Action != netlink.XFRM_POLICY_ALLOW || p.Mark != nil {
			t.Errorf("policy %d: priority %d action %v mark %v", i, p.Priority, p.Action, p.Mark)
		}
		if len(p.Tmpls) != 1 {
			t.Fatalf("policy %d: %d templates", i, len(p.Tmpls))
		}
		tm := p.Tmpls[0]
		if !tm.Src.Equal(net.ParseIP(w.src)) || !tm.Dst.Equal(net.ParseIP(w.dst)) || tm.Proto != netlink.XFRM_PROTO_ESP ||
			tm.Mode != netlink.XFRM_MODE_TRANSPORT || tm.Spi != w.spi || tm.Reqid != reqid || tm.Optional != 0 {
			t.Errorf("policy %d: template %v", i, tm)
		}
	}
}

func TestBuildSetIPv6AndMapped(t *testing.T) {
	for _, tt := range []struct{ ue, pcscf, wantUE string }{
		{"fd77::1", "fd77::2", "fd77::1/128"},
		{"::ffff:10.77.0.1", "::ffff:10.77.0.2", "10.77.0.1/32"},
	} {
		set := ueSet(t, tt.ue, tt.pcscf, ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncNull, nil)
		o, err := buildSet(set, ReqIDMin)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.policies[0].Src.String(); got != tt.wantUE {
			t.Errorf("%s: policy selector source %s, want %s", tt.ue, got, tt.wantUE)
		}
		if got := o.states[0].Selector.Src.String(); got != tt.wantUE {
			t.Errorf("%s: state selector source %s, want %s", tt.ue, got, tt.wantUE)
		}
		if st := o.states[0]; st.Auth.Name != "hmac(md5)" || st.Crypt.Name != "ecb(cipher_null)" || len(st.Crypt.Key) != 0 {
			t.Errorf("%s: auth %v crypt %v", tt.ue, st.Auth, st.Crypt)
		}
	}
}

func TestBuildSetDES3AndKeyCopies(t *testing.T) {
	ck := unhex(t, exCK+exCK[:16])
	ik := unhex(t, exIK)
	set := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACSHA196, ik, ipsec.EncDES3EDECBC, ck)
	o, err := buildSet(set, ReqIDMin)
	if err != nil {
		t.Fatal(err) // the 128-bit IK alone is accepted for hmac-sha-1-96 (Kamailio's key)
	}
	if o.states[2].Crypt.Name != "cbc(des3_ede)" || !bytes.Equal(o.states[2].Crypt.Key, ck) {
		t.Fatalf("crypt %v", o.states[2].Crypt)
	}
	o.wipe()
	if !bytes.Equal(o.states[2].Crypt.Key, make([]byte, 24)) || !bytes.Equal(o.states[2].Auth.Key, make([]byte, 16)) {
		t.Fatal("wipe left key bytes")
	}
	if !bytes.Equal(set.SAs[2].EncKey, unhex(t, exCK+exCK[:16])) || !bytes.Equal(set.SAs[2].AuthKey, unhex(t, exIK)) {
		t.Fatal("wipe changed the caller's keys")
	}
}

func TestBuildSetRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *ipsec.SASet)
		want   string
	}{
		{"nil src", func(s *ipsec.SASet) { s.SAs[0].Src = netip.AddrPort{} }, "Src: no address"},
		{"nil dst", func(s *ipsec.SASet) { s.SAs[1].Dst = netip.AddrPort{} }, "Dst: no address"},
		{"mixed family in SA", func(s *ipsec.SASet) { s.SAs[0].Dst = netip.MustParseAddrPort("[fd77::2]:5201") }, "different address families"},
		{"mixed family in set", func(s *ipsec.SASet) {
			s.SAs[3].Src = netip.MustParseAddrPort("[fd77::1]:5101")
			s.SAs[3].Dst = netip.MustParseAddrPort("[fd77::2]:5200")
		}, "address family differs from SA #1"},
		{"zone", func(s *ipsec.SASet) {
			s.SAs[0].Src = netip.MustParseAddrPort("[fe80::1%eth0]:5100")
			s.SAs[0].Dst = netip.MustParseAddrPort("[fe80::2]:5201")
		}, "scoped"},
		{"port 0", func(s *ipsec.SASet) { s.SAs[2].Dst = netip.MustParseAddrPort("10.77.0.1:0") }, "port 0"},
		{"spi 0", func(s *ipsec.SASet) { s.SAs[1].SPI = 0 }, "SPI 0"},
		{"spi reserved", func(s *ipsec.SASet) { s.SAs[1].SPI = 255 }, "SPI 255"},
		{"dir", func(s *ipsec.SASet) { s.SAs[1].Dir = 0 }, "Dir"},
		{"lifetime", func(s *ipsec.SASet) { s.SAs[1].Lifetime = -time.Second }, "Lifetime"},
		{"auth", func(s *ipsec.SASet) { s.SAs[1].Auth = "hmac-sha-256-128" }, `Auth "hmac-sha-256-128"`},
		{"auth key", func(s *ipsec.SASet) { s.SAs[1].AuthKey = make([]byte, 12) }, "AuthKey: 12 bytes"},
		{"enc", func(s *ipsec.SASet) { s.SAs[1].Enc = "aes-gcm" }, `Enc "aes-gcm"`},
		{"enc key", func(s *ipsec.SASet) { s.SAs[1].EncKey = make([]byte, 8) }, "EncKey: 8 bytes"},
		{"null with key", func(s *ipsec.SASet) { s.SAs[1].Enc = ipsec.EncNull }, "EncKey: 16 bytes"},
		{"duplicate spi", func(s *ipsec.SASet) { s.SAs[2].SPI = s.SAs[1].SPI }, "repeat those of SA #2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACSHA196, unhex(t, exIK+"00000000"), ipsec.EncAESCBC, unhex(t, exCK))
			tt.mutate(set)
			_, err := buildSet(set, ReqIDMin)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), exIK) || strings.Contains(err.Error(), exCK) {
				t.Fatalf("error shows a key: %v", err)
			}
		})
	}
	if _, err := buildSet(nil, ReqIDMin); err == nil {
		t.Fatal("nil set accepted")
	}
}

func TestLifetimeSeconds(t *testing.T) {
	tests := []struct {
		d          time.Duration
		hard, soft uint64
	}{
		{0, 0, 0},
		{-time.Second, 0, 0},
		{time.Millisecond, 1, 0},
		{1500 * time.Millisecond, 2, 1},
		{4 * time.Minute, 240, 216},
		{3630 * time.Second, 3630, 3267},
		{1 << 62, 1<<32 - 1, (1<<32 - 1) * 9 / 10},
	}
	for _, tt := range tests {
		h, s := lifetimeSeconds(tt.d)
		if h != tt.hard || s != tt.soft {
			t.Errorf("lifetimeSeconds(%v) = %d, %d; want %d, %d", tt.d, h, s, tt.hard, tt.soft)
		}
	}
}

func TestAlgorithmNames(t *testing.T) {
	for _, tt := range []struct {
		kernel string
		auth   ipsec.Auth
	}{
		{"hmac(md5)", ipsec.AuthHMACMD596},
		{"hmac(sha1)", ipsec.AuthHMACSHA196},
		{"hmac(sha256)", "hmac(sha256)"},
	} {
		if got := authName(tt.kernel); got != tt.auth {
			t.Errorf("authName(%q) = %q, want %q", tt.kernel, got, tt.auth)
		}
	}
	for _, tt := range []struct {
		kernel string
		enc    ipsec.Enc
	}{
		{"ecb(cipher_null)", ipsec.EncNull},
		{"cipher_null", ipsec.EncNull},
		{"cbc(aes)", ipsec.EncAESCBC},
		{"cbc(des3_ede)", ipsec.EncDES3EDECBC},
		{"rfc4106(gcm(aes))", "rfc4106(gcm(aes))"},
	} {
		if got := encName(tt.kernel); got != tt.enc {
			t.Errorf("encName(%q) = %q, want %q", tt.kernel, got, tt.enc)
		}
	}
}
