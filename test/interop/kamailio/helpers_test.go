package kamailio

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A trace as `imsue register --trace` writes it (recorded from a run
// against Kamailio 5.6.3, addresses of the lab, nonce shortened).
const sampleTrace = `--- 2025-11-27T06:52:01.100000Z sent UDP 10.77.0.21:5060 -> 10.77.0.2:5060 (612 bytes)
REGISTER sip:ims.mnc001.mcc001.3gppnetwork.org SIP/2.0
Via: SIP/2.0/UDP 10.77.0.21:40001;branch=z9hG4bK.a
CSeq: 1 REGISTER
Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;prot=esp;mod=trans;spi-c=1001;spi-s=1002;port-c=40000;port-s=40001
Content-Length: 0

imsue: some log line
--- 2025-11-27T06:52:01.300000Z recv UDP 10.77.0.21:5060 <- 10.77.0.2:5060 (700 bytes)
SIP/2.0 401 Unauthorized
CSeq: 1 REGISTER
WWW-Authenticate: Digest realm="ims.mnc001.mcc001.3gppnetwork.org", nonce="abc", algorithm=AKAv1-MD5
Security-Server: ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200;alg=hmac-sha-1-96;ealg=null
Content-Length: 0

--- 2025-11-27T06:52:01.500000Z recv UDP [fd77::1]:40001 <- [fd77::2]:7100 (500 bytes)
SIP/2.0 200 OK
CSeq: 2 REGISTER
Expires: 3600
Content-Length: 5

hello
body line

`

func TestTraceLog(t *testing.T) {
	tl := newTraceLog()
	var raw strings.Builder
	tl.read(strings.NewReader(sampleTrace), &raw)
	if raw.String() != sampleTrace {
		t.Errorf("raw copy differs from the input")
	}
	msgs := tl.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	tests := []struct {
		i              int
		sent           bool
		status         int
		method, remote string
		expires        int
		lines          int
	}{
		{0, true, 0, "REGISTER", "10.77.0.2:5060", -1, 5},
		{1, false, 401, "REGISTER", "10.77.0.2:5060", -1, 5},
		{2, false, 200, "REGISTER", "[fd77::2]:7100", 3600, 7},
	}
	for _, tt := range tests {
		m := msgs[tt.i]
		if m.Sent != tt.sent || m.Status() != tt.status || m.Method() != tt.method ||
			m.Remote != netip.MustParseAddrPort(tt.remote) || m.Expires() != tt.expires || len(m.Lines) != tt.lines {
			t.Errorf("message %d: sent %v status %d method %q remote %v expires %d, %d lines; want %v %d %q %s %d %d",
				tt.i, m.Sent, m.Status(), m.Method(), m.Remote, m.Expires(), len(m.Lines),
				tt.sent, tt.status, tt.method, tt.remote, tt.expires, tt.lines)
		}
	}
	if got := msgs[1].Headers("security-server"); len(got) != 1 || !strings.HasSuffix(got[0], "ealg=null") {
		t.Errorf("Security-Server = %q", got)
	}
	if got := msgs[2].Header("hello"); got != "" {
		t.Errorf("a body line was read as a header: %q", got)
	}
	if other := tl.Other(); len(other) != 1 || other[0] != "imsue: some log line" {
		t.Errorf("other lines = %q", other)
	}
}

func TestTraceLogWaitFor(t *testing.T) {
	tl := newTraceLog()
	r, w := io.Pipe()
	go tl.read(r, nil)
	got := make(chan error, 1)
	go func() {
		// A message without a body is complete at its blank line: the
		// waiter must not need the next message (or EOF) to see it.
		m, err := tl.WaitFor(5*time.Second, "a 401", func(m *traceMsg) bool { return m.Status() == 401 })
		if err == nil && m.Header("Security-Server") == "" {
			err = fmt.Errorf("wrong message: %v", m.Remote)
		}
		got <- err
	}()
	w.Write([]byte(sampleTrace[:strings.Index(sampleTrace, "--- 2025-11-27T06:52:01.5")]))
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := tl.WaitFor(5*time.Second, "a 503", func(m *traceMsg) bool { return m.Status() == 503 }); err == nil {
		t.Fatal("WaitFor found a message that is not there")
	}
}

func TestSameKey(t *testing.T) {
	ik := []byte{0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0x9, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x10}
	padded := append(append([]byte(nil), ik...), 0, 0, 0, 0)
	tests := []struct {
		name string
		a, b []byte
		want bool
	}{
		{"equal", ik, ik, true},
		{"IK vs IK||00000000 (hmac-sha-1-96, Kamailio vs Annex I)", ik, padded, true},
		{"one byte differs", ik, append(append([]byte(nil), ik[:15]...), 0x11), false},
		{"prefix is not padding", ik, ik[:8], false},
		{"empty keys (null cipher)", nil, []byte{}, true},
	}
	for _, tt := range tests {
		if got := sameKey(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: sameKey = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzTraceLog: any stderr content parses without panicking, and every
// message it finds starts with a non-empty line kept from the input.
func FuzzTraceLog(f *testing.F) {
	f.Add(sampleTrace)
	f.Add("--- t sent UDP 1.2.3.4:5 -> 6.7.8.9:10 (1 bytes)\n\n\n\n")
	f.Add("imsue: registered\n")
	f.Fuzz(func(t *testing.T, s string) {
		tl := newTraceLog()
		tl.read(strings.NewReader(s), nil)
		for _, m := range tl.Messages() {
			_ = m.Status()
			_ = m.Method()
			_ = m.Expires()
			if sl := m.StartLine(); sl != "" && !strings.Contains(s, sl) {
				t.Fatalf("start line %q not from the input", sl)
			}
		}
	})
}
