// Package siptest is a scripted SIP peer for tests: a UDP socket on
// loopback that answers each REGISTER as the test says (a hostile or
// broken P-CSCF, a redirecting one), and remembers when each came.
package siptest

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Peer is a scripted P-CSCF.
type Peer struct {
	Addr  netip.AddrPort
	mu    sync.Mutex
	times []time.Time
}

// Times returns when each REGISTER arrived, in order.
func (p *Peer) Times() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.times...)
}

// Scripted starts a peer on 127.0.0.1 that answers the n-th REGISTER
// (from 1) with answer(n, req); a nil answer stays silent. It stops when
// the test ends.
func Scripted(t testing.TB, answer func(n int, req *sip.Request) *sip.Response) *Peer {
	t.Helper()
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	p := &Peer{Addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg, err := sip.ParseMessage(buf[:n])
			req, ok := msg.(*sip.Request)
			if err != nil || !ok || req.Method != sip.REGISTER {
				continue
			}
			p.mu.Lock()
			p.times = append(p.times, time.Now())
			k := len(p.times)
			p.mu.Unlock()
			if res := answer(k, req); res != nil {
				pc.WriteToUDPAddrPort([]byte(res.String()), from)
			}
		}
	}()
	return p
}

// Reply builds a response to req with extra headers given as name, value
// pairs.
func Reply(req *sip.Request, code int, reason string, headers ...string) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		res.AppendHeader(sip.NewHeader(headers[i], headers[i+1]))
	}
	return res
}

// Bind200 answers with a 200 that binds the request's Contact with params
// appended (";expires=600"); params "-" gives a 200 without Contact.
func Bind200(params string) func(int, *sip.Request) *sip.Response {
	return func(_ int, req *sip.Request) *sip.Response {
		if params == "-" {
			return Reply(req, 200, "OK")
		}
		return Reply(req, 200, "OK", "Contact", req.GetHeader("Contact").Value()+params)
	}
}
