package sipnet

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// TraceMessage is one SIP message read back from TextTracer output (the
// --trace text): where it crossed which socket, and its text.
type TraceMessage struct {
	Time    time.Time
	Sent    bool
	Network string // "udp" or "tcp"
	Local   netip.AddrPort
	Remote  netip.AddrPort
	Size    int      // bytes on the wire
	Lines   []string // start line, headers, and the body after a blank line if any
}

// Src and Dst are the message's source and destination.
func (m TraceMessage) Src() netip.AddrPort {
	if m.Sent {
		return m.Local
	}
	return m.Remote
}

// Dst is the message's destination.
func (m TraceMessage) Dst() netip.AddrPort {
	if m.Sent {
		return m.Remote
	}
	return m.Local
}

// StartLine is the request or status line.
func (m TraceMessage) StartLine() string {
	if len(m.Lines) == 0 {
		return ""
	}
	return m.Lines[0]
}

// Headers returns the values of every header named name (full name,
// case-insensitive), in order.
func (m TraceMessage) Headers(name string) []string {
	var out []string
	for _, l := range m.Lines[min(1, len(m.Lines)):] {
		if l == "" {
			break // end of the header section
		}
		n, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(n), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// Header returns the first value of the named header, "" when absent.
func (m TraceMessage) Header(name string) string {
	if v := m.Headers(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// CSeq returns the CSeq number and method (0, "" when unreadable).
func (m TraceMessage) CSeq() (uint32, string) {
	num, method, _ := strings.Cut(m.Header("CSeq"), " ")
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, ""
	}
	return uint32(n), strings.TrimSpace(method)
}

// Status is the response code, 0 for a request.
func (m TraceMessage) Status() int {
	rest, ok := strings.CutPrefix(m.StartLine(), "SIP/2.0 ")
	if !ok {
		return 0
	}
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 699 {
		return 0
	}
	return n
}

// Method is the request method, "" for a response.
func (m TraceMessage) Method() string {
	if m.Status() != 0 {
		return ""
	}
	method, _, _ := strings.Cut(m.StartLine(), " ")
	return method
}

// Expires is the Expires header, -1 when absent or invalid.
func (m TraceMessage) Expires() int {
	n, err := strconv.Atoi(m.Header("Expires"))
	if err != nil {
		return -1
	}
	return n
}

func (m TraceMessage) String() string {
	dir := "recv"
	if m.Sent {
		dir = "sent"
	}
	return fmt.Sprintf("%s %s %v→%v %q", dir, m.Network, m.Src(), m.Dst(), m.StartLine())
}

// traceHead is the line TextTracer writes before each message.
var traceHead = regexp.MustCompile(`^--- (\S+) (sent|recv) (UDP|TCP) (\S+) (->|<-) (\S+) \((\d+) bytes\)$`)

// TraceScanner splits TextTracer output, fed line by line, into messages.
// A message without a body is emitted at the blank line that ends its
// headers, so that a waiting reader sees it at once; one with a body at
// the blank line the tracer writes after it. Lines outside a message (the
// program's own diagnostics) go to Other.
type TraceScanner struct {
	Message func(*TraceMessage)
	Other   func(line string)

	cur    *TraceMessage
	inBody bool
}

// Line feeds one line, without its newline. A line that looks like a
// message head but does not parse is an error.
func (s *TraceScanner) Line(line string) error {
	if f := traceHead.FindStringSubmatch(line); f != nil {
		s.Flush()
		m, err := parseTraceHead(f)
		if err != nil {
			return fmt.Errorf("trace head %q: %w", line, err)
		}
		s.cur, s.inBody = m, false
		return nil
	}
	switch {
	case s.cur == nil:
		if line != "" && s.Other != nil {
			s.Other(line)
		}
	case line == "" && !s.inBody:
		if n, err := strconv.Atoi(s.cur.Header("Content-Length")); err != nil || n == 0 {
			s.Flush()
			return nil
		}
		s.cur.Lines = append(s.cur.Lines, line)
		s.inBody = true
	case line == "":
		s.Flush()
	default:
		s.cur.Lines = append(s.cur.Lines, line)
	}
	return nil
}

// Flush emits the message being collected, if any.
func (s *TraceScanner) Flush() {
	if s.cur == nil {
		return
	}
	m := s.cur
	s.cur, s.inBody = nil, false
	if s.Message != nil {
		s.Message(m)
	}
}

func parseTraceHead(f []string) (*TraceMessage, error) {
	m := &TraceMessage{}
	var err error
	if m.Time, err = time.Parse("2006-01-02T15:04:05.000000Z", f[1]); err != nil {
		return nil, fmt.Errorf("time: %w", err)
	}
	m.Sent = f[2] == "sent"
	if m.Sent != (f[5] == "->") {
		return nil, fmt.Errorf("direction %s with arrow %s", f[2], f[5])
	}
	m.Network = strings.ToLower(f[3])
	if m.Local, err = netip.ParseAddrPort(f[4]); err != nil {
		return nil, fmt.Errorf("local address: %w", err)
	}
	if m.Remote, err = netip.ParseAddrPort(f[6]); err != nil {
		return nil, fmt.Errorf("remote address: %w", err)
	}
	if m.Size, err = strconv.Atoi(f[7]); err != nil || m.Size < 0 {
		return nil, fmt.Errorf("size %q", f[7])
	}
	return m, nil
}

// ReadTrace reads a whole trace.
func ReadTrace(r io.Reader) ([]*TraceMessage, error) {
	var out []*TraceMessage
	s := TraceScanner{Message: func(m *TraceMessage) { out = append(out, m) }}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if err := s.Line(sc.Text()); err != nil {
			return out, err
		}
	}
	s.Flush()
	return out, sc.Err()
}
