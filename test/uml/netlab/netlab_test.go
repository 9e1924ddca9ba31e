//go:build linux

package netlab

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"
)

func TestParseXfrmStat(t *testing.T) {
	in := "XfrmInError             \t0\nXfrmInBufferError       \t0\nXfrmInTmplMismatch      \t3\nXfrmOutNoStates         \t12\n"
	m, err := ParseXfrmStat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if m["XfrmInTmplMismatch"] != 3 || m["XfrmOutNoStates"] != 12 || len(m) != 4 {
		t.Fatalf("%v", m)
	}
	for _, bad := range []string{"XfrmInError\n", "XfrmInError 1 2\n", "XfrmInError -1\n"} {
		if _, err := ParseXfrmStat([]byte(bad)); err == nil {
			t.Errorf("ParseXfrmStat(%q) accepted", bad)
		}
	}
}

// Frames as a veth carries them: an ESP packet over IPv4 and a UDP
// datagram over IPv6 (hand-assembled from RFC 791/8200 headers).
const (
	espV4Frame = "02000000000102000000000208004500003c000040004032265b0a4d00010a4d0002" +
		"00002001000000010102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	udpV6Frame = "020000000001" + "020000000002" + "86dd" + "6000000000101140" +
		"fd770000000000000000000000000001" + "fd770000000000000000000000000002" +
		"13ec13f100100000" + "6162636465666768"
)

func TestParseFrame(t *testing.T) {
	b, _ := hex.DecodeString(espV4Frame)
	p, ok := ParseFrame(b)
	if !ok || p.Src != netip.MustParseAddr("10.77.0.1") || p.Dst != netip.MustParseAddr("10.77.0.2") || p.Proto != 50 || len(p.Payload) != 40 {
		t.Fatalf("ipv4 esp: %v %+v", ok, p)
	}
	b, _ = hex.DecodeString(udpV6Frame)
	p, ok = ParseFrame(b)
	if !ok || p.Src != netip.MustParseAddr("fd77::1") || p.Dst != netip.MustParseAddr("fd77::2") || p.Proto != 17 || !bytes.HasSuffix(p.Payload, []byte("abcdefgh")) {
		t.Fatalf("ipv6 udp: %v %+v", ok, p)
	}
	for _, n := range []int{0, 13, 14, 33, len(b) - 1} {
		if _, ok := ParseFrame(b[:n]); ok {
			t.Errorf("truncated frame of %d bytes accepted", n)
		}
	}
	arp := make([]byte, 42)
	arp[12], arp[13] = 0x08, 0x06
	if _, ok := ParseFrame(arp); ok {
		t.Error("ARP accepted")
	}
}

func TestWritePCAP(t *testing.T) {
	var buf bytes.Buffer
	frame := []byte{1, 2, 3}
	if err := WritePCAP(&buf, []Packet{{Time: time.Unix(1700000000, 5000), Data: frame}}); err != nil {
		t.Fatal(err)
	}
	want := "d4c3b2a1020004000000000000000000ffff000001000000" + "00f15365" + "05000000" + "03000000" + "03000000" + "010203"
	if got := hex.EncodeToString(buf.Bytes()); got != want {
		t.Fatalf("pcap\n got %s\nwant %s", got, want)
	}
}

func TestRequireSkipsOnTheHost(t *testing.T) {
	if Enabled() {
		t.Skip("inside the guest")
	}
	t.Setenv(EnvKernelTests, "1") // the guest marker is still missing
	if Enabled() {
		t.Fatal("enabled without the guest marker")
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{espV4Frame, udpV6Frame} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := ParseFrame(b)
		if ok && (!p.Src.IsValid() || !p.Dst.IsValid() || len(p.Payload) > len(b)) {
			t.Fatalf("%+v", p)
		}
	})
}

func FuzzParseXfrmStat(f *testing.F) {
	f.Add([]byte("XfrmInError             \t0\nXfrmInTmplMismatch      \t3\n"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseXfrmStat(b) })
}
