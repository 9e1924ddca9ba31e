package imscore

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim/milenage"
	"github.com/imsue/imsue/mt"
)

// TestRegisterFlows runs complete registrations by hand over UDP and TCP,
// for each digest algorithm and qop, and checks the 401 and the 200 as a UE
// would.
func TestRegisterFlows(t *testing.T) {
	cases := []struct {
		name, transport, alg, qop string
	}{
		{"udp/akav1/auth", "UDP", "AKAv1-MD5", "auth"},
		{"tcp/akav1/auth", "TCP", "AKAv1-MD5", "auth"},
		{"udp/akav1/auth-int", "UDP", "AKAv1-MD5", "auth,auth-int"},
		{"udp/akav1/none", "UDP", "AKAv1-MD5", "none"},
		{"udp/akav2/auth", "UDP", "AKAv2-MD5", "auth"},
		{"tcp/akav2/auth-int", "TCP", "AKAv2-MD5", "auth-int"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, rec := startCore(t, Config{Algorithm: tc.alg, QOP: tc.qop})
			u := newUE(t, c, tc.transport)

			u.sendUnprotected(u.registerText(regMsg{expires: -1}))
			from401, resp := u.response(wait)
			if got, _ := u.challenge(resp); got != "ok" {
				t.Fatalf("AKA on the 401's nonce: %s", got)
			}
			// The nonce is RAND‖AUTN for the subscriber: the MAC verified above.
			if !strings.EqualFold(u.ch.Algorithm, tc.alg) {
				t.Errorf("algorithm %q, want %q", u.ch.Algorithm, tc.alg)
			}
			wantQOP := strings.Split(tc.qop, ",")
			if tc.qop == "none" {
				wantQOP = nil
			}
			if !slices.Equal(u.ch.QOP, wantQOP) {
				t.Errorf("qop %q, want %q", u.ch.QOP, wantQOP)
			}
			if u.ch.Realm != testDomain || !u.ch.HasOpaque {
				t.Errorf("realm %q opaque %v", u.ch.Realm, u.ch.HasOpaque)
			}
			if tc.transport == "UDP" && from401.from != c.Addr() {
				t.Errorf("401 came from %v, want the unprotected %v", from401.from, c.Addr())
			}
			m := u.chosen() // the Security-Server holds a mechanism we offered
			if m.PortS != c.PortPS() || m.PortC == 0 || m.PortC == m.PortS {
				t.Errorf("Security-Server ports: port-c %d port-s %d (core port_ps %d)", m.PortC, m.PortS, c.PortPS())
			}
			if got := c.Stats().SASetsInstalled; got != 1 {
				t.Errorf("SA sets installed before the 401 left: %d, want 1", got)
			}

			u.cseq++
			u.sendProtected(u.registerText(regMsg{expires: -1, auth: u.authorization("ok", nil), verify: strings.Join(u.secServer, ", ")}))
			from200, ok := u.response(wait)
			if ok.StatusCode != 200 {
				t.Fatalf("protected REGISTER: %s %v", ok.StartLine(), headerValues(ok, "Warning"))
			}
			if tc.transport == "UDP" && from200.from.Port() != m.PortC {
				t.Errorf("200 came from port %d, want port_pc %d", from200.from.Port(), m.PortC)
			}
			if tc.transport == "UDP" && from200.sock != u.us {
				t.Errorf("200 did not arrive at port_us")
			}
			pau := headerValues(ok, "P-Associated-URI")
			if len(pau) != 1 || !strings.Contains(pau[0], "<"+testIMPU+">") || !strings.Contains(pau[0], "<"+testIMPU2+">") {
				t.Errorf("P-Associated-URI %q", pau)
			}
			if sr := headerValues(ok, "Service-Route"); len(sr) != 1 || sr[0] != "<sip:orig@scscf."+testDomain+";lr>" {
				t.Errorf("Service-Route %q", sr)
			}
			if p := headerValues(ok, "Path"); len(p) != 1 || !strings.Contains(p[0], ":"+itoa(int(c.PortPS()))) {
				t.Errorf("Path %q", p)
			}
			ct := ok.Contact()
			if ct == nil || ct.Params.GetOr("expires", "") != "3600" || ct.Address.Port != int(u.portUS) {
				t.Errorf("Contact %v, want the UE's with expires=3600", ct)
			}
			if e := headerValues(ok, "Expires"); len(e) != 1 || e[0] != "3600" {
				t.Errorf("Expires %q", e)
			}

			regs := c.Registrations()
			if len(regs) != 1 || regs[0].State != "registered" || len(regs[0].Sets) != 1 || regs[0].Sets[0].State != "established" {
				t.Fatalf("Registrations %+v", regs)
			}
			s := regs[0].Sets[0]
			if s.SPIuc != u.spiUC || s.SPIus != u.spiUS || s.PortUC != u.portUC || s.PortUS != u.portUS || s.PortPC != m.PortC || s.SPIpc != m.SPIc || s.SPIps != m.SPIs {
				t.Errorf("SA set %+v does not match the agreement", s)
			}
			if len(rec.Live()) != 1 || rec.Live()[0] != s.ID {
				t.Errorf("backend live sets %v, want [%d]", rec.Live(), s.ID)
			}
			st := c.Stats()
			if st.RegistersUnprotected != 1 || st.RegistersProtected != 1 || st.Challenges != 1 || st.Vectors != 1 || st.Registered != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSAPlanMirrorsUE checks the installed set against the UE's own plan of
// the same agreement: the same four flows and SPIs, directions reversed.
func TestSAPlanMirrorsUE(t *testing.T) {
	rec := &ipsec.Recorder{}
	c, _ := startCore(t, Config{IPsec: rec})
	u := newUE(t, c, "UDP")
	u.register()
	regs := c.Registrations()
	if len(regs) != 1 || len(regs[0].Sets) != 1 {
		t.Fatalf("Registrations %+v", regs)
	}
	set := c.setByID(regs[0].Sets[0].ID)
	m := u.chosen()
	ue, err := mt.PlanUE(mt.Endpoints{UE: u.ip, PCSCF: c.Addr().Addr()},
		mt.Params{SPIc: u.spiUC, SPIs: u.spiUS, PortC: u.portUC, PortS: u.portUS}, m.Params(), m, u.ck, u.ik, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ue.SAs {
		a, b := ue.SAs[i], set.SAs[i]
		if a.Src != b.Src || a.Dst != b.Dst || a.SPI != b.SPI || a.Dir == b.Dir || a.Auth != b.Auth || a.Enc != b.Enc ||
			string(a.AuthKey) != string(b.AuthKey) || string(a.EncKey) != string(b.EncKey) {
			t.Errorf("SA #%d: UE %v, P-CSCF %v", i+1, &a, &b)
		}
	}
}

// setByID returns a copy of an installed SA set (for tests).
func (c *Core) setByID(id uint64) *ipsec.SASet {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if s := c.p.sets[id]; s != nil {
		return s.sa
	}
	return nil
}

// TestAuthFailures covers the 403 paths and what they leave behind.
func TestAuthFailures(t *testing.T) {
	t.Run("wrong response", func(t *testing.T) {
		c, rec := startCore(t, Config{})
		u := newUE(t, c, "UDP")
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		_, resp := u.response(wait)
		u.challenge(resp)
		u.cseq++
		u.sendProtected(u.registerText(regMsg{expires: -1, auth: u.authorization("wrong", nil), verify: strings.Join(u.secServer, ", ")}))
		_, resp = u.response(wait)
		if resp.StatusCode != 403 {
			t.Fatalf("wrong response: %s, want 403", resp.StartLine())
		}
		testenv.Eventually(t, wait, "temporary set removed after the 403", func() bool {
			return len(rec.Live()) == 0 && c.Stats().SASetsRemoved == 1
		})
		if regs := c.Registrations(); len(regs) != 0 {
			t.Errorf("failed registration left %+v", regs)
		}
		if st := c.Stats(); st.AuthFailures != 1 || st.SASetsRemoved != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("MAC failure", func(t *testing.T) {
		f := &Faults{}
		c, rec := startCore(t, Config{Faults: f})
		u := newUE(t, c, "UDP")
		f.BadMAC()
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		_, resp := u.response(wait)
		if got, _ := u.challenge(resp); got != "mac" {
			t.Fatalf("BadMAC: the UE's MAC check gave %q", got)
		}
		// TS 24.229 §5.1.1.5.3: empty response, no auts, new Security-Client, no SAs.
		u.cseq++
		u.newClientPort()
		u.sendUnprotected(u.registerText(regMsg{expires: -1, auth: u.authorization("mac", nil)}))
		_, resp = u.response(wait)
		if resp.StatusCode != 403 {
			t.Fatalf("MAC-failure REGISTER: %s, want 403", resp.StartLine())
		}
		testenv.Eventually(t, wait, "no SA set after a MAC failure", func() bool { return len(rec.Live()) == 0 })
		// The next challenge is a good one again.
		u.cseq++
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		_, resp = u.response(wait)
		if got, _ := u.challenge(resp); got != "ok" {
			t.Errorf("after the fault: %s", got)
		}
	})
	t.Run("unknown subscriber", func(t *testing.T) {
		c, _ := startCore(t, Config{})
		u := newUE(t, c, "UDP")
		u.sub.IMPI = "nobody@" + testDomain
		u.sub.IMPUs = []string{"sip:nobody@" + testDomain}
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		_, resp := u.response(wait)
		if resp.StatusCode != 403 || c.Stats().SASetsInstalled != 0 {
			t.Fatalf("unknown subscriber: %s, installs %d", resp.StartLine(), c.Stats().SASetsInstalled)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		c, _ := startCore(t, Config{})
		u := newUE(t, c, "UDP")
		u.sub.K[0] ^= 0xff
		u.mil = milenage.New(u.sub.K, u.sub.OPc)
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		_, resp := u.response(wait)
		if got, _ := u.challenge(resp); got != "mac" {
			t.Errorf("a wrong K must fail the MAC check, got %q", got)
		}
	})
	t.Run("correct response sent unprotected", func(t *testing.T) {
		c, rec := startCore(t, Config{})
		u := newUE(t, c, "UDP")
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		_, resp := u.response(wait)
		u.challenge(resp)
		u.cseq++
		u.sendUnprotected(u.registerText(regMsg{expires: -1, auth: u.authorization("ok", nil), verify: strings.Join(u.secServer, ", ")}))
		_, resp = u.response(wait)
		if resp.StatusCode != 401 {
			t.Fatalf("unprotected answer: %s, want a new 401 (integrity-protected=no)", resp.StartLine())
		}
		if c.Stats().SASetsInstalled != 2 || len(rec.Live()) != 1 {
			t.Errorf("installs %d live %v: the first temporary set must be replaced", c.Stats().SASetsInstalled, rec.Live())
		}
	})
}

// TestResync forces a synchronisation failure with StaleSQN and checks the
// AUTS path: a new 401 whose SQN the UE accepts, then registration. The
// auts parameter is base64 (RFC 3310 §3.4), sent padded and unpadded.
func TestResync(t *testing.T) {
	for _, kind := range []string{"sync", "sync-unpadded"} {
		t.Run(kind, func(t *testing.T) {
			f := &Faults{}
			c, rec := startCore(t, Config{Faults: f})
			u := newUE(t, c, "UDP")
			u.register()
			first := u.lastSQN

			// Re-register with a stale SQN: the UE refuses it with AUTS.
			f.StaleSQN()
			u.newClientPort()
			u.sendProtectedOld(u.registerText(regMsg{expires: -1, verify: u.verifyOld}))
			_, resp := u.response(wait)
			got, auts := u.challenge(resp)
			if got != "sync" {
				t.Fatalf("stale SQN: the UE says %q, want sync", got)
			}
			// TS 24.229 §5.1.1.5.3: over the existing SAs, with a fresh Security-Client.
			u.cseq++
			u.newClientPort()
			u.sendProtectedOld(u.registerText(regMsg{expires: -1, auth: u.authorization(kind, auts), verify: u.verifyOld}))
			_, resp = u.response(wait)
			if got, _ := u.challenge(resp); got != "ok" {
				t.Fatalf("after resync: %s", got)
			}
			if u.lastSQN>>indBits != first>>indBits+1 {
				t.Errorf("SQN after resync %#x, want SEQ %d", u.lastSQN, first>>indBits+1)
			}
			if st := c.Stats(); st.Resyncs != 1 || st.Vectors != 3 {
				t.Errorf("stats %+v", st)
			}
			u.cseq++
			u.sendProtected(u.registerText(regMsg{expires: -1, auth: u.authorization("ok", nil), verify: strings.Join(u.secServer, ", ")}))
			_, resp = u.response(wait)
			if resp.StatusCode != 200 {
				t.Fatalf("after resync: %s", resp.StartLine())
			}
			if n := len(rec.Live()); n != 2 { // new established + old until traffic
				t.Errorf("live sets %d, want new and old", n)
			}
		})
	}
}

// TestExpiresGranted: the granted expiry is min(requested, MaxExpires),
// shorter than MinExpires is 423 with Min-Expires.
func TestExpiresGranted(t *testing.T) {
	cases := []struct {
		name      string
		requested string // Contact expires parameter
		want      int    // granted, or 423
	}{
		{"short", "60", 60},
		{"capped", "600000", 300},
		{"huge", "99999999999999999999", 300},
		{"too brief", "5", 423},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := startCore(t, Config{MaxExpires: 300 * time.Second, MinExpires: 30 * time.Second})
			u := newUE(t, c, "UDP")
			text := strings.Replace(u.registerText(regMsg{expires: -1}), "expires=600000", "expires="+tc.requested, 1)
			u.sendUnprotected(text)
			_, resp := u.response(wait)
			if tc.want == 423 {
				if resp.StatusCode != 423 || headerValues(resp, "Min-Expires")[0] != "30" {
					t.Fatalf("%s %v, want 423 with Min-Expires: 30", resp.StartLine(), headerValues(resp, "Min-Expires"))
				}
				return
			}
			u.challenge(resp)
			u.cseq++
			text = strings.Replace(u.registerText(regMsg{expires: -1, auth: u.authorization("ok", nil), verify: strings.Join(u.secServer, ", ")}), "expires=600000", "expires="+tc.requested, 1)
			u.sendProtected(text)
			_, resp = u.response(wait)
			if resp.StatusCode != 200 {
				t.Fatalf("%s", resp.StartLine())
			}
			if got := resp.Contact().Params.GetOr("expires", ""); got != itoa(tc.want) {
				t.Errorf("granted %s, want %d", got, tc.want)
			}
			if left := time.Until(c.Registrations()[0].Expires); left > time.Duration(tc.want)*time.Second || left < time.Duration(tc.want-5)*time.Second {
				t.Errorf("registration expires in %v, want about %ds", left, tc.want)
			}
		})
	}
}

func TestParseDeltaSeconds(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {" 3600 ", 3600, true}, {"4294967295", maxDeltaSeconds, true},
		{"18446744073709551616", maxDeltaSeconds, true}, {"-1", 0, false}, {"1.5", 0, false}, {"", 0, false}, {"+5", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseDeltaSeconds(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseDeltaSeconds(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
