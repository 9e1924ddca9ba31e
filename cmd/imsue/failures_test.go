package main

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// scripted is a P-CSCF on loopback UDP that answers the n-th REGISTER with
// script(n, req) and remembers when each came.
type scripted struct {
	mu    sync.Mutex
	times []time.Time
}

func scriptedPCSCF(t *testing.T, script func(n int, req *sip.Request) *sip.Response) (netip.AddrPort, *scripted) {
	t.Helper()
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &scripted{}
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
			s.mu.Lock()
			s.times = append(s.times, time.Now())
			k := len(s.times)
			s.mu.Unlock()
			if res := script(k, req); res != nil {
				pc.WriteToUDPAddrPort([]byte(res.String()), from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), s
}

func reply(req *sip.Request, code int, reason string, headers ...string) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		res.AppendHeader(sip.NewHeader(headers[i], headers[i+1]))
	}
	return res
}

func failArgs(profile string, pcscf netip.AddrPort, extra ...string) []string {
	return append([]string{"register", "--profile", profile, "--pcscf", pcscf.String(), "--local-port", "0",
		"--ipsec", "none", "--t1", "50ms", "--dereg-timeout", "300ms", "--json", "--no-instance", "--allow-unauthenticated"}, extra...)
}

// 503 with Retry-After while staying registered: no REGISTER until it
// passed, then success.
func TestRegisterRetryAfter503(t *testing.T) {
	pcscf, s := scriptedPCSCF(t, func(n int, req *sip.Request) *sip.Response {
		if n == 1 {
			return reply(req, 503, "Service Unavailable", "Retry-After", "1")
		}
		return reply(req, 200, "OK", "Contact", req.GetHeader("Contact").Value()+";expires=600")
	})
	code, stdout, stderr := regRun(failArgs(regProfile(t), pcscf, "--hold", "100ms")...)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.times) < 2 || s.times[1].Sub(s.times[0]) < time.Second {
		t.Fatalf("REGISTERs at %v: want the second at least 1 s (Retry-After) after the first", s.times)
	}
}

// Without --hold/--until-signal a 503 is final: exit 4 with Retry-After
// and Warning in the JSON. A 494, and a 420 naming sec-agree, are
// security-agreement failures (exit 7).
func TestRegisterFailureResponses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		res     func(*sip.Request) *sip.Response
		code    int
		outcome string
	}{
		{"503", func(r *sip.Request) *sip.Response {
			return reply(r, 503, "Service Unavailable", "Retry-After", "30", "Warning", `399 pcscf "overload"`)
		}, exitRejected, "rejected"},
		{"494", func(r *sip.Request) *sip.Response { return reply(r, 494, "Security Agreement Required") }, exitSecAgree, "sec_agree_failure"},
		{"420 sec-agree", func(r *sip.Request) *sip.Response {
			return reply(r, 420, "Bad Extension", "Unsupported", "sec-agree")
		}, exitSecAgree, "sec_agree_failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pcscf, _ := scriptedPCSCF(t, func(_ int, req *sip.Request) *sip.Response { return tc.res(req) })
			code, stdout, stderr := regRun(failArgs(regProfile(t), pcscf)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			m := regJSON(t, stdout)
			if m["result"] != tc.outcome {
				t.Errorf("result %v, want %s", m["result"], tc.outcome)
			}
			if tc.name == "503" && (m["retry_after"] != 30.0 || m["warning"] != `399 pcscf "overload"` || m["status"] != 503.0) {
				t.Errorf("JSON %v: want status, retry_after and warning", m)
			}
		})
	}
}
