package sipclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/isimtest"
	"github.com/imsue/imsue/isim/milenage"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// countingAuth counts Authenticate calls of the Authenticator it wraps.
type countingAuth struct {
	isim.Authenticator
	n atomic.Int32
}

func (a *countingAuth) Authenticate(ctx context.Context, r isim.RAND, au isim.AUTN) (isim.Result, error) {
	a.n.Add(1)
	return a.Authenticator.Authenticate(ctx, r, au)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// coreSet returns the core's view of the UE's established SA set.
func coreSet(t *testing.T, core *imscore.Core) imscore.SASetInfo {
	t.Helper()
	for _, r := range core.Registrations() {
		if r.State == "registered" && len(r.Sets) > 0 {
			return r.Sets[0]
		}
	}
	t.Fatalf("core has no registered binding with an SA set: %+v", core.Registrations())
	return imscore.SASetInfo{}
}

// sentNetworks lists the networks ("UDP", "TCP") the trace shows messages on.
func sentNetworks(trace string) []string {
	var out []string
	for _, line := range strings.Split(trace, "\n") {
		if !strings.HasPrefix(line, "--- ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) > 3 && !slices.Contains(out, f[3]) {
			out = append(out, f[3])
		}
	}
	slices.Sort(out)
	return out
}

func TestInitialRegistration(t *testing.T) {
	oneMech := func(c *Config) {
		// One offer keeps every REGISTER under 1300 bytes: all UDP.
		c.Algs, c.EAlgs = []ipsec.Auth{ipsec.AuthHMACSHA196}, []ipsec.Enc{ipsec.EncAESCBC}
	}
	tests := []struct {
		name      string
		transport string
		algorithm string
		qop       string
		akav2     bool
		mod       func(*Config)
		networks  []string // what the trace must show
	}{
		{"UDP AKAv1 auth", "udp", "AKAv1-MD5", "auth", false, oneMech, []string{"UDP"}},
		{"TCP AKAv1 auth", "tcp", "AKAv1-MD5", "auth", false, nil, []string{"TCP"}},
		{"UDP AKAv1 auth-int", "udp", "AKAv1-MD5", "auth-int", false, oneMech, []string{"UDP"}},
		{"UDP AKAv1 auth,auth-int", "udp", "AKAv1-MD5", "auth,auth-int", false, oneMech, []string{"UDP"}},
		{"UDP AKAv1 no qop", "udp", "AKAv1-MD5", "none", false, oneMech, []string{"UDP"}},
		{"UDP AKAv2 auth", "udp", "AKAv2-MD5", "auth", true, oneMech, []string{"UDP"}},
		{"TCP AKAv2 auth-int", "tcp", "AKAv2-MD5", "auth-int", true, nil, []string{"TCP"}},
		{"UDP AKAv2 answered without --akav2", "udp", "AKAv2-MD5", "auth", false, oneMech, []string{"UDP"}},
		// Four offers: the protected REGISTER exceeds 1300 bytes and goes
		// over TCP (RFC 3261 §18.1.1); the initial one fits in UDP.
		{"UDP default offers, large REGISTER over TCP", "udp", "AKAv1-MD5", "auth", false, nil, []string{"TCP", "UDP"}},
		{"UDP large REGISTER, no size limit", "udp", "AKAv1-MD5", "auth", false, func(c *Config) { c.MaxUDPSize = -1 }, []string{"UDP"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core := startCore(t, func(c *imscore.Config) { c.Algorithm, c.QOP = tt.algorithm, tt.qop })
			auth := &countingAuth{Authenticator: softISIM(t, 1)}
			c, rec, trace := ue(t, core, func(c *Config) {
				c.Auth, c.Transport, c.AKAv2 = auth, tt.transport, tt.akav2
				if tt.mod != nil {
					tt.mod(c)
				}
			})
			ctx := testCtx(t)
			reg, err := c.Register(ctx)
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			id := labIdentity(1)
			if reg.IMPI != id.IMPI || reg.IMPU != id.IMPUs[0] {
				t.Errorf("IMPI/IMPU = %s / %s, want %s / %s", reg.IMPI, reg.IMPU, id.IMPI, id.IMPUs[0])
			}
			if want := labSubscriber(1).IMPUs; !slices.Equal(reg.AssociatedURIs, want) {
				t.Errorf("associated URIs %q, want %q", reg.AssociatedURIs, want)
			}
			if len(reg.ServiceRoute) != 1 || !strings.Contains(reg.ServiceRoute[0], "scscf."+labDomain) {
				t.Errorf("service route %q", reg.ServiceRoute)
			}
			if reg.Expires != imscore.DefaultMaxExpires {
				t.Errorf("expires %s, want the core's cap %s", reg.Expires, imscore.DefaultMaxExpires)
			}
			if n := auth.n.Load(); n != 1 {
				t.Errorf("AKA runs %d, want 1", n)
			}
			// Both sides agree on the SA set.
			s, cs := reg.Security, coreSet(t, core)
			if s == nil {
				t.Fatal("no security in the registration")
			}
			got := [8]uint32{s.SPIuc, s.SPIus, s.SPIpc, s.SPIps, uint32(s.PortUC), uint32(s.PortUS), uint32(s.PortPC), uint32(s.PortPS)}
			want := [8]uint32{cs.SPIuc, cs.SPIus, cs.SPIpc, cs.SPIps, uint32(cs.PortUC), uint32(cs.PortUS), uint32(cs.PortPC), uint32(cs.PortPS)}
			if got != want || s.Alg != cs.Alg || s.EAlg != cs.EAlg {
				t.Errorf("UE set %+v, core set %+v", *s, cs)
			}
			if s.PortUS != c.ServerPort() {
				t.Errorf("port_us %d, the Client's is %d", s.PortUS, c.ServerPort())
			}
			if live := rec.Live(); len(live) != 1 || live[0] != s.SetID {
				t.Errorf("backend live sets %v, want [%d]", live, s.SetID)
			}
			if got := sentNetworks(trace.String()); !slices.Equal(got, tt.networks) {
				t.Errorf("messages went over %v, want %v", got, tt.networks)
			}
			ok, err := c.Deregister(ctx)
			if !ok || err != nil {
				t.Fatalf("Deregister = %v, %v", ok, err)
			}
			if live := rec.Live(); len(live) != 0 {
				t.Errorf("sets left after de-registration: %v", live)
			}
			if st := core.Stats(); st.Registered != 1 || st.Deregistered != 1 || st.Challenges != 1 {
				t.Errorf("core stats %+v", st)
			}
		})
	}
}

func TestRegisterPlainMD5(t *testing.T) {
	core := startCore(t, func(c *imscore.Config) { c.Algorithm = "MD5" })
	c, rec, _ := ue(t, core, func(c *Config) { c.Password = labSubscriber(1).Password })
	ctx := testCtx(t)
	reg, err := c.Register(ctx)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if reg.Security != nil || rec.Installs != 0 {
		t.Errorf("MD5 registration has SAs: %+v, %d installs", reg.Security, rec.Installs)
	}
	if ok, err := c.Deregister(ctx); !ok || err != nil {
		t.Fatalf("Deregister = %v, %v", ok, err)
	}

	// Without a password the UE cannot answer.
	c2, _, _ := ue(t, core, nil)
	if _, err := c2.Register(ctx); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("Register without password: %v, want ErrNoPassword", err)
	}
}

func TestAKAv2RefusesDowngrade(t *testing.T) {
	core := startCore(t, nil) // AKAv1-MD5
	auth := &countingAuth{Authenticator: softISIM(t, 1)}
	c, rec, trace := ue(t, core, func(c *Config) { c.AKAv2, c.Auth = true, auth })
	_, err := c.Register(testCtx(t))
	if !errors.Is(err, ErrAlgorithmDowngrade) {
		t.Fatalf("Register: %v, want ErrAlgorithmDowngrade", err)
	}
	if auth.n.Load() != 0 || rec.Installs != 0 {
		t.Errorf("AKA runs %d, installs %d: want none", auth.n.Load(), rec.Installs)
	}
	if !strings.Contains(trace.String(), "algorithm=AKAv2-MD5") {
		t.Error("the initial Authorization does not announce AKAv2-MD5")
	}
}

func TestSyncFailureThenSuccess(t *testing.T) {
	core := startCore(t, nil)
	// The ISIM has accepted SEQs far above what the HSS issues: the first
	// challenge is stale to it.
	var st isim.SQNState
	for i := range st.SEQ {
		st.SEQ[i] = 1000
	}
	soft, err := isim.NewSoftware(isim.Config{Identity: labIdentity(1), K: isim.Key(labK), OPc: isim.Key(labOPc), Store: isim.NewMemoryStore(st)})
	if err != nil {
		t.Fatal(err)
	}
	auth := &countingAuth{Authenticator: soft}
	c, rec, trace := ue(t, core, func(c *Config) { c.Auth = auth })
	reg, err := c.Register(testCtx(t))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if n := auth.n.Load(); n != 2 {
		t.Errorf("AKA runs %d, want 2 (sync failure, then success)", n)
	}
	if s := core.Stats(); s.Resyncs != 1 || s.Challenges != 2 {
		t.Errorf("core: %d resyncs, %d challenges; want 1, 2", s.Resyncs, s.Challenges)
	}
	if rec.Installs != 1 {
		t.Errorf("%d SA sets installed, want 1 (none for the sync failure)", rec.Installs)
	}
	tr := trace.String()
	if !strings.Contains(tr, `auts="`) {
		t.Error("no REGISTER with auts in the trace")
	}
	// The AUTS REGISTER carries a new Security-Client: new SPIs.
	if n := countDistinct(tr, "spi-c="); n < 2 {
		t.Errorf("%d distinct Security-Client spi-c values, want a new one after the sync failure", n)
	}
	if reg.Security == nil {
		t.Fatal("no SA set")
	}
}

// countDistinct counts the distinct values following key in text.
func countDistinct(text, key string) int {
	seen := map[string]bool{}
	for _, part := range strings.Split(text, key)[1:] {
		end := strings.IndexAny(part, ";,\r\n ")
		if end < 0 {
			end = len(part)
		}
		seen[part[:end]] = true
	}
	return len(seen)
}

func TestResyncDoesNotConverge(t *testing.T) {
	core := startCore(t, nil)
	// An ISIM that refuses every SQN: its AUTS is valid (SQN_MS far ahead),
	// the HSS resynchronises, and the next challenge is refused again.
	mil := milenage.New(labK, labOPc)
	auth := isimtest.New(labIdentity(1))
	auth.Respond = func(r isim.RAND, _ isim.AUTN) (isim.Result, error) {
		return isim.Result{}, &isim.SyncFailure{AUTS: mil.AUTS(r, [6]byte{0, 0, 0, 1, 0, 0})}
	}
	c, rec, _ := ue(t, core, func(c *Config) { c.Auth = auth })
	_, err := c.Register(testCtx(t))
	if !errors.Is(err, ErrResyncFailed) {
		t.Fatalf("Register: %v, want ErrResyncFailed", err)
	}
	if len(auth.Calls()) != 2 || rec.Installs != 0 {
		t.Errorf("%d AKA calls, %d installs; want 2, 0", len(auth.Calls()), rec.Installs)
	}
}

func TestMACFailure(t *testing.T) {
	faults := &imscore.Faults{}
	core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
	faults.BadMAC()
	auth := &countingAuth{Authenticator: softISIM(t, 1)}
	c, rec, trace := ue(t, core, func(c *Config) { c.Auth = auth })
	_, err := c.Register(testCtx(t))
	if !errors.Is(err, isim.ErrMACFailure) {
		t.Fatalf("Register: %v, want ErrMACFailure", err)
	}
	if auth.n.Load() != 1 || rec.Installs != 0 {
		t.Errorf("%d AKA runs, %d SA sets; want 1, 0", auth.n.Load(), rec.Installs)
	}
	// Exactly two REGISTERs: the initial one and the MAC-failure one with
	// an empty response and no auts; no second attempt.
	if s := core.Stats(); s.RegistersUnprotected != 2 || s.Challenges != 1 {
		t.Errorf("core stats %+v, want 2 REGISTERs and 1 challenge", s)
	}
	// (Over UDP or, above 1300 bytes, TCP: RFC 3261 §18.1.1.)
	sent := strings.Count(trace.String(), " sent UDP ") + strings.Count(trace.String(), " sent TCP ")
	if sent != 2 {
		t.Errorf("%d messages sent, want 2", sent)
	}
	last := trace.String()[strings.LastIndex(trace.String(), "REGISTER sip:"):]
	if !strings.Contains(last, `response=""`) || strings.Contains(last, "auts=") {
		t.Errorf("MAC-failure REGISTER:\n%s", last)
	}
}

func TestRejected(t *testing.T) {
	t.Run("wrong response (UE key differs) gets 403", func(t *testing.T) {
		core := startCore(t, nil)
		// An ISIM that accepts the challenge but derives different RES/CK/IK,
		// as one with another K would if the MAC check passed.
		auth := isimtest.New(labIdentity(1)).Succeed(isim.Result{RES: []byte("wrongres"), CK: [16]byte{1}, IK: [16]byte{2}})
		c, rec, _ := ue(t, core, func(c *Config) { c.Auth = auth })
		_, err := c.Register(testCtx(t))
		var rej *RejectedError
		if !errors.As(err, &rej) || rej.Status != 403 {
			t.Fatalf("Register: %v, want 403", err)
		}
		if rec.Installs != 1 || len(rec.Live()) != 0 {
			t.Errorf("%d installs, live %v: the temporary set must be removed", rec.Installs, rec.Live())
		}
	})
	for _, code := range []int{403, 404, 500, 503, 604} {
		t.Run("initial REGISTER answered "+strconv.Itoa(code), func(t *testing.T) {
			faults := &imscore.Faults{}
			core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
			faults.Reject(code)
			c, _, _ := ue(t, core, nil)
			_, err := c.Register(testCtx(t))
			var rej *RejectedError
			if !errors.As(err, &rej) || rej.Status != code {
				t.Fatalf("Register: %v, want %d", err, code)
			}
		})
	}
}

func TestNoAnswerWithinTimerF(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			faults := &imscore.Faults{}
			core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
			faults.Silent(true)
			c, rec, trace := ue(t, core, func(c *Config) { c.Transport = transport })
			start := time.Now()
			_, err := c.Register(testCtx(t))
			elapsed := time.Since(start)
			var te *TimeoutError
			if !errors.As(err, &te) || !errors.Is(err, ErrNoAnswer) {
				t.Fatalf("Register: %v, want a TimeoutError", err)
			}
			// Not before Timer F, and not long after it (the bound is loose:
			// this checks that nothing waits for a second Timer F).
			if f := 64 * 10 * time.Millisecond; te.After != f || elapsed < f || elapsed > 2*f+time.Second {
				t.Errorf("gave up after %s (reported %s), Timer F is %s", elapsed, te.After, f)
			}
			if rec.Installs != 0 {
				t.Errorf("%d SA sets installed", rec.Installs)
			}
			if n := strings.Count(trace.String(), "sent "+strings.ToUpper(transport)); transport == "udp" && n < 5 {
				t.Errorf("%d UDP transmissions, want retransmissions (T1 doubling)", n)
			} else if transport == "tcp" && n != 1 {
				t.Errorf("%d TCP transmissions, want 1 (no retransmission over TCP)", n)
			}
		})
	}
	t.Run("nobody listening", func(t *testing.T) {
		core := startCore(t, nil)
		addr := core.Addr()
		core.Close()
		c, _, _ := ue(t, core, func(c *Config) { c.PCSCF, c.Transport = addr, "tcp" })
		_, err := c.Register(testCtx(t))
		var tr *TransportError
		if !errors.As(err, &tr) || !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("Register to a closed port over TCP: %v, want a TransportError", err)
		}
	})
}

func TestSecAgreeFailures(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*imscore.Faults)
		want  error
	}{
		{"Security-Server with nothing offered", func(f *imscore.Faults) {
			f.SecurityServer("ipsec-3gpp;alg=hmac-md5-96;ealg=des-ede3-cbc;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200")
		}, mt.ErrNoAcceptableMechanism},
		{"no Security-Server", (*imscore.Faults).OmitSecurityServer, ErrNoSecurityServer},
		{"malformed Security-Server", (*imscore.Faults).MalformedSecurityServer, mt.ErrBadSecurityHeader},
		{"Kamailio in a bad state: port-s=0", func(f *imscore.Faults) {
			f.SecurityServer("ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=0;alg=hmac-sha-1-96;ealg=aes-cbc")
		}, mt.ErrBadSecurityHeader},
		// A hostile P-CSCF's values that only planning the SAs would catch:
		// refused before AKA, so no SQN is spent on them.
		{"reserved spi-c", func(f *imscore.Faults) {
			f.SecurityServer("ipsec-3gpp;prot=esp;mod=trans;spi-c=100;spi-s=4097;port-c=7100;port-s=7200;alg=hmac-sha-1-96;ealg=aes-cbc")
		}, mt.ErrBadSecurityHeader},
		{"spi-c = spi-s", func(f *imscore.Faults) {
			f.SecurityServer("ipsec-3gpp;prot=esp;mod=trans;spi-c=4097;spi-s=4097;port-c=7100;port-s=7200;alg=hmac-sha-1-96;ealg=aes-cbc")
		}, mt.ErrBadSecurityHeader},
		{"port-c = port-s", func(f *imscore.Faults) {
			f.SecurityServer("ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7200;port-s=7200;alg=hmac-sha-1-96;ealg=aes-cbc")
		}, mt.ErrBadSecurityHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := &imscore.Faults{}
			core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
			tt.fault(faults)
			auth := &countingAuth{Authenticator: softISIM(t, 1)}
			c, rec, _ := ue(t, core, func(c *Config) {
				c.Auth, c.Algs, c.EAlgs = auth, []ipsec.Auth{ipsec.AuthHMACSHA196}, []ipsec.Enc{ipsec.EncAESCBC, ipsec.EncNull}
			})
			_, err := c.Register(testCtx(t))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Register: %v, want %v", err, tt.want)
			}
			if auth.n.Load() != 0 || rec.Installs != 0 {
				t.Errorf("%d AKA runs, %d installs: sec-agree must fail before both", auth.n.Load(), rec.Installs)
			}
		})
	}
}

func TestMalformedChallenge(t *testing.T) {
	faults := &imscore.Faults{}
	core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
	faults.MalformedWWWAuthenticate()
	c, _, _ := ue(t, core, nil)
	if _, err := c.Register(testCtx(t)); !errors.Is(err, ErrBadChallenge) {
		t.Fatalf("Register: %v, want ErrBadChallenge", err)
	}
}

func TestRetransmitted401(t *testing.T) {
	faults := &imscore.Faults{}
	core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
	faults.RetransmitChallenge()
	auth := &countingAuth{Authenticator: softISIM(t, 1)}
	c, rec, trace := ue(t, core, func(c *Config) { c.Auth = auth })
	if _, err := c.Register(testCtx(t)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	// Let the second copy arrive if it has not yet.
	testenv.Poll(time.Second, func() bool { return strings.Count(trace.String(), "SIP/2.0 401") == 2 })
	if auth.n.Load() != 1 || rec.Installs != 1 || len(rec.Live()) != 1 {
		t.Errorf("%d AKA runs, %d installs, live %v; want 1, 1, one set", auth.n.Load(), rec.Installs, rec.Live())
	}
	if c.tp.Stats().Stray == 0 {
		t.Error("the retransmitted 401 was not seen as a stray response")
	}
}

// runUE registers and starts Run; it returns a stop function that ends Run
// and returns Run's error.
func runUE(t *testing.T, c *Client) (stop func() error) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := c.Register(ctx); err != nil {
		t.Fatalf("Register: %v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
			return nil
		}
	}
}

func TestRefreshNewSASet(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			// 2 s granted: refresh at half, 1 s later (TS 24.229 §5.1.1.4.1);
			// the core challenges every refresh, so each brings a new set.
			core := startCore(t, func(c *imscore.Config) { c.MaxExpires = 2 * time.Second; c.ChallengeRefreshes = true })
			c, rec, trace := ue(t, core, func(c *Config) { c.Transport = transport })
			stop := runUE(t, c)
			first := c.Registration().Security
			if !testenv.Poll(5*time.Second, func() bool { return core.Stats().Registered >= 2 }) {
				t.Fatalf("no re-registration; core stats %+v", core.Stats())
			}
			// Wait until the UE has processed the 200 (the core counts it
			// as it leaves) and dropped the old set.
			if !testenv.Poll(5*time.Second, func() bool {
				r := c.Registration()
				return r != nil && r.Security.SetID != first.SetID && len(rec.Live()) == 1
			}) {
				t.Fatalf("UE did not move to a new set alone; live %v", rec.Live())
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			second := c.Registration().Security
			if second.SetID == first.SetID || second.SPIuc == first.SPIuc || second.SPIus == first.SPIus ||
				second.PortUC == first.PortUC || second.PortPC == first.PortPC {
				t.Errorf("re-registration kept SPIs or client ports:\nfirst  %+v\nsecond %+v", *first, *second)
			}
			if second.PortUS != first.PortUS || second.PortPS != first.PortPS {
				t.Errorf("server ports changed: first %+v second %+v", *first, *second)
			}
			if live := rec.Live(); len(live) != 1 || live[0] != second.SetID || rec.Removes < 1 {
				t.Errorf("live sets %v (removed %d), want only the new set %d", live, rec.Removes, second.SetID)
			}
			if cs := coreSet(t, core); cs.SPIus != second.SPIus {
				t.Errorf("core uses set %+v", cs)
			}
			if s := core.Stats(); s.RegistersUnprotected != 1 {
				t.Errorf("%d unprotected REGISTERs: the refresh must go over the SAs", s.RegistersUnprotected)
			}
			// Where each REGISTER left from and went to: initial, protected,
			// the refresh over the OLD set (old port_uc → port_ps), then the
			// protected one over the NEW set (new port_uc → port_ps).
			flows := registerFlows(trace.String())
			if len(flows) < 4 {
				t.Fatalf("REGISTER flows %v", flows)
			}
			ps := "127.0.0.1:" + strconv.Itoa(int(first.PortPS))
			want := []string{
				strconv.Itoa(int(first.PortUC)) + "->" + ps,
				strconv.Itoa(int(first.PortUC)) + "->" + ps,
				strconv.Itoa(int(second.PortUC)) + "->" + ps,
			}
			if !slices.Equal(flows[1:4], want) {
				t.Errorf("REGISTER flows %v, want [unprotected %v]", flows, want)
			}
		})
	}
}

// registerFlows lists "localport->remote" of each REGISTER the trace shows sent.
func registerFlows(trace string) []string {
	var out []string
	lines := strings.Split(trace, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) < 7 || f[0] != "---" || f[2] != "sent" || i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "REGISTER ") {
			continue
		}
		local, remote := f[4], f[6]
		out = append(out, local[strings.LastIndex(local, ":")+1:]+"->"+remote)
	}
	return out
}

func TestRegEventSubscription(t *testing.T) {
	core := startCore(t, nil)
	c, _, trace := ue(t, core, nil)
	stop := runUE(t, c)
	if !testenv.Poll(5*time.Second, func() bool { return core.Stats().Subscribes == 1 && core.Stats().Notifies >= 1 }) {
		t.Fatalf("no subscription; core stats %+v", core.Stats())
	}
	testenv.Poll(time.Second, func() bool {
		return strings.Contains(trace.String(), "sent UDP") && strings.Count(trace.String(), "NOTIFY sip:") >= 1
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	tr := trace.String()
	sub := tr[strings.Index(tr, "SUBSCRIBE sip:"):]
	sub = sub[:strings.Index(sub, "\n\n")]
	if strings.Contains(sub, "Security-Verify") || strings.Contains(sub, "sec-agree") {
		t.Errorf("SUBSCRIBE carries sec-agree headers:\n%s", sub)
	}
	s := c.Registration().Security
	wantRoute := "Route: <sip:127.0.0.1:" + strconv.Itoa(int(s.PortPS)) + ";lr>"
	if !strings.Contains(sub, wantRoute) || !strings.Contains(sub, "Route: <sip:orig@scscf") {
		t.Errorf("SUBSCRIBE route set wrong (want %q then the Service-Route):\n%s", wantRoute, sub)
	}
	if !strings.Contains(tr, "SIP/2.0 200 OK\nVia") {
		t.Error("the NOTIFY was not answered")
	}
}

func TestNotifyDeactivatedReregisters(t *testing.T) {
	core := startCore(t, nil)
	c, rec, _ := ue(t, core, nil)
	stop := runUE(t, c)
	testenv.Poll(5*time.Second, func() bool { return core.Stats().Subscribes == 1 })
	first := c.Registration().Security
	if err := core.Deregister(labIdentity(1).IMPUs[0]); err != nil {
		t.Fatalf("core.Deregister: %v", err)
	}
	if !testenv.Poll(5*time.Second, func() bool { return core.Stats().Registered >= 2 }) {
		t.Fatalf("UE did not re-register; core stats %+v", core.Stats())
	}
	// The core counts the registration when its 200 leaves; wait until the
	// UE has processed it, or stopping Run aborts the registration (and
	// rightly removes its temporary set).
	if !testenv.Poll(5*time.Second, func() bool {
		r := c.Registration()
		return r != nil && r.Security != nil && r.Security.SetID != first.SetID
	}) {
		t.Fatalf("UE did not complete the new registration")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := core.Stats(); s.RegistersUnprotected != 2 {
		t.Errorf("%d unprotected REGISTERs, want 2: deactivated means an initial registration", s.RegistersUnprotected)
	}
	if live := rec.Live(); len(live) != 1 || live[0] == first.SetID {
		t.Errorf("live sets %v, want one new set (old %d)", live, first.SetID)
	}
}

func TestNotifyShortenedReauthenticates(t *testing.T) {
	core := startCore(t, func(c *imscore.Config) { c.ReauthExpires = 2 * time.Second })
	auth := &countingAuth{Authenticator: softISIM(t, 1)}
	c, rec, _ := ue(t, core, func(c *Config) { c.Auth = auth })
	stop := runUE(t, c)
	testenv.Poll(5*time.Second, func() bool { return core.Stats().Subscribes == 1 })
	first := c.Registration().Security
	if err := core.Reauthenticate(labIdentity(1).IMPUs[0]); err != nil {
		t.Fatalf("core.Reauthenticate: %v", err)
	}
	if !testenv.Poll(5*time.Second, func() bool { return auth.n.Load() >= 2 && core.Stats().Registered >= 2 }) {
		t.Fatalf("no re-authentication; core stats %+v", core.Stats())
	}
	// The core counts the 200 as it leaves: wait until the UE processed it.
	if !testenv.Poll(5*time.Second, func() bool {
		r := c.Registration()
		return r != nil && r.Security != nil && r.Security.SetID != first.SetID && len(rec.Live()) == 1
	}) {
		t.Fatalf("UE did not move to the new set alone; live %v", rec.Live())
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := core.Stats(); s.RegistersUnprotected != 1 {
		t.Errorf("%d unprotected REGISTERs, want 1: shortened is a refresh over the SAs", s.RegistersUnprotected)
	}
	if len(rec.Live()) != 1 {
		t.Errorf("live sets %v", rec.Live())
	}
}

func TestNotifyRejectedTerminates(t *testing.T) {
	core := startCore(t, nil)
	c, rec, _ := ue(t, core, nil)
	ctx := testCtx(t)
	if _, err := c.Register(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testenv.Poll(5*time.Second, func() bool { return core.Stats().Subscribes == 1 })
	if err := core.Reject(labIdentity(1).IMPUs[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrTerminated) {
			t.Fatalf("Run: %v, want ErrTerminated", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the registration was rejected")
	}
	if len(rec.Live()) != 0 {
		t.Errorf("sets left: %v", rec.Live())
	}
	if _, err := c.Deregister(ctx); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Deregister after termination: %v", err)
	}
}

func TestPCSCFRestartReregistersFromScratch(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) { testPCSCFRestart(t, transport) })
	}
}

func testPCSCFRestart(t *testing.T, transport string) {
	core := startCore(t, func(c *imscore.Config) { c.MaxExpires = 2 * time.Second })
	c, rec, _ := ue(t, core, func(c *Config) { c.Transport = transport })
	stop := runUE(t, c)
	first := c.Registration().Security
	if err := core.Restart(); err != nil {
		t.Fatal(err)
	}
	if !testenv.Poll(8*time.Second, func() bool { return core.Stats().Registered >= 2 }) {
		t.Fatalf("UE did not register again; core stats %+v", core.Stats())
	}
	// The core counts the registration when its 200 leaves: wait until the
	// UE has processed it, or stopping Run aborts the registration (and
	// rightly removes its temporary set).
	if !testenv.Poll(5*time.Second, func() bool {
		r := c.Registration()
		return r != nil && r.Security != nil && r.Security.SetID != first.SetID && len(rec.Live()) == 1
	}) {
		t.Fatalf("UE did not move to a new set alone; live %v", rec.Live())
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := core.Stats(); s.RegistersUnprotected != 2 || s.Restarts != 1 {
		t.Errorf("core stats %+v: want a second unprotected (initial) REGISTER after the restart", s)
	}
	if live := rec.Live(); len(live) != 1 || live[0] == first.SetID {
		t.Errorf("live sets %v, want one new set (old %d removed)", live, first.SetID)
	}
	if len(core.Registrations()) != 1 {
		t.Errorf("core registrations %+v", core.Registrations())
	}
}

func TestDeregisterUnconfirmed(t *testing.T) {
	// A P-CSCF that never answers the de-REGISTER (Kamailio 5.6 drops its
	// SAs first): bounded wait, SAs removed, not confirmed.
	faults := &imscore.Faults{}
	core := startCore(t, func(c *imscore.Config) { c.Faults = faults })
	c, rec, _ := ue(t, core, func(c *Config) { c.DeregTimeout = 300 * time.Millisecond; c.Timers.T1 = 100 * time.Millisecond })
	ctx := testCtx(t)
	if _, err := c.Register(ctx); err != nil {
		t.Fatal(err)
	}
	faults.Silent(true)
	start := time.Now()
	ok, err := c.Deregister(ctx)
	var te *TimeoutError
	if ok || !errors.As(err, &te) || te.After != 300*time.Millisecond {
		t.Fatalf("Deregister = %v, %v; want unconfirmed after the 300 ms bound", ok, err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Deregister took %s", el)
	}
	if len(rec.Live()) != 0 {
		t.Errorf("sets left: %v", rec.Live())
	}
}

func TestIPsecInstallFailure(t *testing.T) {
	core := startCore(t, nil)
	c, rec, _ := ue(t, core, nil)
	rec.FailNext = ipsec.ErrUnsupported
	_, err := c.Register(testCtx(t))
	var ie *IPsecError
	if !errors.As(err, &ie) || !errors.Is(err, ipsec.ErrUnsupported) {
		t.Fatalf("Register: %v, want an IPsecError wrapping ErrUnsupported", err)
	}
	if s := core.Stats(); s.RegistersProtected != 0 {
		t.Errorf("a protected REGISTER left without SAs: %+v", s)
	}
}

func TestCloseRemovesEverySet(t *testing.T) {
	core := startCore(t, nil)
	c, rec, _ := ue(t, core, nil)
	if _, err := c.Register(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if len(rec.Live()) != 1 {
		t.Fatalf("live %v", rec.Live())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(rec.Live()) != 0 {
		t.Errorf("sets left after Close: %v", rec.Live())
	}
	if _, err := c.Register(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Register after Close: %v", err)
	}
}

func TestExtraHeaders(t *testing.T) {
	core := startCore(t, nil)
	pani := "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=0010100010019B01"
	c, _, trace := ue(t, core, func(c *Config) {
		c.Headers = []string{"P-Access-Network-Info: " + pani, "user-agent: tester/1"}
	})
	stop := runUE(t, c)
	testenv.Poll(5*time.Second, func() bool { return core.Stats().Subscribes == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	tr := trace.String()
	for _, method := range []string{"REGISTER sip:", "SUBSCRIBE sip:"} {
		req := tr[strings.Index(tr, method):]
		req = req[:strings.Index(req, "\n\n")]
		if !strings.Contains(req, "P-Access-Network-Info: "+pani) {
			t.Errorf("%s lacks P-Access-Network-Info:\n%s", method, req)
		}
		if n := strings.Count(strings.ToLower(req), "user-agent:"); n != 1 || !strings.Contains(req, "user-agent: tester/1") {
			t.Errorf("%s: the User-Agent was not replaced (%d of them):\n%s", method, n, req)
		}
	}
	for _, bad := range []string{"no colon", "Via: SIP/2.0/UDP x", "contact: <sip:x>", "X-Two: a\r\nX-Three: b", ": empty name"} {
		cfg := Config{Auth: softISIM(t, 1), PCSCF: core.Addr(), Headers: []string{bad}}
		if c, err := New(cfg); err == nil {
			c.Close()
			t.Errorf("header %q accepted", bad)
		}
	}
}

// Each Client traces only its own messages (sipgo's tracer is one
// process-global hook).
func TestTraceIsPerClient(t *testing.T) {
	core := startCore(t, nil)
	c1, _, tr1 := ue(t, core, nil)
	c2, _, tr2 := ue(t, core, func(c *Config) { c.Auth = softISIM(t, 2) })
	ctx := testCtx(t)
	errs := make(chan error, 2)
	for _, c := range []*Client{c1, c2} {
		go func() { _, err := c.Register(ctx); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	id1, id2 := labIdentity(1).IMPI, labIdentity(2).IMPI
	for _, tc := range []struct {
		trace      string
		own, other string
	}{{tr1.String(), id1, id2}, {tr2.String(), id2, id1}} {
		if !strings.Contains(tc.trace, tc.own) || strings.Contains(tc.trace, tc.other) {
			t.Errorf("trace of %s holds %s's messages, or not its own", tc.own, tc.other)
		}
		// Four messages, each traced once per copy: a UDP retransmission
		// (T1 is 10 ms here) is the same message again.
		msgs, err := sipnet.ReadTrace(strings.NewReader(tc.trace))
		if err != nil {
			t.Fatal(err)
		}
		distinct := map[string]bool{}
		for _, m := range msgs {
			n, method := m.CSeq()
			distinct[fmt.Sprint(m.Sent, m.StartLine(), n, method)] = true
		}
		if len(distinct) != 4 {
			t.Errorf("trace of %s: %d distinct messages, want 4", tc.own, len(distinct))
		}
	}
}

// A request over the UDP size limit goes over TCP; when the P-CSCF refuses
// TCP, over UDP after all (RFC 3261 §18.1.1).
func TestOversizeFallsBackToUDP(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 65536)
		n, from, err := pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		req := string(buf[:n])
		got <- req
		// Answer 200 with the request's Via, From, To, Call-ID and CSeq.
		var hdrs []string
		for _, l := range strings.Split(req, "\r\n") {
			for _, h := range []string{"Via:", "From:", "To:", "Call-ID:", "CSeq:"} {
				if strings.HasPrefix(l, h) {
					hdrs = append(hdrs, l)
				}
			}
		}
		pc.WriteToUDP([]byte("SIP/2.0 200 OK\r\n"+strings.Join(hdrs, "\r\n")+"\r\nContent-Length: 0\r\n\r\n"), from)
	}()
	c, err := New(Config{Auth: softISIM(t, 1), PCSCF: pc.LocalAddr().(*net.UDPAddr).AddrPort(), MaxUDPSize: 300, Timers: sipnet.Timers{T1: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.callID = "fallback"
	req := c.buildRegister(time.Minute, c.initialAuthorization(), "", nil, "udp")
	in, err := c.transact(testCtx(t), req, c.unprotectedRoute())
	if err != nil {
		t.Fatalf("transact: %v", err)
	}
	if in.Network != "udp" || in.Msg.(*sip.Response).StatusCode != 200 {
		t.Errorf("answer over %s: %v", in.Network, in.Msg)
	}
	if r := <-got; len(r) <= 300 || !strings.Contains(r, "Via: SIP/2.0/UDP ") {
		t.Errorf("the P-CSCF got a %d-byte request:\n%s", len(r), r)
	}
}

func TestRegisterIPv6(t *testing.T) {
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		testenv.Missing(t, "IPv6 loopback (::1)")
	} else {
		l.Close()
	}
	core := startCore(t, func(c *imscore.Config) { c.Addr = netip.MustParseAddrPort("[::1]:0") })
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			c, rec, trace := ue(t, core, func(c *Config) { c.Transport = transport })
			ctx := testCtx(t)
			reg, err := c.Register(ctx)
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			if !strings.Contains(trace.String(), "Via: SIP/2.0/"+strings.ToUpper(transport)+" [::1]:") ||
				!strings.Contains(reg.Contact, "[::1]:") || len(rec.Live()) != 1 {
				t.Errorf("contact %s, live %v", reg.Contact, rec.Live())
			}
			if ok, err := c.Deregister(ctx); !ok {
				t.Fatalf("Deregister: %v", err)
			}
		})
	}
}
