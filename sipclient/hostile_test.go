package sipclient

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/sipnet"
)

// fakePCSCF answers every REGISTER on a loopback UDP socket with the
// response answer builds: a scripted, hostile P-CSCF.
func fakePCSCF(t *testing.T, answer func(req *sip.Request) *sip.Response) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg, err := sip.ParseMessage(buf[:n])
			if err != nil {
				continue
			}
			if req, ok := msg.(*sip.Request); ok && req.Method == sip.REGISTER {
				if res := answer(req); res != nil {
					pc.WriteToUDPAddrPort([]byte(res.String()), from)
				}
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// ok200 answers with a 200 whose Contact is the request's with params.
func ok200(params string) func(*sip.Request) *sip.Response {
	return func(req *sip.Request) *sip.Response {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if params != "-" {
			res.AppendHeader(sip.NewHeader("Contact", req.GetHeader("Contact").Value()+params))
		}
		return res
	}
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
