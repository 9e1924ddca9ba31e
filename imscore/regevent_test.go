package imscore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/reginfo"
)

// subscribe registers u, subscribes to its reg event, answers the first
// NOTIFY and returns it parsed, with the dialog's To tag.
func subscribe(t *testing.T, u *testUE) (*reginfo.Reginfo, string) {
	t.Helper()
	u.sendProtected(u.subscribeText("sub-"+u.callID, "", 1, 600000))
	_, resp := u.response(wait)
	if resp.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %s", resp.StartLine())
	}
	tag, _ := resp.To().Params.Get("tag")
	if tag == "" || resp.Contact() == nil {
		t.Errorf("200 to SUBSCRIBE without To tag or Contact")
	}
	if e := headerValues(resp, "Expires"); len(e) != 1 || e[0] != "3600" {
		t.Errorf("SUBSCRIBE Expires %q, want capped to 3600", e)
	}
	doc, _ := expectNotify(t, u, "active")
	return doc, tag
}

// expectNotify waits for a NOTIFY, checks it, answers 200 and parses it.
func expectNotify(t *testing.T, u *testUE, subState string) (*reginfo.Reginfo, *sip.Request) {
	t.Helper()
	r, req := u.request(wait)
	if req.Method != sip.NOTIFY {
		t.Fatalf("want NOTIFY, got %s", req.StartLine())
	}
	if ev := headerValues(req, "Event"); len(ev) != 1 || ev[0] != "reg" {
		t.Errorf("Event %q", ev)
	}
	if ss := headerValues(req, "Subscription-State"); len(ss) != 1 || !strings.HasPrefix(ss[0], subState) {
		t.Errorf("Subscription-State %q, want %s...", ss, subState)
	}
	if ct := req.ContentType(); ct == nil || ct.Value() != "application/reginfo+xml" {
		t.Errorf("Content-Type %v", ct)
	}
	regs := u.c.Registrations()
	if u.transport == "UDP" {
		if r.sock != u.us {
			t.Errorf("NOTIFY did not arrive at port_us")
		}
		if len(regs) == 1 && len(regs[0].Sets) > 0 && r.from.Port() != regs[0].Sets[0].PortPC {
			t.Errorf("NOTIFY from port %d, want port_pc %d", r.from.Port(), regs[0].Sets[0].PortPC)
		}
	}
	u.answer(r, req, 200)
	doc, err := reginfo.Parse(req.Body())
	if err != nil {
		t.Fatalf("reginfo: %v\n%s", err, req.Body())
	}
	return doc, req
}

func TestRegEvent(t *testing.T) {
	for _, tr := range []string{"UDP", "TCP"} {
		t.Run(tr, func(t *testing.T) {
			c, _ := startCore(t, Config{})
			u := newUE(t, c, tr)
			u.register()
			doc, _ := subscribe(t, u)
			if doc.State != reginfo.StateFull || doc.Version != 0 || len(doc.Registrations) != 2 {
				t.Fatalf("first NOTIFY %+v", doc)
			}
			for _, reg := range doc.Registrations {
				if reg.State != reginfo.RegActive || len(reg.Contacts) != 1 {
					t.Fatalf("registration %+v", reg)
				}
				ct := reg.Contacts[0]
				if ct.State != reginfo.ContactActive || ct.Event != reginfo.EventRegistered || !strings.Contains(ct.URI, ":"+itoa(int(u.portUS))) || !ct.HasExpires {
					t.Errorf("contact %+v", ct)
				}
			}
			if d := doc.Decide(testIMPU, "sip:001010123456789@127.0.0.1:"+itoa(int(u.portUS))); d.Action != reginfo.ActionNone {
				t.Errorf("UE decision on the first NOTIFY: %+v", d)
			}
			// A re-registration is notified as "refreshed".
			u.register()
			doc, _ = expectNotify(t, u, "active")
			if doc.Version != 1 || doc.Registrations[0].Contacts[0].Event != reginfo.EventRefreshed {
				t.Errorf("after re-registration: %+v", doc.Registrations[0])
			}
			if st := c.Stats(); st.Subscribes != 1 || st.Notifies != 2 {
				t.Errorf("stats %+v", st)
			}
			// The UE's 200s (UDP: port_uc → port_ps) end both transactions.
			testenv.Eventually(t, wait, "NOTIFY transactions completed", func() bool { return c.tp.Stats().ClientTxs == 0 })
			if st := c.Stats(); st.NotifyFailures != 0 || st.Discarded != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestSubscribeRules(t *testing.T) {
	c, _ := startCore(t, Config{})
	u := newUE(t, c, "UDP")
	u.register()
	cases := []struct {
		name string
		text string
		want int
	}{
		{"other event package", strings.Replace(u.subscribeText("s1", "", 1, 600), "Event: reg", "Event: presence", 1), 489},
		{"someone else's registration", strings.Replace(u.subscribeText("s2", "", 1, 600), "SUBSCRIBE "+testIMPU, "SUBSCRIBE sip:other@"+testDomain, 1), 403},
		{"unknown dialog", u.subscribeText("s3", "nosuchtag", 2, 600), 481},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			if tc.want == 403 {
				text = strings.Replace(text, "To: <"+testIMPU+">", "To: <sip:other@"+testDomain+">", 1)
			}
			u.sendProtected(text)
			_, resp := u.response(wait)
			if resp.StatusCode != tc.want {
				t.Errorf("%s, want %d", resp.StartLine(), tc.want)
			}
		})
	}
}

// TestUnsubscribe: Expires 0 in the dialog ends the subscription with a
// terminated NOTIFY.
func TestUnsubscribe(t *testing.T) {
	c, _ := startCore(t, Config{})
	u := newUE(t, c, "UDP")
	u.register()
	_, tag := subscribe(t, u)
	u.sendProtected(u.subscribeText("sub-"+u.callID, tag, 2, 0))
	if _, resp := u.response(wait); resp.StatusCode != 200 {
		t.Fatalf("un-SUBSCRIBE: %s", resp.StartLine())
	}
	expectNotify(t, u, "terminated")
	u.sendProtected(u.subscribeText("sub-"+u.callID, tag, 3, 600))
	if _, resp := u.response(wait); resp.StatusCode != 481 {
		t.Errorf("refresh of an ended subscription: %s, want 481", resp.StartLine())
	}
}

// TestNetworkDeregister: Deregister NOTIFYs "deactivated" over the SAs,
// then the SAs go; Reject says "rejected".
func TestNetworkDeregister(t *testing.T) {
	for _, tc := range []struct {
		event reginfo.Event
		call  func(*Core, string) error
	}{
		{reginfo.EventDeactivated, (*Core).Deregister},
		{reginfo.EventRejected, (*Core).Reject},
	} {
		t.Run(string(tc.event), func(t *testing.T) {
			c, rec := startCore(t, Config{})
			u := newUE(t, c, "UDP")
			u.register()
			subscribe(t, u)
			errc := make(chan error, 1)
			go func() { errc <- tc.call(c, testIMPU2) }() // any IMPU of the implicit set
			doc, _ := expectNotify(t, u, "terminated;reason="+string(tc.event))
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			reg := doc.Registrations[0]
			if reg.State != reginfo.RegTerminated || len(reg.Contacts) != 1 || reg.Contacts[0].State != reginfo.ContactTerminated || reg.Contacts[0].Event != tc.event {
				t.Errorf("registration %+v", reg)
			}
			d := doc.Decide(testIMPU, "sip:001010123456789@127.0.0.1:"+itoa(int(u.portUS)))
			want := reginfo.ActionReregister
			if tc.event == reginfo.EventRejected {
				want = reginfo.ActionTerminated
			}
			if d.Action != want {
				t.Errorf("UE decision %v, want %v", d.Action, want)
			}
			if len(rec.Live()) != 0 || len(c.Registrations()) != 0 {
				t.Errorf("after network de-registration: live %v registrations %+v", rec.Live(), c.Registrations())
			}
			if err := c.Deregister(testIMPU); !errors.Is(err, ErrNotRegistered) {
				t.Errorf("second Deregister: %v, want ErrNotRegistered", err)
			}
		})
	}
}

// TestReauthenticate: the NOTIFY says "shortened" with the short expiry,
// and the registration really ends then unless the UE re-registers.
func TestReauthenticate(t *testing.T) {
	c, rec := startCore(t, Config{ReauthExpires: time.Second})
	u := newUE(t, c, "UDP")
	u.register()
	subscribe(t, u)
	errc := make(chan error, 1)
	go func() { errc <- c.Reauthenticate(testIMPU) }()
	doc, _ := expectNotify(t, u, "active")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ct := doc.Registrations[0].Contacts[0]
	if ct.Event != reginfo.EventShortened || ct.Expires > 1 {
		t.Errorf("contact %+v, want shortened with expires ≤ 1", ct)
	}
	if d := doc.Decide(testIMPU, "sip:001010123456789@127.0.0.1:"+itoa(int(u.portUS))); d.Action != reginfo.ActionReregister && d.Action != reginfo.ActionNone {
		t.Errorf("decision %+v", d)
	}
	// Not re-registering: the registration expires, NOTIFY "expired".
	doc, _ = expectNotify(t, u, "terminated;reason=noresource")
	if ct := doc.Registrations[0].Contacts[0]; ct.Event != reginfo.EventExpired || ct.State != reginfo.ContactTerminated {
		t.Errorf("expiry NOTIFY contact %+v", ct)
	}
	testenv.Poll(wait, func() bool { return len(rec.Live()) == 0 })
	if len(rec.Live()) != 0 || len(c.Registrations()) != 0 {
		t.Errorf("after expiry: live %v registrations %+v", rec.Live(), c.Registrations())
	}
	if err := c.Reauthenticate(testIMPU); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Reauthenticate after expiry: %v", err)
	}
}
