package kamailio

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// traceMsg is one SIP message of imsue's --trace output (sipclient's
// TextTracer): where it crossed which socket, and its text.
type traceMsg struct {
	Sent    bool
	Network string // "UDP" or "TCP"
	Local   netip.AddrPort
	Remote  netip.AddrPort
	Lines   []string // start line, headers, blank line, body
}

// StartLine is the request or status line.
func (m *traceMsg) StartLine() string {
	if len(m.Lines) == 0 {
		return ""
	}
	return m.Lines[0]
}

// Status is the status code of a response, 0 for a request.
func (m *traceMsg) Status() int {
	rest, ok := strings.CutPrefix(m.StartLine(), "SIP/2.0 ")
	if !ok || len(rest) < 3 {
		return 0
	}
	n, err := strconv.Atoi(rest[:3])
	if err != nil {
		return 0
	}
	return n
}

// Method is the request method, or for a response the CSeq method.
func (m *traceMsg) Method() string {
	if m.Status() == 0 {
		method, _, _ := strings.Cut(m.StartLine(), " ")
		return method
	}
	cseq := strings.Fields(m.Header("CSeq"))
	if len(cseq) != 2 {
		return ""
	}
	return cseq[1]
}

// Headers returns the values of every header named name (case-insensitive,
// full names only), in order.
func (m *traceMsg) Headers(name string) []string {
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

// Header returns the first value of the header name, or "".
func (m *traceMsg) Header(name string) string {
	if v := m.Headers(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Expires is the Expires header of the message, -1 when absent or invalid.
func (m *traceMsg) Expires() int {
	n, err := strconv.Atoi(m.Header("Expires"))
	if err != nil {
		return -1
	}
	return n
}

// traceHead matches the first line of each message block:
//
//	--- 2025-11-27T06:52:01.123456Z sent UDP 10.77.0.1:5060 -> 10.77.0.2:5060 (845 bytes)
var traceHead = regexp.MustCompile(`^--- \S+ (sent|recv) (UDP|TCP) (\S+) (->|<-) (\S+) \(\d+ bytes\)$`)

// parseTraceHead parses a block's first line; ok is false for any other line.
func parseTraceHead(line string) (m traceMsg, ok bool) {
	f := traceHead.FindStringSubmatch(line)
	if f == nil {
		return m, false
	}
	local, err1 := netip.ParseAddrPort(f[3])
	remote, err2 := netip.ParseAddrPort(f[5])
	if err1 != nil || err2 != nil || (f[1] == "sent") != (f[4] == "->") {
		return m, false
	}
	return traceMsg{Sent: f[1] == "sent", Network: f[2], Local: local, Remote: remote}, true
}

// traceLog collects the messages of a running imsue from its stderr and
// lets a test wait for one. Lines outside a message block (imsue's own log
// lines) are kept apart in Other.
type traceLog struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every new message or at EOF
	msgs    []*traceMsg
	other   []string
	done    bool
}

func newTraceLog() *traceLog { return &traceLog{changed: make(chan struct{})} }

// read consumes r (imsue's stderr) until EOF, copying it to raw if not nil.
func (tl *traceLog) read(r io.Reader, raw io.Writer) {
	if raw != nil {
		r = io.TeeReader(r, raw)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur *traceMsg
	flush := func() {
		if cur == nil {
			return
		}
		// The tracer ends each block with one blank line.
		for len(cur.Lines) > 0 && cur.Lines[len(cur.Lines)-1] == "" {
			cur.Lines = cur.Lines[:len(cur.Lines)-1]
		}
		tl.mu.Lock()
		tl.msgs = append(tl.msgs, cur)
		close(tl.changed)
		tl.changed = make(chan struct{})
		tl.mu.Unlock()
		cur = nil
	}
	inBody := false // past the blank line that ends the headers
	for sc.Scan() {
		line := sc.Text()
		if m, ok := parseTraceHead(line); ok {
			flush()
			cur, inBody = &m, false
			continue
		}
		switch {
		case cur == nil:
			if line != "" {
				tl.mu.Lock()
				tl.other = append(tl.other, line)
				tl.mu.Unlock()
			}
		case !inBody && line == "":
			// The end of the headers. Without a body the tracer's blank line
			// ends the block: what follows is imsue's own output.
			cur.Lines = append(cur.Lines, line)
			inBody = true
			if n, err := strconv.Atoi(cur.Header("Content-Length")); err == nil && n == 0 {
				flush()
			}
		default:
			cur.Lines = append(cur.Lines, line)
		}
	}
	flush()
	tl.mu.Lock()
	tl.done = true
	close(tl.changed)
	tl.changed = make(chan struct{})
	tl.mu.Unlock()
}

// Messages returns the messages seen so far.
func (tl *traceLog) Messages() []*traceMsg {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]*traceMsg(nil), tl.msgs...)
}

// Other returns the stderr lines that were not part of a message.
func (tl *traceLog) Other() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]string(nil), tl.other...)
}

// WaitFor waits until match accepts a message (it sees every message once,
// in order, from the first) and returns that message. It fails when the
// stream ends or timeout passes first.
func (tl *traceLog) WaitFor(timeout time.Duration, what string, match func(*traceMsg) bool) (*traceMsg, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	next := 0
	for {
		tl.mu.Lock()
		msgs, done, changed := tl.msgs[next:], tl.done, tl.changed
		next = len(tl.msgs)
		tl.mu.Unlock()
		for _, m := range msgs {
			if match(m) {
				return m, nil
			}
		}
		if done {
			return nil, fmt.Errorf("imsue's trace ended without %s", what)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("no %s in imsue's trace after %s", what, timeout)
		}
	}
}

// sameKey reports whether two HMAC or cipher keys are the same key for
// the kernel: equal once trailing zero bytes are removed. HMAC pads a key
// shorter than its block with zeros (RFC 2104), so Kamailio's 128-bit IK
// and the 160-bit IK‖0x00000000 of TS 33.203 Annex I give the same MAC.
// Only the integrity keys may differ so; callers compare cipher keys with
// bytes.Equal.
func sameKey(a, b []byte) bool {
	return bytes.Equal(bytes.TrimRight(a, "\x00"), bytes.TrimRight(b, "\x00"))
}
