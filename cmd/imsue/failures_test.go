package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/internal/siptest"
)

func failArgs(profile string, pcscf netip.AddrPort, extra ...string) []string {
	return append([]string{"register", "--profile", profile, "--pcscf", pcscf.String(), "--local-port", "0",
		"--ipsec", "none", "--t1", "50ms", "--dereg-timeout", "300ms", "--json", "--no-instance", "--allow-unauthenticated"}, extra...)
}

// 503 with Retry-After while staying registered: no REGISTER until it
// passed, then success.
func TestRegisterRetryAfter503(t *testing.T) {
	peer := siptest.Scripted(t, func(n int, req *sip.Request) *sip.Response {
		if n == 1 {
			return siptest.Reply(req, 503, "Service Unavailable", "Retry-After", "1")
		}
		return siptest.Bind200(";expires=600")(n, req)
	})
	code, stdout, stderr := regRun(failArgs(regProfile(t), peer.Addr, "--hold", "100ms")...)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	if times := peer.Times(); len(times) < 2 || times[1].Sub(times[0]) < time.Second {
		t.Fatalf("REGISTERs at %v: want the second at least 1 s (Retry-After) after the first", times)
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
			return siptest.Reply(r, 503, "Service Unavailable", "Retry-After", "30", "Warning", `399 pcscf "overload"`)
		}, exitRejected, "rejected"},
		{"494", func(r *sip.Request) *sip.Response { return siptest.Reply(r, 494, "Security Agreement Required") }, exitSecAgree, "sec_agree_failure"},
		{"420 sec-agree", func(r *sip.Request) *sip.Response {
			return siptest.Reply(r, 420, "Bad Extension", "Unsupported", "sec-agree")
		}, exitSecAgree, "sec_agree_failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := siptest.Scripted(t, func(_ int, req *sip.Request) *sip.Response { return tc.res(req) })
			code, stdout, stderr := regRun(failArgs(regProfile(t), peer.Addr)...)
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
