package sipnet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/internal/testenv"
)

func TestPcapHeader(t *testing.T) {
	var b bytes.Buffer
	pw, err := NewPcapWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 24 || binary.LittleEndian.Uint32(b.Bytes()[0:]) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b.Bytes()[20:]) != 101 {
		t.Fatalf("file header % x", b.Bytes())
	}
	// A record: 16-byte header, then IPv4 (20) + UDP (8) + payload.
	err = pw.WritePacket(Packet{Time: time.Unix(1700000000, 123456000), Sent: true, Network: "udp",
		Local: netip.MustParseAddrPort("192.0.2.1:5060"), Remote: netip.MustParseAddrPort("192.0.2.9:5060"), Data: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	rec := b.Bytes()[24:]
	if got := binary.LittleEndian.Uint32(rec[4:]); got != 123456 {
		t.Errorf("microseconds %d", got)
	}
	if n := binary.LittleEndian.Uint32(rec[8:]); n != 33 || len(rec) != 16+33 {
		t.Errorf("record length %d, %d bytes", n, len(rec))
	}
	ip := rec[16:]
	if ip[0] != 0x45 || ip[9] != 17 || !bytes.Equal(ip[12:16], []byte{192, 0, 2, 1}) || onesSum(0, ip[:20]) != 0xffff {
		t.Errorf("IPv4 header % x", ip[:20])
	}
	if err := pw.WritePacket(Packet{Network: "udp", Local: netip.MustParseAddrPort("192.0.2.1:1"), Remote: netip.MustParseAddrPort("[2001:db8::1]:2")}); err == nil {
		t.Error("mixed address families accepted")
	}
	if err := pw.WritePacket(Packet{Network: "sctp", Local: netip.MustParseAddrPort("192.0.2.1:1"), Remote: netip.MustParseAddrPort("192.0.2.2:2")}); err == nil {
		t.Error("unknown network accepted")
	}
}

// TestPcapTshark writes UDP and TCP messages over IPv4 and IPv6 and checks
// that tshark decodes them as SIP with valid checksums.
func TestPcapTshark(t *testing.T) {
	tshark := testenv.NeedCommand(t, "tshark")
	path := filepath.Join(t.TempDir(), "sip.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := NewPcapWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	reg := func(cseq string) []byte {
		return []byte("REGISTER sip:ims.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1\r\nFrom: <sip:u@ims.example>;tag=1\r\nTo: <sip:u@ims.example>\r\nCall-ID: c\r\nCSeq: " + cseq + " REGISTER\r\nContent-Length: 0\r\n\r\n")
	}
	ok := []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP [2001:db8::1]:5062;branch=z9hG4bK2\r\nFrom: <sip:u@ims.example>;tag=1\r\nTo: <sip:u@ims.example>;tag=2\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n\r\n")
	now := time.Now()
	v4ue, v4p := netip.MustParseAddrPort("192.0.2.1:61000"), netip.MustParseAddrPort("192.0.2.9:5060")
	v6ue, v6p := netip.MustParseAddrPort("[2001:db8::1]:61001"), netip.MustParseAddrPort("[2001:db8::9]:7200")
	for _, p := range []Packet{
		{Time: now, Sent: true, Network: "udp", Local: v4ue, Remote: v4p, Data: reg("1")},
		{Time: now, Sent: true, Network: "tcp", Local: v6ue, Remote: v6p, Data: reg("2")},
		{Time: now, Sent: false, Network: "tcp", Local: v6ue, Remote: v6p, Data: ok},
		{Time: now, Sent: true, Network: "udp", Local: v6ue, Remote: v6p, Data: reg("3")},
	} {
		if err := pw.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out, err := exec.Command(tshark, "-r", path, "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-o", "ip.check_checksum:TRUE", "-Y", "sip", "-T", "fields", "-E", "separator=|",
		"-e", "sip.CSeq", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.checksum.status", "-e", "tcp.checksum.status", "-e", "tcp.seq").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	want := []string{
		"1 REGISTER|192.0.2.1||1||",
		"2 REGISTER||2001:db8::1||1|1",
		"2 REGISTER||2001:db8::9||1|1",
		"3 REGISTER||2001:db8::1|1||",
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tshark:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
