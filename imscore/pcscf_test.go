package imscore

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
)

const quiet = 300 * time.Millisecond // how long "no answer" is waited for

// TestRetransmittedRegister sends the initial REGISTER twice (same Call-ID
// and CSeq): one vector, one SA set, the same 401 twice.
func TestRetransmittedRegister(t *testing.T) {
	for _, tr := range []string{"UDP", "TCP"} {
		t.Run(tr, func(t *testing.T) {
			c, rec := startCore(t, Config{})
			u := newUE(t, c, tr)
			text := u.registerText(regMsg{expires: -1})
			u.sendUnprotected(text)
			_, first := u.response(wait)
			u.sendUnprotected(text)
			_, second := u.response(wait)
			if first.String() != second.String() {
				t.Errorf("the retransmission got a different answer:\n%s\n---\n%s", first, second)
			}
			if c.Stats().SASetsInstalled != 1 || len(rec.Live()) != 1 {
				t.Errorf("installs %d live %v, want one SA set", c.Stats().SASetsInstalled, rec.Live())
			}
			if st := c.Stats(); st.Vectors != 1 || st.Challenges != 1 || st.Retransmissions != 1 || st.RegistersUnprotected != 1 {
				t.Errorf("stats %+v", st)
			}
			// The registration completes with the one challenge.
			u.challenge(first)
			u.cseq++
			u.sendProtected(u.registerText(regMsg{expires: -1, auth: u.authorization("ok", nil), verify: strings.Join(u.secServer, ", ")}))
			if _, resp := u.response(wait); resp.StatusCode != 200 {
				t.Fatalf("%s", resp.StartLine())
			}
		})
	}
}

// TestDiscardUnprotected checks that only REGISTER passes the unprotected
// port, and that port_ps accepts nothing but the flows of live SA sets.
func TestDiscardUnprotected(t *testing.T) {
	c, _ := startCore(t, Config{})
	u := newUE(t, c, "UDP")
	u.sendUnprotected(u.subscribeText("sub-1", "", 1, 600))
	u.sendUnprotected(strings.Replace(u.subscribeText("opt-1", "", 1, 0), "SUBSCRIBE "+testIMPU, "OPTIONS sip:"+testDomain, 1))
	u.noResponse(quiet)
	if st := c.Stats(); st.Discarded != 2 {
		t.Errorf("discarded %d, want 2", st.Discarded)
	}

	u.register()
	// A protected request from a port that is not port_uc: discarded.
	stranger := u.listenUDP(0)
	u.sendFrom(stranger, u.subscribeText("sub-2", "", 1, 600))
	u.noResponse(quiet)
	// The same request from port_uc is served.
	u.sendProtected(u.subscribeText("sub-3", "", 1, 600))
	if _, resp := u.response(wait); resp.StatusCode != 200 {
		t.Errorf("SUBSCRIBE from port_uc: %s", resp.StartLine())
	}
	if st := c.Stats(); st.Discarded != 3 {
		t.Errorf("discarded %d, want 3", st.Discarded)
	}
}

// TestSecAgreeChecks covers the sec-agree rejections.
func TestSecAgreeChecks(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		initial regMsg // the first REGISTER; zero means the default
		code    int    // expected answer to the initial REGISTER (0: 401, then protected)
		prot    func(u *testUE) regMsg
		want    int // expected answer to the protected REGISTER
	}{
		{name: "no Security-Client, no sec-agree", initial: regMsg{client: "-", expires: -1, extraHdr: nil}, code: 421},
		{name: "malformed Security-Client", initial: regMsg{client: "ipsec-3gpp;alg=hmac-sha-1-96;spi-c=x", expires: -1}, code: 400},
		{name: "nothing acceptable", initial: regMsg{client: "ipsec-3gpp;alg=hmac-sha-256-128;ealg=null;spi-c=1000;spi-s=1001;port-c=1;port-s=2", expires: -1}, code: 494},
		{name: "configured list without the offered pair", cfg: Config{Mechanisms: []mt.Mechanism{{Alg: ipsec.AuthHMACMD596, EAlg: ipsec.EncDES3EDECBC}}}, code: 494},
		{name: "no Security-Verify", prot: func(u *testUE) regMsg {
			return regMsg{expires: -1, auth: u.authorization("ok", nil)}
		}, want: 494},
		{name: "Security-Verify differs", prot: func(u *testUE) regMsg {
			v := strings.Replace(strings.Join(u.secServer, ", "), "ealg=aes-cbc", "ealg=null", 1)
			return regMsg{expires: -1, auth: u.authorization("ok", nil), verify: v}
		}, want: 494},
		{name: "Security-Client changed", prot: func(u *testUE) regMsg {
			return regMsg{expires: -1, auth: u.authorization("ok", nil), verify: strings.Join(u.secServer, ", "),
				client: strings.Replace(u.securityClient(), "hmac-md5-96", "hmac-sha-1-96", 1)}
		}, want: 494},
		{name: "Security-Verify with other spacing is fine", prot: func(u *testUE) regMsg {
			v := strings.ReplaceAll(strings.Join(u.secServer, ", "), ";", " ; ")
			return regMsg{expires: -1, auth: u.authorization("ok", nil), verify: v}
		}, want: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, rec := startCore(t, tc.cfg)
			u := newUE(t, c, "UDP")
			m := tc.initial
			if tc.code == 0 || tc.cfg.Mechanisms != nil {
				m = regMsg{expires: -1}
			}
			text := u.registerText(m)
			if tc.code == 421 {
				text = strings.Replace(text, "Supported: path, sec-agree\r\nRequire: sec-agree\r\nProxy-Require: sec-agree\r\n", "Supported: path\r\n", 1)
			}
			u.sendUnprotected(text)
			_, resp := u.response(wait)
			if tc.code != 0 {
				if resp.StatusCode != tc.code {
					t.Fatalf("initial REGISTER: %s, want %d", resp.StartLine(), tc.code)
				}
				if tc.code == 494 && len(headerValues(resp, "Security-Server")) == 0 {
					t.Errorf("494 without Security-Server")
				}
				if c.Stats().SASetsInstalled != 0 {
					t.Errorf("SA set installed for a rejected REGISTER")
				}
				return
			}
			u.challenge(resp)
			u.cseq++
			u.sendProtected(u.registerText(tc.prot(u)))
			_, resp = u.response(wait)
			if resp.StatusCode != tc.want {
				t.Fatalf("protected REGISTER: %s %v, want %d", resp.StartLine(), headerValues(resp, "Warning"), tc.want)
			}
			if tc.want != 200 {
				testenv.Eventually(t, wait, "temporary set removed", func() bool { return len(rec.Live()) == 0 })
			}
		})
	}
}

// TestConfiguredMechanisms checks a configured Security-Server list with q
// values: all entries are announced, and the set installed is the one the
// UE chooses by q.
func TestConfiguredMechanisms(t *testing.T) {
	c, _ := startCore(t, Config{Mechanisms: []mt.Mechanism{
		{Alg: ipsec.AuthHMACMD596, EAlg: ipsec.EncNull, Q: 100, HasQ: true},
		{Alg: ipsec.AuthHMACSHA196, EAlg: ipsec.EncAESCBC, Q: 500, HasQ: true},
		{Alg: ipsec.AuthHMACSHA196, EAlg: ipsec.EncDES3EDECBC, Q: 900, HasQ: true},
	}})
	u := newUE(t, c, "UDP")
	u.register()
	if len(u.server) != 3 {
		t.Fatalf("Security-Server %q: want the 3 configured entries", u.secServer)
	}
	want := u.chosen()
	if want.Alg != ipsec.AuthHMACSHA196 || want.EAlg != ipsec.EncAESCBC {
		t.Fatalf("UE chose %v: the highest q among offered pairs is sha1/aes", want)
	}
	s := c.Registrations()[0].Sets[0]
	if s.Alg != want.Alg || s.EAlg != want.EAlg {
		t.Errorf("P-CSCF installed %s/%s, the UE chose %s/%s", s.Alg, s.EAlg, want.Alg, want.EAlg)
	}
}

// TestReregistration checks TS 33.203 §7.4: a new SA set (new port_pc,
// new SPIs, same port_ps), the old one kept until the new one carries
// traffic, then removed.
func TestReregistration(t *testing.T) {
	for _, tr := range []string{"UDP", "TCP"} {
		t.Run(tr, func(t *testing.T) {
			c, rec := startCore(t, Config{})
			u := newUE(t, c, tr)
			u.register()
			before := c.Registrations()[0].Sets[0]
			prev := u.ucOld
			u.register()
			regs := c.Registrations()
			if len(regs) != 1 || len(regs[0].Sets) != 2 {
				t.Fatalf("after re-registration: %+v", regs)
			}
			now, old := regs[0].Sets[0], regs[0].Sets[1]
			if now.State != "established" || old.State != "old" || old.ID != before.ID {
				t.Errorf("sets %+v", regs[0].Sets)
			}
			if now.PortPC == before.PortPC || now.PortPS != before.PortPS || now.SPIpc == before.SPIpc || now.SPIps == before.SPIps {
				t.Errorf("new set %+v vs old %+v: port_pc and SPIs must change, port_ps stay", now, before)
			}
			if regs[0].Event != "refreshed" {
				t.Errorf("event %q", regs[0].Event)
			}
			// Traffic on the new set drops the old one.
			u.sendProtected(u.subscribeText("sub-"+tr, "", 1, 600))
			if _, resp := u.response(wait); resp.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %s", resp.StartLine())
			}
			if _, req := u.request(wait); req.Method != "NOTIFY" {
				t.Fatalf("want NOTIFY, got %s", req.Method)
			}
			regs = c.Registrations()
			if len(regs[0].Sets) != 1 || regs[0].Sets[0].ID != now.ID {
				t.Errorf("old set not removed after traffic on the new one: %+v", regs[0].Sets)
			}
			if c.Stats().SASetsInstalled != 2 || c.Stats().SASetsRemoved != 1 || len(rec.Live()) != 1 {
				t.Errorf("backend installs %d removes %d live %v", c.Stats().SASetsInstalled, c.Stats().SASetsRemoved, rec.Live())
			}
			// Requests over the removed old set are now discarded (over TCP
			// the P-CSCF closed the connection from the old port_uc).
			if tr == "UDP" {
				u.sendFrom(prev, u.subscribeText("sub-old-"+tr, "", 1, 600))
				u.noResponse(quiet)
			}
		})
	}
}

// TestReregistrationPortRules rejects a re-registration that keeps port_uc
// or changes port_us (TS 33.203 §7.4).
func TestReregistrationPortRules(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(u *testUE)
	}{
		{"keeps port_uc", func(u *testUE) { u.spiUC, u.spiUS = randSPI(), randSPI() }},
		{"changes port_us", func(u *testUE) { u.newClientPort(); u.portUS++ }},
		{"reuses an SPI", func(u *testUE) { spi := u.spiUC; u.newClientPort(); u.spiUC = spi }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := startCore(t, Config{})
			u := newUE(t, c, "UDP")
			u.register()
			tc.mutate(u)
			text := u.registerText(regMsg{expires: -1, verify: u.verifyOld})
			u.sendProtectedOld(text)
			_, resp := u.response(wait)
			if resp.StatusCode != 400 {
				t.Errorf("%s: %s %v, want 400", tc.name, resp.StartLine(), headerValues(resp, "Warning"))
			}
		})
	}
}

// TestDeregistration: Expires 0 over the SAs needs no challenge; the 200
// goes over the SAs and then the sets go. Here the core trusts
// integrity-protected="yes" (TrustIntegrityProtected): the de-REGISTER's
// Authorization is not even looked at. TestDeregistrationStrict is the
// default.
func TestDeregistration(t *testing.T) {
	c, rec := startCore(t, Config{TrustIntegrityProtected: true})
	u := newUE(t, c, "UDP")
	u.register()
	port_pc := c.Registrations()[0].Sets[0].PortPC
	u.sendProtectedOld(u.registerText(regMsg{expires: 0, verify: u.verifyOld, client: "-"}))
	r, resp := u.response(wait)
	if resp.StatusCode != 200 {
		t.Fatalf("de-REGISTER: %s", resp.StartLine())
	}
	if r.from.Port() != port_pc {
		t.Errorf("de-registration 200 from port %d, want port_pc %d (protected)", r.from.Port(), port_pc)
	}
	if regs := c.Registrations(); len(regs) != 0 {
		t.Errorf("registrations left: %+v", regs)
	}
	testenv.Eventually(t, wait, "SA set removed after the de-registration's 200", func() bool {
		return len(rec.Live()) == 0 && c.Stats().SASetsRemoved == 1
	})
	if st := c.Stats(); st.Deregistered != 1 || st.Challenges != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestRestart: after a P-CSCF restart the UE's protected requests are
// discarded and a registration from scratch works.
func TestRestart(t *testing.T) {
	c, rec := startCore(t, Config{})
	u := newUE(t, c, "UDP")
	u.register()
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if len(rec.Live()) != 0 || len(c.Registrations()) != 0 {
		t.Fatalf("after Restart: live %v registrations %+v", rec.Live(), c.Registrations())
	}
	u.newClientPort()
	u.sendProtectedOld(u.registerText(regMsg{expires: -1, verify: u.verifyOld}))
	u.noResponse(quiet)
	u.ucOld = nil
	u.cseq++
	u.register()
	if st := c.Stats(); st.Restarts != 1 || st.Registered != 2 || st.Discarded != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestAuthTimeout: a challenge never answered drops its temporary set and
// pending binding after AuthTimeout.
func TestAuthTimeout(t *testing.T) {
	c, rec := startCore(t, Config{AuthTimeout: 150 * time.Millisecond})
	u := newUE(t, c, "UDP")
	u.sendUnprotected(u.registerText(regMsg{expires: -1}))
	u.response(wait)
	if len(c.Registrations()) != 1 || len(rec.Live()) != 1 {
		t.Fatalf("pending state missing")
	}
	testenv.Poll(wait, func() bool { return len(rec.Live()) == 0 })
	if len(rec.Live()) != 0 || len(c.Registrations()) != 0 {
		t.Errorf("after AuthTimeout: live %v registrations %+v", rec.Live(), c.Registrations())
	}
}

// TestInstallFailure: when the backend cannot install, the UE gets 500 and
// nothing is left.
func TestInstallFailure(t *testing.T) {
	rec := &ipsec.Recorder{FailNext: fmt.Errorf("no ESP: %w", ipsec.ErrUnsupported)}
	c, _ := startCore(t, Config{IPsec: rec})
	u := newUE(t, c, "UDP")
	u.sendUnprotected(u.registerText(regMsg{expires: -1}))
	_, resp := u.response(wait)
	if resp.StatusCode != 500 {
		t.Errorf("%s, want 500", resp.StartLine())
	}
	if len(c.Registrations()) != 0 {
		t.Errorf("registrations %+v", c.Registrations())
	}
}

// TestIPv6 registers over [::1] (UDP and TCP) and checks the SA set's
// endpoints, when the host has IPv6 loopback.
func TestIPv6(t *testing.T) {
	if c, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[::1]:0"))); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	for _, tr := range []string{"UDP", "TCP"} {
		t.Run(tr, func(t *testing.T) {
			c, _ := startCore(t, Config{Addr: netip.MustParseAddrPort("[::1]:0")})
			u := newUE(t, c, tr)
			u.register()
			s := c.Registrations()[0].Sets[0]
			if !s.UE.Is6() || s.PCSCF != netip.MustParseAddr("::1") {
				t.Errorf("SA set endpoints %v %v", s.UE, s.PCSCF)
			}
			set := c.setByID(s.ID)
			if set.SAs[0].Dst != netip.AddrPortFrom(netip.MustParseAddr("::1"), c.PortPS()) {
				t.Errorf("SA #1 %v", &set.SAs[0])
			}
			u.sendProtected(u.subscribeText("v6-"+tr, "", 1, 600))
			if _, resp := u.response(wait); resp.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %s", resp.StartLine())
			}
			expectNotify(t, u, "active")
		})
	}
}

// TestDeregistrationStrict: by default the S-CSCF verifies the
// de-REGISTER over the SAs too (as Kamailio's ims_auth): repeating the nc
// the registration used is a replay (403); answering the last nonce with
// the next nc is accepted without a challenge.
func TestDeregistrationStrict(t *testing.T) {
	c, _ := startCore(t, Config{})
	u := newUE(t, c, "UDP")
	u.register()
	u.nc-- // the nc of the protected REGISTER again
	u.sendProtectedOld(u.registerText(regMsg{expires: 0, auth: u.authorization("ok", nil), verify: u.verifyOld, client: "-"}))
	if _, resp := u.response(wait); resp.StatusCode != 403 {
		t.Fatalf("de-REGISTER repeating the registration's nc: %s, want 403", resp.StartLine())
	}
	u.cseq++
	u.sendProtectedOld(u.registerText(regMsg{expires: 0, auth: u.authorization("ok", nil), verify: u.verifyOld, client: "-"}))
	if _, resp := u.response(wait); resp.StatusCode != 200 {
		t.Fatalf("de-REGISTER with the next nc: %s, want 200", resp.StartLine())
	}
	if st := c.Stats(); st.Vectors != 1 || st.Challenges != 1 || st.Deregistered != 1 {
		t.Errorf("stats %+v: want one vector, one challenge, one de-registration", st)
	}
}
