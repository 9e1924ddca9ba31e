package sipnet

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/internal/testenv"
)

func parseResponse(t testing.TB, text string) *sip.Response {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Response)
}

func TestViaDestination(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.9:7777")
	tests := []struct {
		via  string
		want string
	}{
		{"SIP/2.0/UDP 192.0.2.5:7200;branch=z9hG4bK1", "192.0.2.5:7200"},
		{"SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK1", "192.0.2.5:5060"},
		{"SIP/2.0/UDP pcscf.example:7200;branch=z9hG4bK1", "192.0.2.9:7200"},
		{"SIP/2.0/UDP 192.0.2.5:7200;received=198.51.100.1;branch=z9hG4bK1", "198.51.100.1:7200"},
		{"SIP/2.0/UDP 192.0.2.5:7200;rport=9999;branch=z9hG4bK1", "192.0.2.5:9999"},
		{"SIP/2.0/UDP [2001:db8::1]:7200;branch=z9hG4bK1", "[2001:db8::1]:7200"},
	}
	for _, tt := range tests {
		res := parseResponse(t, "SIP/2.0 200 OK\nVia: "+tt.via+"\nFrom: <sip:a@x>;tag=1\nTo: <sip:a@x>\nCall-ID: c\nCSeq: 1 NOTIFY\nContent-Length: 0\n\n")
		if got := ViaDestination(res.Via(), src).String(); got != tt.want {
			t.Errorf("Via %q: %s, want %s", tt.via, got, tt.want)
		}
	}
}

func TestTextTracerRedactsKeys(t *testing.T) {
	var b testenv.SyncBuffer
	tr := NewTextTracer(&b)
	msg := "SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", ck=\"00112233445566778899aabbccddeeff\",ik=\"ffeeddccbbaa99887766554433221100\"\r\n\r\n"
	tr.WritePacket(Packet{Time: time.Unix(0, 0), Network: "udp",
		Local: netip.MustParseAddrPort("192.0.2.1:5060"), Remote: netip.MustParseAddrPort("192.0.2.9:5060"), Data: []byte(msg)})
	out := b.String()
	if strings.Contains(out, "0011223344") || strings.Contains(out, "ffeeddcc") {
		t.Errorf("keys in the trace:\n%s", out)
	}
	if !strings.Contains(out, `ck="<redacted>"`) || !strings.HasPrefix(out, "--- 1970-01-01T00:00:00.000000Z recv UDP 192.0.2.1:5060 <- 192.0.2.9:5060 (") {
		t.Errorf("trace:\n%s", out)
	}
}

// Redact touches ck and ik only at a parameter boundary: "ck=" inside a
// quoted base64 nonce is part of the nonce (1 in 256 nonces end so).
func TestRedactAtParameterBoundary(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`Digest nonce="AAAAck=", ck="0011", ik=ffee`, `Digest nonce="AAAAck=", ck="<redacted>", ik="<redacted>"`},
		{`Digest nonce="a+ck=",algorithm=AKAv1-MD5`, `Digest nonce="a+ck=",algorithm=AKAv1-MD5`},
		{"Digest realm=\"r\",\tCK = \"00\"", "Digest realm=\"r\",\tCK=\"<redacted>\""},
	} {
		if got := string(Redact([]byte(tc.in))); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The pcap carries no keys either.
func TestPcapRedactsKeys(t *testing.T) {
	var b bytes.Buffer
	pw, err := NewPcapWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	msg := "SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", ck=\"00112233445566778899aabbccddeeff\"\r\n\r\n"
	if err := pw.WritePacket(Packet{Time: time.Unix(0, 0), Network: "udp",
		Local: netip.MustParseAddrPort("192.0.2.1:5060"), Remote: netip.MustParseAddrPort("192.0.2.9:5060"), Data: []byte(msg)}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b.Bytes(), []byte("0011223344")) || !bytes.Contains(b.Bytes(), []byte(`ck="<redacted>"`)) {
		t.Errorf("the capture carries the key: %q", b.Bytes())
	}
}

// The reader beside the writer: what TextTracer writes, ReadTrace reads
// back, with other lines apart; a head that contradicts itself is an error.
func TestReadTraceRoundTrip(t *testing.T) {
	var b bytes.Buffer
	tr := NewTextTracer(&b)
	at := time.Date(2025, 11, 27, 6, 52, 1, 123456000, time.UTC)
	tr.WritePacket(Packet{Time: at, Sent: true, Network: "udp", Local: netip.MustParseAddrPort("10.77.0.1:5060"), Remote: netip.MustParseAddrPort("10.77.0.2:5060"),
		Data: []byte("REGISTER sip:ims.example SIP/2.0\r\nCSeq: 1 REGISTER\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")})
	b.WriteString("imsue: a diagnostic line\n")
	tr.WritePacket(Packet{Time: at, Network: "tcp", Local: netip.MustParseAddrPort("[fd77::1]:7200"), Remote: netip.MustParseAddrPort("[fd77::2]:7100"),
		Data: []byte("NOTIFY sip:ue SIP/2.0\r\nCSeq: 2 NOTIFY\r\nContent-Length: 5\r\n\r\n<x/>\n")})
	var other []string
	var msgs []*TraceMessage
	s := TraceScanner{Message: func(m *TraceMessage) { msgs = append(msgs, m) }, Other: func(l string) { other = append(other, l) }}
	for _, l := range strings.Split(b.String(), "\n") {
		if err := s.Line(l); err != nil {
			t.Fatal(err)
		}
	}
	s.Flush()
	if len(msgs) != 2 || len(other) != 1 {
		t.Fatalf("%d messages, other %q", len(msgs), other)
	}
	if m := msgs[0]; !m.Sent || m.Network != "udp" || m.Method() != "REGISTER" || m.Expires() != 600 || !m.Time.Equal(at) || m.Dst() != netip.MustParseAddrPort("10.77.0.2:5060") {
		t.Errorf("message 0: %v", m)
	}
	if m := msgs[1]; m.Sent || m.Src() != netip.MustParseAddrPort("[fd77::2]:7100") || m.Lines[len(m.Lines)-1] != "<x/>" {
		t.Errorf("message 1: %v %q", m, m.Lines)
	}
	for _, bad := range []string{
		"--- 2025-11-27T06:52:01.100000Z sent UDP 10.77.0.21:5060 <- 10.77.0.2:5060 (612 bytes)", // arrow contradicts
		"--- 2025-11-27T06:52:01.100000Z recv TCP 10.0.0.1:99999 <- 10.0.0.2:2 (5 bytes)",
	} {
		if err := (&TraceScanner{}).Line(bad); err == nil {
			t.Errorf("%q read as a message head", bad)
		}
	}
}
