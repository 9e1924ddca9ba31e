package sipnet_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/sipnet"
	"github.com/imsue/imsue/sipnet/memnet"
)

var (
	ueIP   = netip.MustParseAddr("192.0.2.1")
	coreIP = netip.MustParseAddr("192.0.2.9")
	// fast timers: the schedule below is in units of T1
	fast = sipnet.Timers{T1: 10 * time.Millisecond, T2: 40 * time.Millisecond, T4: 50 * time.Millisecond}
)

// pair is a UE transport and a server transport on one memnet Network. The
// server answers every request it acts on with 200, after Begin.
type pair struct {
	net         *memnet.Network
	ue, srv     *sipnet.Transport
	ueAddr      netip.AddrPort
	srvAddr     netip.AddrPort
	acted       atomic.Int32 // requests the server acted on
	respond     atomic.Bool  // the server answers (else it stays silent)
	provisional atomic.Bool  // the server sends 100 Trying first
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{net: memnet.New()}
	p.respond.Store(true)
	p.ue = sipnet.New(sipnet.Config{Net: p.net.Host(ueIP), Timers: fast})
	p.srv = sipnet.New(sipnet.Config{Net: p.net.Host(coreIP), Timers: fast, Handler: p.serve})
	t.Cleanup(p.ue.Close)
	t.Cleanup(p.srv.Close)
	var err error
	if p.ueAddr, err = p.ue.Bind(netip.AddrPortFrom(ueIP, 5060), false); err != nil {
		t.Fatal(err)
	}
	if p.srvAddr, err = p.srv.Bind(netip.AddrPortFrom(coreIP, 5060), false); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pair) serve(in *sipnet.Inbound) {
	req := in.Msg.(*sip.Request)
	if !p.srv.Begin(req) {
		return
	}
	p.acted.Add(1)
	r := sipnet.Route{Network: in.Network, From: in.Local, To: sipnet.ViaDestination(req.Via(), in.Remote), Conn: in.Conn}
	if p.provisional.Load() {
		_ = p.srv.Send(context.Background(), r, []byte(sip.NewResponseFromRequest(req, 100, "Trying", nil).String()))
	}
	if p.respond.Load() {
		_ = p.srv.Respond(req, sip.NewResponseFromRequest(req, 200, "OK", nil), r)
	}
}

var branchSeq atomic.Int64

func register(from, to netip.AddrPort, network string) *sip.Request {
	text := fmt.Sprintf("REGISTER sip:ims.example SIP/2.0\r\n"+
		"Via: SIP/2.0/%s %s;branch=z9hG4bK%d\r\n"+
		"From: <sip:ue@ims.example>;tag=1\r\nTo: <sip:ue@ims.example>\r\nCall-ID: c1\r\n"+
		"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n", strings.ToUpper(network), from, branchSeq.Add(1))
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		panic(err)
	}
	return msg.(*sip.Request)
}

// Loss: the first two copies of the request are lost; the third (sent at
// T1 + 2·T1) gets through and the transaction completes with one action at
// the server.
func TestClientRetransmitsOverLoss(t *testing.T) {
	p := newPair(t)
	lost := 0
	p.net.SetFilter(func(d memnet.Datagram) memnet.Verdict {
		if d.Dst == p.srvAddr && lost < 2 {
			lost++
			return memnet.Drop
		}
		return memnet.Deliver
	})
	in, err := p.ue.Request(context.Background(), register(p.ueAddr, p.srvAddr, "udp"), sipnet.Route{Network: "udp", From: p.ueAddr, To: p.srvAddr})
	if err != nil {
		t.Fatal(err)
	}
	if code := in.Msg.(*sip.Response).StatusCode; code != 200 {
		t.Fatalf("final response %d", code)
	}
	if lost != 2 || p.acted.Load() != 1 {
		t.Errorf("lost %d, server acted %d times; want 2 and 1", lost, p.acted.Load())
	}
}

// Duplication: every datagram is delivered twice. The server acts once and
// answers the duplicate from its transaction; the UE takes the first final
// response and drops the others.
func TestDuplicatesAbsorbed(t *testing.T) {
	p := newPair(t)
	p.net.SetFilter(func(memnet.Datagram) memnet.Verdict { return memnet.Duplicate })
	if _, err := p.ue.Request(context.Background(), register(p.ueAddr, p.srvAddr, "udp"), sipnet.Route{Network: "udp", From: p.ueAddr, To: p.srvAddr}); err != nil {
		t.Fatal(err)
	}
	// Four 200s reach the UE: one completes the transaction, the others
	// arrive after it completed (stray) or while it was returning.
	if !testenv.Poll(5*time.Second, func() bool { return p.ue.Stats().Stray >= 2 }) {
		t.Fatal("not reached within 5s")
	}
	if p.acted.Load() != 1 {
		t.Errorf("server acted %d times on a duplicated request", p.acted.Load())
	}
	if s := p.srv.Stats(); s.Absorbed != 1 || s.Resent != 1 {
		t.Errorf("server stats %+v: want 1 absorbed, 1 resent", s)
	}
}

// Reordering: two transactions' requests are held and released in reverse
// order; each completes with its own response.
func TestReorderedRequests(t *testing.T) {
	p := newPair(t)
	p.net.SetFilter(func(d memnet.Datagram) memnet.Verdict {
		if d.Dst == p.srvAddr {
			return memnet.Hold
		}
		return memnet.Deliver
	})
	a, b := register(p.ueAddr, p.srvAddr, "udp"), register(p.ueAddr, p.srvAddr, "udp")
	b.CSeq().SeqNo = 2
	r := sipnet.Route{Network: "udp", From: p.ueAddr, To: p.srvAddr}
	ta, err := p.ue.Start(context.Background(), a, r)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := p.ue.Start(context.Background(), b, r)
	if err != nil {
		t.Fatal(err)
	}
	p.net.SetFilter(nil)
	p.net.Release([]int{1, 0})
	for _, c := range []struct {
		tx   *sipnet.ClientTx
		cseq uint32
	}{{ta, 1}, {tb, 2}} {
		in, err := c.tx.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := in.Msg.(*sip.Response).CSeq().SeqNo; got != c.cseq {
			t.Errorf("transaction of CSeq %d completed by the response to %d", c.cseq, got)
		}
	}
}

// No answer: the UE retransmits at T1, 2·T1, 4·T1, then every T2, and
// gives up after Timer F = 64·T1 with a TimeoutError wrapping ErrNoAnswer.
// Timers that fire late send fewer copies, so the count is checked
// against bounds (RFC 3261 §17.1.2.2), not an exact figure.
func TestTimerF(t *testing.T) {
	p := newPair(t)
	p.respond.Store(false)
	start := time.Now()
	_, err := p.ue.Request(context.Background(), register(p.ueAddr, p.srvAddr, "udp"), sipnet.Route{Network: "udp", From: p.ueAddr, To: p.srvAddr})
	var te *sipnet.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, sipnet.ErrNoAnswer) || te.After != fast.F() {
		t.Fatalf("err = %v; want a TimeoutError after %s", err, fast.F())
	}
	if el := time.Since(start); el < fast.F() {
		t.Errorf("gave up after %s, before Timer F", el)
	}
	sent := p.net.Sent()
	// Doubling capped at T2: 0, T1, 3T1, 7T1, then every 4T1 up to 64T1:
	// 4 + 14 = 18 sends if timers were exact; late timers send fewer.
	if sent < 10 || sent > 18 {
		t.Errorf("%d sends within Timer F; want between 10 and 18 (RFC 3261 §17.1.2.2 schedule)", sent)
	}
	if p.acted.Load() != 1 {
		t.Errorf("server acted %d times on retransmissions", p.acted.Load())
	}
}

// A provisional response moves retransmissions to T2 at once.
func TestProvisionalSwitchesToT2(t *testing.T) {
	p := newPair(t)
	p.respond.Store(false)
	p.provisional.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*fast.T1)
	defer cancel()
	_, err := p.ue.Request(ctx, register(p.ueAddr, p.srvAddr, "udp"), sipnet.Route{Network: "udp", From: p.ueAddr, To: p.srvAddr})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// Without the 100: sends at 0, 1, 3, 7, 11, 15, 19 T1 = 7. With it:
	// 0, 1 (T1, before the 100 arrived), then every 4 T1: 5, 9, 13, 17 = 6
	// at most, and the server sent one 100 per request received.
	sentReq := p.net.Sent() / 2
	if sentReq > 6 {
		t.Errorf("%d requests in 20·T1 after a 100; want at most 6", sentReq)
	}
}

// Accept refuses a response that did not come the way the transaction
// requires; the transaction then times out instead of completing.
func TestAcceptRefusesResponse(t *testing.T) {
	p := newPair(t)
	r := sipnet.Route{Network: "udp", From: p.ueAddr, To: p.srvAddr,
		Accept: func(in *sipnet.Inbound) bool { return in.Remote.Port() == 9999 }}
	_, err := p.ue.Request(context.Background(), register(p.ueAddr, p.srvAddr, "udp"), r)
	if !errors.Is(err, sipnet.ErrNoAnswer) {
		t.Fatalf("err = %v; want no answer", err)
	}
	if p.ue.Stats().Unaccepted == 0 {
		t.Error("refused responses not counted")
	}
}

// Over TCP there are no retransmissions; a reset connection ends the
// transaction at once with a TransportError.
func TestTCPNoRetransmissionAndReset(t *testing.T) {
	p := newPair(t)
	p.respond.Store(false)
	done := make(chan error, 1)
	go func() {
		_, err := p.ue.Request(context.Background(), register(p.ueAddr, p.srvAddr, "tcp"), sipnet.Route{Network: "tcp", From: p.ueAddr, To: p.srvAddr})
		done <- err
	}()
	if !testenv.Poll(5*time.Second, func() bool { return p.acted.Load() == 1 }) {
		t.Fatal("not reached within 5s")
	}
	time.Sleep(5 * fast.T1)
	if p.acted.Load() != 1 {
		t.Fatalf("server acted %d times over TCP", p.acted.Load())
	}
	p.srv.CloseConns(func(*sipnet.Conn) bool { return true })
	var te *sipnet.TransportError
	if err := <-done; !errors.As(err, &te) {
		t.Fatalf("err = %v; want a TransportError", err)
	}
}

// The size rule (RFC 3261 §18.1.1): over MaxUDP the request goes over TCP
// with Via changed; with TCP refused, over UDP after all.
func TestMaxUDP(t *testing.T) {
	p := newPair(t)
	req := register(p.ueAddr, p.srvAddr, "udp")
	r := sipnet.Route{Network: "udp", From: p.ueAddr, To: p.srvAddr, MaxUDP: 100}
	in, err := p.ue.Request(context.Background(), req, r)
	if err != nil {
		t.Fatal(err)
	}
	if in.Network != "tcp" || req.Via().Transport != "TCP" {
		t.Errorf("answer over %s, Via %s; want TCP", in.Network, req.Via().Transport)
	}
	// Nothing listens on TCP at this address: UDP after all.
	other := netip.AddrPortFrom(coreIP, 5070)
	if _, err := p.srv.BindUDP(other); err != nil {
		t.Fatal(err)
	}
	req = register(p.ueAddr, other, "udp")
	r.To = other
	if in, err = p.ue.Request(context.Background(), req, r); err != nil {
		t.Fatal(err)
	}
	if in.Network != "udp" || req.Via().Transport != "UDP" {
		t.Errorf("answer over %s, Via %s; want UDP after the refused TCP", in.Network, req.Via().Transport)
	}
}

// Per-instance timers: two transports in one process keep their own.
func TestTimersPerTransport(t *testing.T) {
	a := sipnet.New(sipnet.Config{Timers: sipnet.UETimers})
	b := sipnet.New(sipnet.Config{Timers: fast})
	defer a.Close()
	defer b.Close()
	if a.Timers().F() != 128*time.Second || b.Timers().F() != 640*time.Millisecond {
		t.Errorf("Timer F: %s and %s; want 128s (TS 24.229 Table 7.7.1: T1 = 2 s) and 640ms", a.Timers().F(), b.Timers().F())
	}
	if d := (sipnet.Timers{}); sipnet.New(sipnet.Config{Timers: d}).Timers() != sipnet.RFC3261Timers {
		t.Error("zero timers do not default to RFC 3261's")
	}
}

// Close ends a running transaction with ErrClosed.
func TestCloseEndsTransactions(t *testing.T) {
	p := newPair(t)
	p.respond.Store(false)
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() {
		defer wg.Done()
		_, err = p.ue.Request(context.Background(), register(p.ueAddr, p.srvAddr, "udp"), sipnet.Route{Network: "udp", From: p.ueAddr, To: p.srvAddr})
	}()
	if !testenv.Poll(5*time.Second, func() bool { return p.acted.Load() == 1 }) {
		t.Fatal("not reached within 5s")
	}
	p.ue.Close()
	wg.Wait()
	if !errors.Is(err, sipnet.ErrClosed) {
		t.Fatalf("err = %v; want ErrClosed", err)
	}
}
