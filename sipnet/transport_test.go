package sipnet

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// peer is a TCP listener that reports the first line of each message it
// receives, per connection.
type peer struct {
	l     net.Listener
	lines chan string
}

func newPeer(t *testing.T, addr string) *peer {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{l: l, lines: make(chan string, 16)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					p.lines <- strings.TrimSpace(line)
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return p
}

func (p *peer) addr() netip.AddrPort { return p.l.Addr().(*net.TCPAddr).AddrPort() }

func (p *peer) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-p.lines:
		if got != want {
			t.Fatalf("%s received %q, want %q", p.addr(), got, want)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("%s received nothing, want %q", p.addr(), want)
	}
}

func (p *peer) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case got := <-p.lines:
		t.Fatalf("%s received %q, want nothing", p.addr(), got)
	case <-time.After(50 * time.Millisecond):
	}
}

func testTransport(t *testing.T) *Transport {
	tp := New(Config{})
	t.Cleanup(tp.Close)
	return tp
}

func at(port uint16) netip.AddrPort { return netip.AddrPortFrom(loopback, port) }

// sipgo looks TCP connections up by local address alone when the local port
// is fixed, so a request to one peer can leave on the connection to another.
// Here connections are keyed by both ends.
func TestTCPFixedLocalPortTwoPeers(t *testing.T) {
	tp := testTransport(t)
	a, b := newPeer(t, "127.0.0.1:0"), newPeer(t, "127.0.0.1:0")
	ctx := context.Background()
	ca, err := tp.Dial(ctx, at(0), a.addr())
	if err != nil {
		t.Fatal(err)
	}
	port := ca.Local().Port()
	if err := ca.Write([]byte("to-a-1\n")); err != nil {
		t.Fatal(err)
	}
	a.expect(t, "to-a-1")

	cb, err := tp.Dial(ctx, at(port), b.addr())
	if err != nil {
		t.Fatalf("second connection from fixed port %d: %v", port, err)
	}
	if cb == ca || cb.Local().Port() != port {
		t.Fatalf("got connection %v, want a new one from port %d", cb.key, port)
	}
	if err := cb.Write([]byte("to-b\n")); err != nil {
		t.Fatal(err)
	}
	b.expect(t, "to-b")
	a.expectNothing(t)

	again, err := tp.Dial(ctx, at(port), a.addr())
	if err != nil || again != ca {
		t.Fatalf("lookup (port %d, %s) = %v, %v; want the first connection", port, a.addr(), again, err)
	}
	if err := again.Write([]byte("to-a-2\n")); err != nil {
		t.Fatal(err)
	}
	a.expect(t, "to-a-2")
	b.expectNothing(t)
}

// Re-dialling from a fixed port after the previous connection closed (our
// side first: TIME_WAIT here; or the peer restarted) needs SO_REUSEADDR.
func TestTCPRedialFromFixedPort(t *testing.T) {
	tp := testTransport(t)
	ctx := context.Background()
	a := newPeer(t, "127.0.0.1:0")
	c1, err := tp.Dial(ctx, at(0), a.addr())
	if err != nil {
		t.Fatal(err)
	}
	port := c1.Local().Port()
	c1.Write([]byte("one\n"))
	a.expect(t, "one")
	tp.Release(at(port)) // we close first: the old connection sits in TIME_WAIT
	<-c1.Done()

	c2, err := tp.Dial(ctx, at(port), a.addr())
	if err != nil {
		t.Fatalf("re-dial from port %d after our close: %v", port, err)
	}
	c2.Write([]byte("two\n"))
	a.expect(t, "two")

	// The peer restarts on the same address: the lookup must not hand out
	// the dead connection.
	addr := a.addr()
	a.l.Close()
	c2.sc.(*kernelTCP).c.CloseWrite()
	<-c2.Done()
	b := newPeer(t, addr.String())
	c3, err := tp.Dial(ctx, at(port), addr)
	if err != nil {
		t.Fatalf("re-dial from port %d after the peer restarted: %v", port, err)
	}
	if c3 == c2 {
		t.Fatal("got the dead connection back")
	}
	c3.Write([]byte("three\n"))
	b.expect(t, "three")
}

func TestFrame(t *testing.T) {
	msg := "SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	compact := "SIP/2.0 200 OK\r\nl: 2\r\n\r\nhi"
	tests := []struct {
		name       string
		in         string
		skip, size int
		err        bool
	}{
		{"whole", msg, 0, len(msg), false},
		{"whole plus next", msg + "SIP/2.0", 0, len(msg), false},
		{"partial header", msg[:10], 0, 0, false},
		{"partial body", msg[:len(msg)-1], 0, 0, false},
		{"keep-alive before", "\r\n\r\n" + msg, 4, len(msg), false},
		{"ping alone", "\r\n\r\n", 4, 0, false},
		{"compact length", compact, 0, len(compact), false},
		{"no length", "OPTIONS sip:x SIP/2.0\r\n\r\n", 0, 25, false},
		{"lowercase name", "SIP/2.0 200 OK\r\ncontent-length:1\r\n\r\nx", 0, 37, false},
		{"bad length", "SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n", 0, 0, true},
		{"huge length", "SIP/2.0 200 OK\r\nContent-Length: 99999999\r\n\r\n", 0, 0, true},
		{"no end of header", "X" + strings.Repeat("a", MaxMessage+1), 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skip, size, err := Frame([]byte(tt.in))
			if (err != nil) != tt.err || skip != tt.skip || size != tt.size {
				t.Errorf("frame = %d, %d, %v; want %d, %d, err %v", skip, size, err, tt.skip, tt.size, tt.err)
			}
		})
	}
}

// A stream split at every byte boundary yields the same messages.
func TestTCPStreamReassembly(t *testing.T) {
	got := make(chan *Inbound, 8)
	tp := New(Config{Handler: func(in *Inbound) { got <- in }})
	t.Cleanup(tp.Close)
	bound, err := tp.Bind(at(0), false)
	port := bound.Port()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp4", netip.AddrPortFrom(loopback, port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream := "\r\n\r\n" + notifyText("a", "x") + notifyText("b", "hello world") + "\r\n"
	for i := range len(stream) {
		if _, err := c.Write([]byte{stream[i]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"a", "b"} {
		select {
		case in := <-got:
			req, ok := in.Msg.(*sip.Request)
			if !ok || req.CallID() == nil || string(*req.CallID()) != want || in.Conn == nil {
				t.Fatalf("got %v, want NOTIFY with Call-ID %s", in.Msg, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("message %s not delivered", want)
		}
	}
	// The CRLF-CRLF ping was answered with a CRLF pong (RFC 5626 §3.5.1).
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	pong := make([]byte, 2)
	if _, err := io.ReadFull(c, pong); err != nil || string(pong) != "\r\n" {
		t.Errorf("pong = %q, %v", pong, err)
	}
}

// Messages that arrive together are framed in the read chunk itself, and
// what they keep survives the reads that reuse it: whole messages and the
// start of another in one write, the rest in a second.
func TestTCPStreamBatched(t *testing.T) {
	got := make(chan *Inbound, 8)
	tp := New(Config{Handler: func(in *Inbound) { got <- in }})
	t.Cleanup(tp.Close)
	bound, err := tp.Bind(at(0), false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp4", netip.AddrPortFrom(loopback, bound.Port()).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	third := notifyText("c", "third body")
	first := notifyText("a", "first body") + notifyText("b", "second body") + third[:len(third)/2]
	for _, part := range []string{first, third[len(third)/2:]} {
		if _, err := c.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // two reads, most likely
	}
	var msgs []*Inbound
	for range 3 {
		select {
		case in := <-got:
			msgs = append(msgs, in)
		case <-time.After(2 * time.Second):
			t.Fatalf("%d of 3 messages delivered", len(msgs))
		}
	}
	for i, want := range []struct{ callID, body string }{{"a", "first body"}, {"b", "second body"}, {"c", "third body"}} {
		req, ok := msgs[i].Msg.(*sip.Request)
		if !ok || req.CallID() == nil || string(*req.CallID()) != want.callID || string(req.Body()) != want.body {
			t.Errorf("message %d = %v; want Call-ID %s, body %q", i, msgs[i].Msg, want.callID, want.body)
		}
	}
}

// deliver hands the parser a read buffer that the next read overwrites:
// the parsed message must not share its bytes (sipgo copies them; a
// zero-copy parser would break this).
func TestParsedMessageOwnsItsBytes(t *testing.T) {
	data := []byte(notifyText("owned", "a body"))
	msg, err := sip.ParseMessage(data)
	if err != nil {
		t.Fatal(err)
	}
	want := msg.String()
	for i := range data {
		data[i] = 'X'
	}
	if got := msg.String(); got != want {
		t.Errorf("message changed with its input buffer:\n%s", got)
	}
}

func notifyText(callID, body string) string {
	return "NOTIFY sip:ue@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK" + callID + "\r\n" +
		"From: <sip:p@x>;tag=1\r\nTo: <sip:u@x>;tag=2\r\nCall-ID: " + callID + "\r\n" +
		"CSeq: 1 NOTIFY\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func TestBindServerPortInUse(t *testing.T) {
	tp := testTransport(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := uint16(l.Addr().(*net.TCPAddr).Port)
	_, err = tp.Bind(at(taken), false)
	if err == nil {
		t.Fatalf("Bind(%d) succeeded with the TCP port taken", taken)
	}
	tp.mu.Lock()
	_, udpLeft := tp.udp[at(taken)]
	tp.mu.Unlock()
	if udpLeft {
		t.Error("the UDP half stayed bound after the TCP half failed")
	}
	if !strings.Contains(err.Error(), strconv.Itoa(int(taken))) {
		t.Errorf("error does not name the port: %v", err)
	}
}
