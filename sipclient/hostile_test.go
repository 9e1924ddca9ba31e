package sipclient

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/internal/siptest"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/sipnet"
)

// fakePCSCF answers every REGISTER with answer(req): a scripted, hostile
// P-CSCF (siptest.Scripted).
func fakePCSCF(t *testing.T, answer func(req *sip.Request) *sip.Response) netip.AddrPort {
	t.Helper()
	return siptest.Scripted(t, func(_ int, req *sip.Request) *sip.Response { return answer(req) }).Addr
}

// ok200 answers with a 200 whose Contact is the request's with params
// ("-": no Contact).
func ok200(params string) func(*sip.Request) *sip.Response {
	bind := siptest.Bind200(params)
	return func(req *sip.Request) *sip.Response { return bind(0, req) }
}

func hostileUE(t *testing.T, pcscf netip.AddrPort, allow bool) *Client {
	t.Helper()
	c, err := New(Config{Auth: softISIM(t, 1), PCSCF: pcscf, Timers: sipnet.Timers{T1: 10 * time.Millisecond}, DeregTimeout: 200 * time.Millisecond,
		AllowUnauthenticated: allow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A 200 to the initial, unchallenged REGISTER authenticated nothing and
// set up no SAs: without AllowUnauthenticated that is ErrUnauthenticated,
// never "registered".
func TestUnchallenged200(t *testing.T) {
	pcscf := fakePCSCF(t, ok200(";expires=600"))
	if _, err := hostileUE(t, pcscf, false).Register(testCtx(t)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Register: %v; want ErrUnauthenticated", err)
	}
	reg, err := hostileUE(t, pcscf, true).Register(testCtx(t))
	if err != nil || !reg.Unauthenticated || reg.Security != nil || reg.Expires != 600*time.Second {
		t.Fatalf("with AllowUnauthenticated: %+v, %v", reg, err)
	}
}

// A 200 that grants the UE's binding 0 s, or lists no binding of the UE
// (RFC 3261 §10.2.4), did not register it.
func TestNotBound(t *testing.T) {
	for _, tc := range []struct{ name, params string }{
		{"expires=0", ";expires=0"},
		{"no Contact", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pcscf := fakePCSCF(t, ok200(tc.params))
			_, err := hostileUE(t, pcscf, true).Register(testCtx(t))
			if !errors.Is(err, ErrNotBound) {
				t.Fatalf("Register: %v; want ErrNotBound", err)
			}
		})
	}
	// Another device's lone binding is not the UE's.
	pcscf := fakePCSCF(t, func(req *sip.Request) *sip.Response {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Contact", "<sip:other@192.0.2.99:5060>;expires=600"))
		return res
	})
	if _, err := hostileUE(t, pcscf, true).Register(testCtx(t)); !errors.Is(err, ErrNotBound) || !strings.Contains(err.Error(), "no Contact for") {
		t.Fatalf("Register: %v; want ErrNotBound", err)
	}
}

// rogueSink answers the UE's first protected REGISTER itself, at once, in
// clear, from a port of its own: what an attacker on the path can do when
// ealg is null and the branch is visible.
type rogueSink struct {
	t    *testing.T
	conn *net.UDPConn
	once sync.Once
}

func (r *rogueSink) WritePacket(p sipnet.Packet) error {
	if !p.Sent || !bytes.Contains(p.Data, []byte("Security-Verify:")) || !bytes.HasPrefix(p.Data, []byte("REGISTER ")) {
		return nil
	}
	msg, err := sip.ParseMessage(p.Data)
	if err != nil {
		return nil
	}
	r.once.Do(func() {
		req := msg.(*sip.Request)
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Contact", req.GetHeader("Contact").Value()+";expires=600"))
		res.AppendHeader(sip.NewHeader("P-Associated-URI", "<sip:rogue@attacker.example>"))
		via := req.Via()
		dst := netip.AddrPortFrom(p.Local.Addr(), uint16(via.Port))
		r.conn.WriteToUDPAddrPort([]byte(res.String()), dst)
	})
	return nil
}

// A response to a request sent over the SAs counts only when it came back
// over them: a clear 200 from another port is dropped, and the real one,
// over the SAs, completes the registration.
func TestResponseOnlyOverItsSet(t *testing.T) {
	faults := &imscore.Faults{}
	core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
	rogue, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	c, _, _ := ue(t, core, func(c *Config) {
		c.Capture = &rogueSink{t: t, conn: rogue}
		c.Algs, c.EAlgs = []ipsec.Auth{ipsec.AuthHMACSHA196}, []ipsec.Enc{ipsec.EncNull}
	})
	faults.DelayResponses(200 * time.Millisecond) // the real 200 comes after the rogue one
	reg, err := c.Register(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(reg.AssociatedURIs, "sip:rogue@attacker.example") || reg.Security == nil {
		t.Fatalf("the rogue 200 completed the protected REGISTER: %+v", reg)
	}
	if c.tp.Stats().Unaccepted == 0 {
		t.Error("the rogue 200 was not seen and refused")
	}
}

// Connections to port_us are bounded: 200 of them leave at most
// maxInbound open at the UE, the rest reset at once.
func TestInboundConnectionsBounded(t *testing.T) {
	c := hostileUE(t, netip.MustParseAddrPort("127.0.0.1:9"), true)
	us := netip.AddrPortFrom(c.local, c.portUS)
	var conns []net.Conn
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for range 200 {
		cn, err := net.Dial("tcp4", us.String())
		if errors.Is(err, syscall.ECONNRESET) {
			continue // refused before the dial even returned
		}
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	ok := testenv.Poll(5*time.Second, func() bool { return c.tp.Stats().RefusedConn >= 200-maxInbound })
	if !ok {
		t.Fatalf("refused %d of 200 connections; want at least %d", c.tp.Stats().RefusedConn, 200-maxInbound)
	}
	// What the UE refused, the peer sees closed.
	open := 0
	for _, cn := range conns {
		cn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := cn.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			open++
		}
	}
	if open > maxInbound {
		t.Errorf("%d connections still open at the UE; want at most %d", open, maxInbound)
	}
}

// A 302 (or 305) to the initial REGISTER is followed once, to the P-CSCF
// its Contact names; the registration, its refreshes and its
// de-registration then go there.
func TestRedirectFollowedOnce(t *testing.T) {
	second := fakePCSCF(t, ok200(";expires=600"))
	first := fakePCSCF(t, func(req *sip.Request) *sip.Response {
		res := sip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil)
		res.AppendHeader(sip.NewHeader("Contact", "<sip:"+second.String()+">"))
		return res
	})
	c := hostileUE(t, first, true)
	if _, err := c.Register(testCtx(t)); err != nil {
		t.Fatalf("Register through a 302: %v", err)
	}
	if c.s.pcscf != second {
		t.Errorf("registered at %v, want %v", c.s.pcscf, second)
	}
	// A second redirect is not followed: the REGISTER is then rejected.
	loop := fakePCSCF(t, func(req *sip.Request) *sip.Response {
		res := sip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil)
		res.AppendHeader(sip.NewHeader("Contact", "<sip:"+first.String()+">"))
		return res
	})
	var rej *RejectedError
	if _, err := hostileUE(t, loop, true).Register(testCtx(t)); !errors.As(err, &rej) || rej.Status != 302 {
		t.Errorf("two redirects: %v; want the second 302 as a rejection", err)
	}
}

// A new challenge on the protected REGISTER restarts authentication once
// (TS 24.229 §5.1.1.5.1): two AKA runs, the new temporary set replaces the
// first, one set live. A second new challenge ends the procedure as a
// rejection that names both challenges.
func TestRechallenge(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{{1, true}, {2, false}} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			faults := &imscore.Faults{}
			core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
			auth := &countingAuth{Authenticator: softISIM(t, 1)}
			c, rec, _ := ue(t, core, func(c *Config) { c.Auth = auth })
			faults.Rechallenge(tc.n)
			_, err := c.Register(testCtx(t))
			if tc.ok {
				if err != nil {
					t.Fatalf("Register: %v", err)
				}
				if auth.n.Load() != 2 || len(rec.Live()) != 1 || rec.Installs != 2 {
					t.Errorf("%d AKA runs, %d installs, live %v; want 2, 2, one set", auth.n.Load(), rec.Installs, rec.Live())
				}
				return
			}
			var rej *RejectedError
			if !errors.As(err, &rej) || !errors.Is(err, ErrRechallenged) || len(rej.Challenges) != 2 || rej.Challenges[0] == rej.Challenges[1] {
				t.Fatalf("Register: %v; want a rejection naming two challenges", err)
			}
			if len(rec.Live()) != 0 {
				t.Errorf("sets left: %v", rec.Live())
			}
		})
	}
}
