package esp_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/sipnet"
)

// traceMsg is one SIP message of `imsue register --trace` (sipclient's
// TextTracer format): the UE's own view of what it sent and received, with
// the transport and the exact addresses, which is how the tests find the SA
// that must have carried each message.
type traceMsg struct {
	Time          time.Time
	Sent          bool
	Network       string // "udp" or "tcp"
	Local, Remote netip.AddrPort
	Size          int    // bytes on the wire
	Text          string // start line and headers, \n separated (no body)
}

// Src and Dst are the message's source and destination.
func (m traceMsg) Src() netip.AddrPort {
	if m.Sent {
		return m.Local
	}
	return m.Remote
}

func (m traceMsg) Dst() netip.AddrPort {
	if m.Sent {
		return m.Remote
	}
	return m.Local
}

// StartLine is the message's first line.
func (m traceMsg) StartLine() string {
	line, _, _ := strings.Cut(m.Text, "\n")
	return line
}

// Header returns the first value of the named header (full name,
// case-insensitive), "" when absent.
func (m traceMsg) Header(name string) string {
	for _, line := range strings.Split(m.Text, "\n")[1:] {
		if line == "" {
			break // end of headers
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// CSeq returns the CSeq number and method.
func (m traceMsg) CSeq() (uint32, string) {
	num, method, _ := strings.Cut(m.Header("CSeq"), " ")
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, ""
	}
	return uint32(n), strings.TrimSpace(method)
}

// Status is the response code, 0 for a request.
func (m traceMsg) Status() int {
	rest, ok := strings.CutPrefix(m.StartLine(), "SIP/2.0 ")
	if !ok {
		return 0
	}
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		return 0
	}
	return n
}

// Method is the request method, "" for a response.
func (m traceMsg) Method() string {
	if m.Status() != 0 {
		return ""
	}
	method, _, _ := strings.Cut(m.StartLine(), " ")
	return method
}

// Protected reports whether m is a REGISTER carrying Security-Verify, i.e.
// one sent over an SA set.
func (m traceMsg) Protected() bool {
	return m.Method() == "REGISTER" && m.Header("Security-Verify") != ""
}

func (m traceMsg) String() string {
	dir := "recv"
	if m.Sent {
		dir = "sent"
	}
	return fmt.Sprintf("%s %s %v→%v %q", dir, m.Network, m.Src(), m.Dst(), m.StartLine())
}

// traceHeader is the line TextTracer writes before each message.
var traceHeader = regexp.MustCompile(`^--- (\S+) (sent|recv) (UDP|TCP) (\S+) (->|<-) (\S+) \((\d+) bytes\)$`)

// traceParser splits TextTracer output into messages. A message is
// emitted at the empty line that ends its headers, so that a waiting test
// sees it at once rather than when the next message comes; its body and any
// line outside a message (imsue's own warnings) are ignored.
type traceParser struct {
	cur  *traceMsg
	text strings.Builder
	out  func(traceMsg)
}

// line feeds one line (without its newline).
func (p *traceParser) line(s string) error {
	if f := traceHeader.FindStringSubmatch(s); f != nil {
		p.flush()
		m, err := parseTraceHeader(f)
		if err != nil {
			return fmt.Errorf("trace header %q: %w", s, err)
		}
		p.cur = &m
		return nil
	}
	if p.cur != nil && s == "" {
		p.flush()
		return nil
	}
	if p.cur != nil {
		p.text.WriteString(s)
		p.text.WriteByte('\n')
	}
	return nil
}

// flush emits the message being collected.
func (p *traceParser) flush() {
	if p.cur == nil {
		return
	}
	p.cur.Text = strings.TrimRight(p.text.String(), "\n") + "\n"
	p.out(*p.cur)
	p.cur = nil
	p.text.Reset()
}

func parseTraceHeader(f []string) (traceMsg, error) {
	var m traceMsg
	var err error
	if m.Time, err = time.Parse("2006-01-02T15:04:05.000000Z", f[1]); err != nil {
		return m, fmt.Errorf("time: %w", err)
	}
	m.Sent = f[2] == "sent"
	if m.Sent != (f[5] == "->") {
		return m, fmt.Errorf("direction %s with arrow %s", f[2], f[5])
	}
	m.Network = strings.ToLower(f[3])
	if m.Local, err = netip.ParseAddrPort(f[4]); err != nil {
		return m, fmt.Errorf("local address: %w", err)
	}
	if m.Remote, err = netip.ParseAddrPort(f[6]); err != nil {
		return m, fmt.Errorf("remote address: %w", err)
	}
	if m.Size, err = strconv.Atoi(f[7]); err != nil || m.Size < 0 {
		return m, fmt.Errorf("size %q", f[7])
	}
	return m, nil
}

// parseTrace parses a whole trace.
func parseTrace(r io.Reader) ([]traceMsg, error) {
	var out []traceMsg
	p := traceParser{out: func(m traceMsg) { out = append(out, m) }}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if err := p.line(sc.Text()); err != nil {
			return out, err
		}
	}
	p.flush()
	return out, sc.Err()
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
