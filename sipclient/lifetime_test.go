package sipclient

import (
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/mt"
)

// SA lifetimes follow the registration granted (TS 33.203 §7.4,
// TS 24.229 §5.1.1.5): the temporary set is planned with reg-await-auth
// (mt.TemporaryLifetime), the 200 extends it to the granted expiry + 30 s;
// after a 423 the refreshes ask for Min-Expires, never for the refused
// expiry again.
func TestLifetimeFollowsGrantedExpiry(t *testing.T) {
	core := startCore(t, func(c *imscore.Config) { c.MinExpires = 120 * time.Second })
	c, rec, trace := ue(t, core, func(c *Config) { c.Expires = 10 * time.Second })
	start := time.Now()
	reg, err := c.Register(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if reg.Expires != 120*time.Second || strings.Count(trace.String(), "SIP/2.0 423") != 1 {
		t.Fatalf("granted %v after %d 423s; want 120s after one", reg.Expires, strings.Count(trace.String(), "SIP/2.0 423"))
	}
	cur := c.current()
	if got := cur.set.SAs[0].Lifetime; got != mt.TemporaryLifetime {
		t.Errorf("planned kernel lifetime %v; want reg-await-auth, %v", got, mt.TemporaryLifetime)
	}
	until, ok := rec.Expires(cur.set.ID)
	if want := start.Add(120*time.Second + mt.ExpiresMargin); !ok || until.Before(want) || until.After(want.Add(5*time.Second)) {
		t.Errorf("established set extended to %v (ok %v); want about %v", until.Sub(start), ok, want.Sub(start))
	}

	// A refresh asks for 120 s at once: no second 423.
	c.op.Lock()
	_, err = c.doRegister(testCtx(t), c.expires)
	c.op.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(trace.String(), "SIP/2.0 423"); n != 1 {
		t.Errorf("%d 423s after a refresh; want the one of the initial registration", n)
	}
}
