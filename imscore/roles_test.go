package imscore

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
)

// mwTap records what crosses the P-CSCF/S-CSCF interface.
type mwTap struct {
	scscfPeer
	mu    sync.Mutex
	reqs  []*sip.Request
	resps []*sip.Response
}

func (t *mwTap) request(req *sip.Request) mwAnswer {
	in := req.Clone()
	ans := t.scscfPeer.request(req)
	t.mu.Lock()
	t.reqs = append(t.reqs, in)
	t.resps = append(t.resps, ans.resp.Clone())
	t.mu.Unlock()
	return ans
}

// TestMwIntegrityProtected: the P-CSCF hands the S-CSCF each REGISTER with
// its Path and integrity-protected as TS 24.229 §5.2.2.1 has it ("no"
// unprotected, "ip-assoc-pending" over the temporary set, "yes" over the
// established one), and takes ck and ik out of the S-CSCF's 401.
func TestMwIntegrityProtected(t *testing.T) {
	c, _ := startCore(t, Config{})
	tap := &mwTap{scscfPeer: c.s}
	c.p.mu.Lock()
	c.p.scscf = tap
	c.p.mu.Unlock()
	u := newUE(t, c, "UDP")
	u.register()
	u.sendProtectedOld(u.registerText(regMsg{expires: 0, auth: u.authorization("ok", nil), verify: u.verifyOld, client: "-"}))
	if _, resp := u.response(wait); resp.StatusCode != 200 {
		t.Fatalf("de-REGISTER: %s", resp.StartLine())
	}
	tap.mu.Lock()
	defer tap.mu.Unlock()
	want := []string{ipNo, ipPending, ipYes}
	if len(tap.reqs) != len(want) {
		t.Fatalf("%d requests crossed Mw, want %d", len(tap.reqs), len(want))
	}
	for i, req := range tap.reqs {
		if got := integrityProtected(headerValues(req, "Authorization")[0]); got != want[i] {
			t.Errorf("REGISTER #%d: integrity-protected %q, want %q", i+1, got, want[i])
		}
		if p := headerValues(req, "Path"); len(p) != 1 || !strings.HasPrefix(p[0], "<sip:term@127.0.0.1:") {
			t.Errorf("REGISTER #%d: Path %q", i+1, p)
		}
	}
	www := headerValues(tap.resps[0], "WWW-Authenticate")
	if tap.resps[0].StatusCode != 401 || len(www) != 1 || !strings.Contains(www[0], "ck=") || !strings.Contains(www[0], "ik=") {
		t.Errorf("the S-CSCF's 401 %s %q, want ck and ik for the P-CSCF", tap.resps[0].StartLine(), www)
	}
}

// gatedBackend blocks every Install until gate is closed.
type gatedBackend struct {
	*ipsec.Recorder
	entered chan struct{}
	gate    chan struct{}
}

func (b *gatedBackend) Install(ctx context.Context, set *ipsec.SASet) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	select {
	case <-b.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.Recorder.Install(ctx, set)
}

// TestNoIOUnderLock: while an SA set is being installed, the P-CSCF and
// the S-CSCF go on serving: no role holds its lock across I/O.
func TestNoIOUnderLock(t *testing.T) {
	gb := &gatedBackend{Recorder: &ipsec.Recorder{}, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	c, _ := startCore(t, Config{IPsec: gb})
	var once sync.Once
	open := func() { once.Do(func() { close(gb.gate) }) }
	t.Cleanup(open)
	u := newUE(t, c, "UDP")
	u.sendUnprotected(u.registerText(regMsg{expires: -1}))
	select {
	case <-gb.entered:
	case <-time.After(wait):
		t.Fatal("no SA set installation began")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Registrations() // both roles' locks
		_ = c.Reauthenticate(testIMPU)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("the roles' locks are held while the SA set is installed")
	}
	// The P-CSCF still admits (here: discards) requests meanwhile, on
	// port_ps (the unprotected port's reader is the one installing).
	other := newUE(t, c, "UDP")
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), c.PortPS())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(other.registerText(regMsg{expires: -1}))); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "the P-CSCF served another request", func() bool { return c.Stats().Discarded == 1 })
	open()
	if _, resp := u.response(wait); resp.StatusCode != 401 {
		t.Fatalf("%s, want 401 once the set is installed", resp.StartLine())
	}
	if n := len(gb.Live()); n != 1 {
		t.Errorf("%d sets installed, want 1", n)
	}
}
