package esp_test

import (
	"bytes"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/sipnet"
)

// traceMsg is one SIP message of `imsue register --trace`, as sipnet's
// trace reader reads it: the UE's own view of what it sent and received,
// with the transport and the exact addresses, which is how the tests find
// the SA that must have carried each message. Text is its start line and
// headers, \n separated (no body).
type traceMsg struct {
	sipnet.TraceMessage
	Text string
}

func newTraceMsg(m *sipnet.TraceMessage) traceMsg {
	var b strings.Builder
	for _, l := range m.Lines {
		if l == "" {
			break
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return traceMsg{TraceMessage: *m, Text: b.String()}
}

// Protected reports whether m is a REGISTER carrying Security-Verify, i.e.
// one sent over an SA set.
func (m traceMsg) Protected() bool {
	return m.Method() == "REGISTER" && m.Header("Security-Verify") != ""
}

// traceParser splits TextTracer output, fed line by line, into messages.
type traceParser struct {
	out func(traceMsg)
	s   *sipnet.TraceScanner
}

// line feeds one line (without its newline).
func (p *traceParser) line(s string) error {
	if p.s == nil {
		p.s = &sipnet.TraceScanner{Message: func(m *sipnet.TraceMessage) { p.out(newTraceMsg(m)) }}
	}
	return p.s.Line(s)
}

// flush emits the message being collected.
func (p *traceParser) flush() {
	if p.s != nil {
		p.s.Flush()
	}
}

// parseTrace parses a whole trace.
func parseTrace(r io.Reader) ([]traceMsg, error) {
	msgs, err := sipnet.ReadTrace(r)
	out := make([]traceMsg, len(msgs))
	for i, m := range msgs {
		out[i] = newTraceMsg(m)
	}
	return out, err
}

// traceSample is what sipclient's TextTracer writes for two messages of a
// registration over UDP and TCP, IPv4 and IPv6.
func traceSample(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	tr := sipnet.NewTextTracer(&b)
	at := time.Date(2025, 11, 27, 6, 52, 1, 123456000, time.UTC)
	for _, p := range []sipnet.Packet{
		{Time: at, Sent: true, Network: "udp", Local: netip.MustParseAddrPort("10.77.0.1:40001"), Remote: netip.MustParseAddrPort("10.77.0.2:40002"),
			Data: []byte("REGISTER sip:ims.example SIP/2.0\r\nCSeq: 2 REGISTER\r\nSecurity-Verify: ipsec-3gpp;alg=hmac-md5-96\r\nContent-Length: 0\r\n\r\n")},
		{Time: at.Add(time.Millisecond), Network: "tcp", Local: netip.MustParseAddrPort("[fd77::1]:40001"), Remote: netip.MustParseAddrPort("[fd77::2]:40002"),
			Data: []byte("SIP/2.0 200 OK\r\nCSeq: 2 REGISTER\r\nContent-Length: 4\r\n\r\nbody")},
	} {
		if err := tr.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestParseTrace(t *testing.T) {
	msgs, err := parseTrace(bytes.NewReader(traceSample(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2: %v", len(msgs), msgs)
	}
	tests := []struct {
		m               traceMsg
		sent, protected bool
		network         string
		src, dst        string
		method          string
		status          int
		cseq            uint32
	}{
		{msgs[0], true, true, "udp", "10.77.0.1:40001", "10.77.0.2:40002", "REGISTER", 0, 2},
		{msgs[1], false, false, "tcp", "[fd77::2]:40002", "[fd77::1]:40001", "", 200, 2},
	}
	for i, tt := range tests {
		n, method := tt.m.CSeq()
		if tt.m.Sent != tt.sent || tt.m.Protected() != tt.protected || tt.m.Network != tt.network ||
			tt.m.Src().String() != tt.src || tt.m.Dst().String() != tt.dst || tt.m.Method() != tt.method ||
			tt.m.Status() != tt.status || n != tt.cseq || method != "REGISTER" {
			t.Errorf("message %d: %v (cseq %d %s, status %d)", i, tt.m, n, method, tt.m.Status())
		}
	}
	if strings.Contains(msgs[1].Text, "body") || msgs[1].Header("Content-Length") != "4" {
		t.Errorf("message 1: headers %q, want them without the body", msgs[1].Text)
	}
	if _, err := parseTrace(strings.NewReader("--- 2025-11-27T06:52:01.123456Z sent UDP 10.0.0.1:1 <- 10.0.0.2:2 (5 bytes)\n")); err == nil {
		t.Error("a sent message with a receive arrow parsed")
	}
	if _, err := parseTrace(strings.NewReader("--- 2025-11-27T06:52:01.123456Z recv TCP 10.0.0.1:99999 <- 10.0.0.2:2 (5 bytes)\n")); err == nil {
		t.Error("port 99999 parsed")
	}
}

// FuzzParseTrace: no input makes the parser or the accessors panic, and
// every message it returns has valid addresses.
func FuzzParseTrace(f *testing.F) {
	f.Add(traceSample(f))
	f.Add([]byte("imsue: warning: x\n--- 2025-11-27T06:52:01.123456Z recv UDP [fd77::1]:5 <- [fd77::2]:6 (0 bytes)\nSIP/2.0 401 Unauthorized\nCSeq: x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, _ := parseTrace(bytes.NewReader(b))
		for _, m := range msgs {
			if !m.Local.IsValid() || !m.Remote.IsValid() || m.Size < 0 {
				t.Fatalf("invalid message %+v", m)
			}
			m.CSeq()
			m.Status()
			m.Method()
			m.Protected()
			_ = m.String()
		}
	})
}
