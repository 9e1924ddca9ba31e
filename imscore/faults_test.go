package imscore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/digest"
	"github.com/imsue/imsue/mt"
)

// TestFaults checks each fault as a UE sees it.
func TestFaults(t *testing.T) {
	t.Run("DropRequests", func(t *testing.T) {
		f := &Faults{}
		c, _ := startCore(t, Config{Faults: f})
		u := newUE(t, c, "UDP")
		f.DropRequests("register", 1)
		text := u.registerText(regMsg{expires: -1})
		u.sendUnprotected(text)
		u.noResponse(quiet)
		u.sendUnprotected(text) // the UE's retransmission gets through
		if _, resp := u.response(wait); resp.StatusCode != 401 {
			t.Errorf("%s", resp.StartLine())
		}
		if st := c.Stats(); st.FaultDrops != 1 || st.RegistersUnprotected != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("DelayResponses", func(t *testing.T) {
		f := &Faults{}
		c, _ := startCore(t, Config{Faults: f})
		u := newUE(t, c, "UDP")
		f.DelayResponses(400 * time.Millisecond)
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		u.noResponse(200 * time.Millisecond)
		if _, resp := u.response(wait); resp.StatusCode != 401 {
			t.Errorf("%s", resp.StartLine())
		}
	})
	t.Run("Silent", func(t *testing.T) {
		f := &Faults{}
		c, _ := startCore(t, Config{Faults: f})
		u := newUE(t, c, "UDP")
		f.Silent(true)
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		u.noResponse(quiet)
		f.Silent(false)
		u.cseq++
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		if _, resp := u.response(wait); resp.StatusCode != 401 {
			t.Errorf("after Silent(false): %s", resp.StartLine())
		}
	})
	t.Run("Reject", func(t *testing.T) {
		f := &Faults{}
		c, _ := startCore(t, Config{Faults: f})
		u := newUE(t, c, "UDP")
		f.Reject(503)
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		if _, resp := u.response(wait); resp.StatusCode != 503 {
			t.Errorf("%s, want 503", resp.StartLine())
		}
		u.cseq++
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		if _, resp := u.response(wait); resp.StatusCode != 401 {
			t.Errorf("one-shot Reject applied twice: %s", resp.StartLine())
		}
	})
	t.Run("RetransmitChallenge", func(t *testing.T) {
		f := &Faults{}
		c, rec := startCore(t, Config{Faults: f})
		u := newUE(t, c, "UDP")
		f.RetransmitChallenge()
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
		_, a := u.response(wait)
		_, b := u.response(wait)
		if a.String() != b.String() || a.StatusCode != 401 {
			t.Errorf("two different answers:\n%s\n%s", a, b)
		}
		if len(rec.Live()) != 1 || c.Stats().Vectors != 1 {
			t.Errorf("live %v vectors %d", rec.Live(), c.Stats().Vectors)
		}
	})
	headerFaults := []struct {
		name  string
		arm   func(*Faults)
		check func(t *testing.T, u *testUE, www, secServer []string)
	}{
		{"OmitSecurityServer", (*Faults).OmitSecurityServer, func(t *testing.T, _ *testUE, _, ss []string) {
			if len(ss) != 0 {
				t.Errorf("Security-Server %q", ss)
			}
		}},
		{"MalformedSecurityServer", (*Faults).MalformedSecurityServer, func(t *testing.T, _ *testUE, _, ss []string) {
			if _, err := mt.ParseSecurity(ss...); err == nil || len(ss) == 0 {
				t.Errorf("Security-Server %q parses", ss)
			}
		}},
		{"SecurityServer", func(f *Faults) {
			f.SecurityServer("ipsec-3gpp;alg=hmac-md5-96;ealg=des-ede3-cbc;spi-c=1000;spi-s=1001;port-c=5000;port-s=5001")
		}, func(t *testing.T, u *testUE, _, ss []string) {
			server, err := mt.ParseSecurity(ss...)
			if err != nil {
				t.Fatal(err)
			}
			offer, _ := mt.ParseSecurity(u.securityClient())
			if _, err := mt.Choose(offer, server); err == nil {
				t.Errorf("the injected Security-Server %q should hold nothing offered", ss)
			}
		}},
		{"MalformedWWWAuthenticate", (*Faults).MalformedWWWAuthenticate, func(t *testing.T, _ *testUE, www, _ []string) {
			if _, err := digest.ParseChallenge(www[0]); err == nil {
				t.Errorf("WWW-Authenticate %q parses", www[0])
			}
		}},
	}
	for _, hf := range headerFaults {
		t.Run(hf.name, func(t *testing.T) {
			f := &Faults{}
			c, _ := startCore(t, Config{Faults: f})
			u := newUE(t, c, "UDP")
			hf.arm(f)
			u.sendUnprotected(u.registerText(regMsg{expires: -1}))
			_, resp := u.response(wait)
			if resp.StatusCode != 401 {
				t.Fatalf("%s", resp.StartLine())
			}
			hf.check(t, u, headerValues(resp, "WWW-Authenticate"), headerValues(resp, "Security-Server"))
			// One-shot: the next 401 is clean.
			u.cseq++
			u.sendUnprotected(u.registerText(regMsg{expires: -1}))
			_, resp = u.response(wait)
			if got, _ := u.challenge(resp); got != "ok" || len(u.server) != 1 {
				t.Errorf("next 401 not clean: %s %q", got, u.secServer)
			}
		})
	}
}

// TestMD5 registers with plain digest: no sec-agree, no SAs, and the
// registered flow may then SUBSCRIBE on the unprotected port.
func TestMD5(t *testing.T) {
	c, rec := startCore(t, Config{Algorithm: "MD5"})
	if c.PortPS() != 0 {
		t.Errorf("MD5 core listens on port_ps %d", c.PortPS())
	}
	u := newUE(t, c, "UDP")
	text := func(auth string) string { return u.registerText(regMsg{expires: -1, auth: auth, client: "-"}) }
	u.sendUnprotected(text(""))
	_, resp := u.response(wait)
	u.challenge(resp)
	if len(u.secServer) != 0 || !strings.EqualFold(u.ch.Algorithm, "MD5") {
		t.Fatalf("MD5 401: algorithm %q Security-Server %q", u.ch.Algorithm, u.secServer)
	}
	u.cseq++
	u.sendUnprotected(text(u.authorization("wrong", nil)))
	if _, resp := u.response(wait); resp.StatusCode != 403 {
		t.Fatalf("wrong password: %s", resp.StartLine())
	}
	u.cseq++
	u.sendUnprotected(text(""))
	_, resp = u.response(wait)
	u.challenge(resp)
	u.cseq++
	u.sendUnprotected(text(u.authorization("ok", nil)))
	if _, resp := u.response(wait); resp.StatusCode != 200 {
		t.Fatalf("MD5 registration: %s", resp.StartLine())
	}
	if c.Stats().SASetsInstalled != 0 || len(rec.Live()) != 0 {
		t.Errorf("SAs installed for MD5")
	}
	// SUBSCRIBE from the registered flow (the unprotected socket).
	u.sendUnprotected(u.subscribeText("md5-sub", "", 1, 600))
	if _, resp := u.response(wait); resp.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %s", resp.StartLine())
	}
	r, req := u.request(wait)
	if req.Method != "NOTIFY" || r.from != c.Addr() {
		t.Errorf("NOTIFY %s from %v", req.Method, r.from)
	}
	// From another port: discarded.
	other := u.listenUDP(0)
	if _, err := other.WriteToUDPAddrPort([]byte(u.subscribeText("md5-sub2", "", 1, 600)), c.Addr()); err != nil {
		t.Fatal(err)
	}
	u.noResponse(quiet)
}

// TestCKIKInChallenge: as a bare S-CSCF the 401 carries ck/ik for the
// P-CSCF in front, there is no Security-Server and no SA.
func TestCKIKInChallenge(t *testing.T) {
	c, _ := startCore(t, Config{CKIKInChallenge: true, QOP: "auth,auth-int"})
	u := newUE(t, c, "UDP")
	u.sendUnprotected(u.registerText(regMsg{expires: -1}))
	_, resp := u.response(wait)
	www := headerValues(resp, "WWW-Authenticate")
	ch, err := digest.ParseChallenge(www[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.CK) != 32 || len(ch.IK) != 32 || len(headerValues(resp, "Security-Server")) != 0 {
		t.Fatalf("WWW-Authenticate %q Security-Server %q", www, headerValues(resp, "Security-Server"))
	}
	if strings.HasPrefix(www[0], "Digest ck=") {
		t.Errorf("ck must not be the first parameter (Kamailio): %q", www[0])
	}
	// The P-CSCF in front strips ck/ik and forwards; the UE answers.
	ch.CK, ch.IK = "", ""
	if got, _ := u.aka(ch); got != "ok" {
		t.Fatalf("AKA: %s", got)
	}
	// The "P-CSCF" in front inserts its Path: here the test UE's port_us.
	path := fmt.Sprintf("Path: <sip:term@127.0.0.1:%d;lr>", u.portUS)
	u.cseq++
	u.sendUnprotected(u.registerText(regMsg{expires: -1, auth: u.authorization("ok", nil), extraHdr: []string{path}}))
	_, resp = u.response(wait)
	if resp.StatusCode != 200 {
		t.Fatalf("%s", resp.StartLine())
	}
	if p := headerValues(resp, "Path"); len(p) != 1 || "Path: "+p[0] != path {
		t.Errorf("Path echoed %q, want %q", p, path)
	}
	// reg event through the P-CSCF: the NOTIFY goes to the Path's first
	// hop with the Path as Route.
	u.sendUnprotected(u.subscribeText("ckik-sub", "", 1, 600))
	if _, resp := u.response(wait); resp.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %s", resp.StartLine())
	}
	r, req := u.request(wait)
	if req.Method != "NOTIFY" || r.sock != u.us {
		t.Fatalf("NOTIFY %s did not reach the Path hop", req.Method)
	}
	if rt := headerValues(req, "Route"); len(rt) != 1 || "Path: "+rt[0] != path {
		t.Errorf("NOTIFY Route %q", rt)
	}
}
