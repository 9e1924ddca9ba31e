package sipclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/sipnet"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// TestRequestOnlyAnsweredOverLiveSet: the UE acts on and answers a request
// from the network only while the SA set it came over is installed and not
// being removed. A request on a flow of no set, or of a set whose removal
// has begun or ended, gets no answer at all: the answer would leave in
// clear. The last case is the one CI caught under UML: over TCP, the
// reg-event NOTIFY of a de-registration reached the UE just after it had
// removed its set, on the connection from port_pc that outlives the SAs,
// and the UE's 481 left unprotected.
//
// The request arrives on a real loopback TCP connection; the peer reads
// everything the UE wrote until the UE closes its end, so "nothing sent"
// is read, not waited for.
func TestRequestOnlyAnsweredOverLiveSet(t *testing.T) {
	tests := []struct {
		name    string
		flow    bool                       // the set has an inbound SA for the connection
		prepare func(c *Client, id uint64) // what happened to the set before the request
		answer  string                     // the first line the peer receives, "" for nothing
	}{
		{"live set", true, func(*Client, uint64) {}, "SIP/2.0 200 OK"},
		{"set being removed", true, func(c *Client, id uint64) { c.withdraw(id) }, ""},
		{"set removed", true, func(c *Client, id uint64) {
			c.withdraw(id)
			c.mu.Lock()
			delete(c.installed, id)
			delete(c.withdrawn, id)
			c.mu.Unlock()
		}, ""},
		{"no set for the flow", false, func(*Client, uint64) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := sipnet.New(sipnet.Config{})
			t.Cleanup(tp.Close)
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			received := make(chan []byte, 1)
			go func() {
				nc, err := l.Accept()
				if err != nil {
					received <- nil
					return
				}
				defer nc.Close()
				b, _ := io.ReadAll(nc)
				received <- b
			}()
			conn, err := tp.Dial(context.Background(), netip.AddrPortFrom(loopback, 0), l.Addr().(*net.TCPAddr).AddrPort())
			if err != nil {
				t.Fatal(err)
			}

			const id = 7
			set := &ipsec.SASet{ID: id}
			if tt.flow {
				set.SAs[2] = ipsec.SA{Src: conn.Remote(), Dst: conn.Local(), Dir: ipsec.In}
			}
			c := &Client{
				s:         &settings{log: slog.New(slog.DiscardHandler)},
				tp:        tp,
				local:     loopback,
				installed: map[uint64]*ipsec.SASet{id: set},
				withdrawn: map[uint64]bool{},
				subCallID: "sub-1@ue",
				events:    make(chan *notifyEvent, 1),
			}
			tt.prepare(c, id)

			req := notify(t, conn.Remote().String())
			c.onRequest(&sipnet.Inbound{Msg: req, Network: "tcp", Local: conn.Local(), Remote: conn.Remote(), Conn: conn, At: time.Now()})
			conn.Close()
			got := <-received

			first, _, _ := bytes.Cut(got, []byte("\r\n"))
			if string(first) != tt.answer {
				t.Errorf("the network received %q, want first line %q", got, tt.answer)
			}
			acted := len(c.events) > 0
			if acted != (tt.answer != "") {
				t.Errorf("the UE acted on the NOTIFY: %v, answered it: %q", acted, first)
			}
			if unanswered := c.unanswered.Load(); (unanswered > 0) != (tt.answer == "") {
				t.Errorf("unanswered requests: %d", unanswered)
			}
		})
	}
}

// notify is a reg-event NOTIFY (terminated) of subscription sub-1@ue from via.
func notify(t *testing.T, via string) *sip.Request {
	t.Helper()
	text := strings.Join([]string{
		"NOTIFY sip:ue@127.0.0.1 SIP/2.0",
		fmt.Sprintf("Via: SIP/2.0/TCP %s;branch=z9hG4bK.notify1", via),
		"From: <sip:user@ims.example>;tag=s1",
		"To: <sip:user@ims.example>;tag=u1",
		"Call-ID: sub-1@ue",
		"CSeq: 2 NOTIFY",
		"Event: reg",
		"Subscription-State: terminated;reason=timeout",
		"Content-Length: 0",
		"", "",
	}, "\r\n")
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Request)
}
