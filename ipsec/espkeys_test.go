package ipsec

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/test/uml/netlab"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestESPSARecord(t *testing.T) {
	ik := "00112233445566778899aabbccddeeff"
	ck := "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	tests := []struct {
		name string
		sa   SA
		want string
	}{
		{
			name: "ipv4 sha1 aes",
			sa: SA{
				Src: netip.MustParseAddrPort("10.77.0.1:5100"), Dst: netip.MustParseAddrPort("10.77.0.2:5200"),
				SPI: 0x1234, Dir: Out, Auth: AuthHMACSHA196, AuthKey: mustHex(t, ik+"00000000"),
				Enc: EncAESCBC, EncKey: mustHex(t, ck),
			},
			want: `"IPv4","10.77.0.1","10.77.0.2","0x00001234","AES-CBC [RFC3602]","0x0f1e2d3c4b5a69788796a5b4c3d2e1f0","HMAC-SHA-1-96 [RFC2404]","0x00112233445566778899aabbccddeeff00000000"`,
		},
		{
			name: "ipv6 md5 null",
			sa: SA{
				Src: netip.MustParseAddrPort("[fd77::2]:5300"), Dst: netip.MustParseAddrPort("[fd77::1]:5400"),
				SPI: 0xfedcba98, Dir: In, Auth: AuthHMACMD596, AuthKey: mustHex(t, ik), Enc: EncNull,
			},
			want: `"IPv6","fd77::2","fd77::1","0xfedcba98","NULL","","HMAC-MD5-96 [RFC2403]","0x00112233445566778899aabbccddeeff"`,
		},
		{
			name: "ipv4 md5 3des",
			sa: SA{
				Src: netip.MustParseAddrPort("192.0.2.1:1"), Dst: netip.MustParseAddrPort("192.0.2.2:2"),
				SPI: 256, Dir: Out, Auth: AuthHMACMD596, AuthKey: mustHex(t, ik),
				Enc: EncDES3EDECBC, EncKey: mustHex(t, ck+ck[:16]),
			},
			want: `"IPv4","192.0.2.1","192.0.2.2","0x00000100","TripleDES-CBC [RFC2451]","0x0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978","HMAC-MD5-96 [RFC2403]","0x00112233445566778899aabbccddeeff"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ESPSARecord(&tt.sa)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("record\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestESPSARecordErrors(t *testing.T) {
	good := SA{
		Src: netip.MustParseAddrPort("10.0.0.1:1"), Dst: netip.MustParseAddrPort("10.0.0.2:2"), SPI: 300,
		Auth: AuthHMACMD596, AuthKey: make([]byte, 16), Enc: EncAESCBC, EncKey: make([]byte, 16),
	}
	tests := []struct {
		name   string
		mutate func(*SA)
		want   string
	}{
		{"no src", func(s *SA) { s.Src = netip.AddrPort{} }, "missing source"},
		{"mixed families", func(s *SA) { s.Dst = netip.MustParseAddrPort("[::1]:2") }, "address family"},
		{"unknown enc", func(s *SA) { s.Enc = "aes-gcm" }, `"aes-gcm"`},
		{"unknown auth", func(s *SA) { s.Auth = "hmac-sha-256-128" }, `"hmac-sha-256-128"`},
		{"null with key", func(s *SA) { s.Enc = EncNull }, "null encryption with a key"},
		{"aes without key", func(s *SA) { s.EncKey = nil }, "aes-cbc without a key"},
		{"auth without key", func(s *SA) { s.AuthKey = nil }, "hmac-md5-96 without a key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa := good
			tt.mutate(&sa)
			_, err := ESPSARecord(&sa)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "0000000000") {
				t.Fatalf("error shows key material: %v", err)
			}
		})
	}
}

func TestWriteESPKeysAllOrNothing(t *testing.T) {
	set := testSet(t, AuthHMACSHA196, EncAESCBC, false, 0x1000)
	bad := *set
	bad.SAs[3].Auth = "bogus"
	var buf bytes.Buffer
	if err := WriteESPKeys(&buf, set, &bad); err == nil {
		t.Fatal("no error for a set with an unknown algorithm")
	}
	if buf.Len() != 0 {
		t.Fatalf("wrote %d bytes before failing", buf.Len())
	}
	if err := WriteESPKeys(&buf, set); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "#") {
		t.Fatalf("want a comment and 4 records, got %q", lines)
	}
}

func TestCreateESPKeysFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "esp_sa")
	if err := os.WriteFile(path, []byte("old contents\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := CreateESPKeysFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Add(testSet(t, AuthHMACMD596, EncNull, true, 0x2000)); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Add(testSet(t, AuthHMACMD596, EncNull, true, 0x3000)); err == nil {
		t.Fatal("Add after Close succeeded")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "old contents") || strings.Count(string(b), "\n") != 5 {
		t.Fatalf("file not truncated and rewritten:\n%s", b)
	}
}

// testSet builds the four UE-side SAs of TS 33.203 §7.1 with random keys.
func testSet(t testing.TB, auth Auth, enc Enc, v6 bool, spiBase uint32) *SASet {
	t.Helper()
	ue, pc := netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.2")
	if v6 {
		ue, pc = netip.MustParseAddr("fd77::1"), netip.MustParseAddr("fd77::2")
	}
	authLen := 16
	if auth == AuthHMACSHA196 {
		authLen = 20
	}
	encLen := map[Enc]int{EncNull: 0, EncAESCBC: 16, EncDES3EDECBC: 24}[enc]
	key := func(n int) []byte {
		if n == 0 {
			return nil
		}
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	const uc, us, pcp, ps = 5100, 5101, 5200, 5201
	mk := func(src, dst netip.Addr, sp, dp uint16, spi uint32, dir Direction) SA {
		return SA{
			Src: netip.AddrPortFrom(src, sp), Dst: netip.AddrPortFrom(dst, dp), SPI: spi, Dir: dir,
			Auth: auth, AuthKey: key(authLen), Enc: enc, EncKey: key(encLen), Replay: 32,
		}
	}
	return &SASet{ID: uint64(spiBase), SAs: [4]SA{
		mk(ue, pc, uc, ps, spiBase+3, Out),
		mk(pc, ue, ps, uc, spiBase+0, In),
		mk(pc, ue, pcp, us, spiBase+1, In),
		mk(ue, pc, us, pcp, spiBase+2, Out),
	}}
}

// TestTsharkDecryptsESPKeys gives tshark, with the esp_sa file written by
// CreateESPKeysFile as its only key source, one ESP packet per SA for every
// alg × ealg pair in IPv4 and IPv6, and requires that it decrypts every
// packet to the UDP payload that was sent and finds every ICV good.
func TestTsharkDecryptsESPKeys(t *testing.T) {
	testenv.NeedCommand(t, "tshark")
	dir := t.TempDir()
	keys, err := CreateESPKeysFile(filepath.Join(dir, "esp_sa"))
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	want := map[string]string{} // frame number -> payload
	spi := uint32(0x10000)
	for _, auth := range []Auth{AuthHMACMD596, AuthHMACSHA196} {
		for _, enc := range []Enc{EncNull, EncAESCBC, EncDES3EDECBC} {
			for _, v6 := range []bool{false, true} {
				set := testSet(t, auth, enc, v6, spi)
				spi += 0x10
				if err := keys.Add(set); err != nil {
					t.Fatal(err)
				}
				for i := range set.SAs {
					payload := fmt.Sprintf("imsue %s/%s v6=%t sa#%d", auth, enc, v6, i+1)
					iv := make([]byte, 16)
					rand.Read(iv)
					p, err := espPacket(&set.SAs[i], uint32(i+1), iv, []byte(payload))
					if err != nil {
						t.Fatal(err)
					}
					pkts = append(pkts, p)
					want[fmt.Sprint(len(pkts))] = payload
				}
			}
		}
	}
	if err := keys.Close(); err != nil {
		t.Fatal(err)
	}
	var pcap bytes.Buffer
	if err := writePCAP(&pcap, pkts); err != nil {
		t.Fatal(err)
	}
	// netlab.TsharkESP reads dir/capture.pcap with dir as tshark's
	// configuration directory, where the esp_sa file lives.
	if err := os.WriteFile(filepath.Join(dir, "capture.pcap"), pcap.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range netlab.TsharkESP(t, dir, nil, "frame.number", "udp.payload", "esp.icv_good") {
		payload, err := netlab.TsharkBytes(f[1])
		if err != nil || string(payload) != want[f[0]] {
			t.Errorf("frame %s: decrypted payload %q, want %q", f[0], payload, want[f[0]])
		}
		if !netlab.TsharkTrue(f[2]) {
			t.Errorf("frame %s (%s): ICV not good (esp.icv_good=%q)", f[0], want[f[0]], f[2])
		}
		got[f[0]] = true
	}
	if len(got) != len(pkts) {
		t.Errorf("tshark decoded %d of %d frames", len(got), len(pkts))
	}
}
