package sipclient

import (
	"testing"
	"time"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/sipnet"
)

// A reg-event subscription the network terminates with a reason that
// allows it (deactivated, timeout) is renewed at once; one terminated as
// rejected or noresource is never renewed, not even at the next refresh
// (RFC 6665 §4.1.3).
func TestSubscriptionTerminated(t *testing.T) {
	for _, tc := range []struct {
		reason string
		again  bool
	}{{"deactivated", true}, {"timeout", true}, {"rejected", false}, {"noresource", false}} {
		t.Run(tc.reason, func(t *testing.T) {
			core := startCore(t, nil)
			c, _, _ := ue(t, core, nil)
			ctx := testCtx(t)
			if _, err := c.Register(ctx); err != nil {
				t.Fatal(err)
			}
			c.op.Lock()
			c.ensureSubscribed(ctx)
			c.op.Unlock()
			if !testenv.Poll(5*time.Second, func() bool { return core.Stats().Subscribes == 1 }) {
				t.Fatalf("not subscribed: %+v", core.Stats())
			}
			c.op.Lock()
			err := c.onNotify(ctx, &notifyEvent{in: &sipnet.Inbound{}, terminated: true, reason: tc.reason})
			c.op.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if got := testenv.Poll(time.Second, func() bool { return core.Stats().Subscribes == 2 }); got != tc.again {
				t.Fatalf("subscribed again within 1 s: %v; want %v (stats %+v)", got, tc.again, core.Stats())
			}
			if tc.again {
				return
			}
			c.op.Lock()
			err = c.refresh(ctx)
			c.op.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if s := core.Stats().Subscribes; s != 1 {
				t.Errorf("%d SUBSCRIBEs after a refresh; a %s subscription is not renewed", s, tc.reason)
			}
		})
	}
}

// A P-CSCF that never answers the reg-event SUBSCRIBE does not hold up the
// registration refresh for Timer F: the SUBSCRIBE gives up at the refresh.
func TestUnansweredSubscribeDoesNotDelayRefresh(t *testing.T) {
	faults := &imscore.Faults{}
	core := startCore(t, func(c *imscore.Config) { c.Faults = faults; c.MaxExpires = 2 * time.Second })
	// T1 500 ms: Timer F is 32 s, far beyond the refresh due after 1 s.
	c, _, _ := ue(t, core, func(c *Config) { c.Timers = sipnet.Timers{T1: 500 * time.Millisecond} })
	faults.DropRequests("SUBSCRIBE", 1000)
	stop := runUE(t, c)
	defer stop()
	if !testenv.Poll(5*time.Second, func() bool { return core.Stats().Registered >= 2 }) {
		t.Fatalf("no refresh within 5 s while the SUBSCRIBE went unanswered: %+v", core.Stats())
	}
}
