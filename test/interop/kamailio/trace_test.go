package kamailio

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/imsue/imsue/sipnet"
)

// traceMsg is one SIP message of imsue's --trace output, as sipnet's
// trace reader reads it.
type traceMsg struct{ sipnet.TraceMessage }

// Method is the request method, or for a response the CSeq method.
func (m *traceMsg) Method() string {
	if m.Status() == 0 {
		return m.TraceMessage.Method()
	}
	_, method := m.CSeq()
	return method
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
	other := func(line string) {
		tl.mu.Lock()
		tl.other = append(tl.other, line)
		tl.mu.Unlock()
	}
	s := sipnet.TraceScanner{
		Message: func(m *sipnet.TraceMessage) {
			tl.mu.Lock()
			tl.msgs = append(tl.msgs, &traceMsg{*m})
			close(tl.changed)
			tl.changed = make(chan struct{})
			tl.mu.Unlock()
		},
		Other: other,
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := s.Line(sc.Text()); err != nil {
			other(sc.Text()) // looks like a message head, but is not one
		}
	}
	s.Flush()
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
