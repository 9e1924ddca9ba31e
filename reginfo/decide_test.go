package reginfo

import (
	"testing"
	"time"
)

func TestDecideTestdata(t *testing.T) {
	for _, tc := range []struct {
		file, aor, contact string
		want               Decision
	}{
		{"ims-full.xml", ueAOR, ueContact,
			Decision{Action: ActionNone, Event: EventRegistered, Expires: time.Hour, HasExpires: true}},
		{"ims-full.xml", "tel:+15551230001", ueContact,
			Decision{Action: ActionNone, Event: EventRegistered, Expires: time.Hour, HasExpires: true}},
		{"ims-shortened.xml", ueAOR, ueContact, // the contact carries ;transport=udp in the document
			Decision{Action: ActionReregister, Event: EventShortened, Expires: time.Minute, HasExpires: true}},
		{"ims-shortened.xml", ueAOR, "<" + ueContact + ";transport=tcp>",
			Decision{Action: ActionReregister, Event: EventShortened, Expires: time.Minute, HasExpires: true}},
		{"ims-deactivated.xml", ueAOR, ueContact,
			Decision{Action: ActionReregister, Event: EventDeactivated, Initial: true}},
		{"ims-deactivated.xml", "", ueContact,
			Decision{Action: ActionReregister, Event: EventDeactivated, Initial: true}},
		{"ims-rejected.xml", ueAOR, ueContact,
			Decision{Action: ActionTerminated, Event: EventRejected}},
		{"ims-probation.xml", ueAOR, ueContact,
			Decision{Action: ActionReregister, Event: EventProbation, Initial: true, RetryAfter: 30 * time.Second}},
		{"rfc3680-expired.xml", "sip:joe@example.com", "sip:joe@pc34.example.com",
			Decision{Action: ActionTerminated, Event: EventExpired}},
		{"rfc3680-registered.xml", "sip:joe@example.com", "sip:joe@pc34.example.com",
			Decision{Action: ActionNone, Event: EventRegistered}},
		{"rfc3680-init.xml", "sip:joe@example.com", "sip:joe@pc34.example.com",
			Decision{Action: ActionNone}},
		// Another device's binding expired; ours (76) is still active.
		{"rfc3680-full-two-contacts.xml", "sip:user@example.com", "sip:user@pc887.example.com",
			Decision{Action: ActionNone, Event: EventRegistered}},
		{"rfc3680-full-two-contacts.xml", "sip:user@example.com", "sip:user@university.edu",
			Decision{Action: ActionTerminated, Event: EventExpired}},
		// A document about somebody else.
		{"ims-rejected.xml", "sip:other@ims.mnc001.mcc001.3gppnetwork.org", ueContact, Decision{}},
		// Kamailio keeps ;alias on the contact; the UE registered without it.
		{"kamailio-style.xml", ueAOR, "sip:001010000000001@10.45.0.2:5060",
			Decision{Action: ActionNone, Event: EventRegistered, Expires: 3599 * time.Second, HasExpires: true}},
		{"kamailio-style.xml", ueAOR, "sip:001010000000001@10.45.0.2:5062", Decision{}},
	} {
		t.Run(tc.file+" "+tc.aor+" "+tc.contact, func(t *testing.T) {
			r, err := Parse(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Decide(tc.aor, tc.contact); got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecideTable(t *testing.T) {
	const me, other = "sip:ue@10.0.0.1:5064", "sip:ue@10.0.0.2:5064"
	doc := func(reg RegState, contacts ...Contact) *Reginfo {
		return &Reginfo{State: StatePartial, Registrations: []Registration{{AOR: "sip:a@d", ID: "r", State: reg, Contacts: contacts}}}
	}
	c := func(uri string, st ContactState, ev Event) Contact {
		return Contact{ID: "c", State: st, Event: ev, URI: uri}
	}
	shortenedNoExpires := c(me, ContactActive, EventShortened)
	refreshed := c(me, ContactActive, EventRefreshed)
	refreshed.Expires, refreshed.HasExpires = 1800, true
	probationNoRetry := c(me, ContactTerminated, EventProbation)
	terminatedWithExpires := c(me, ContactTerminated, EventUnregistered)
	terminatedWithExpires.Expires, terminatedWithExpires.HasExpires = 0, true

	for _, tc := range []struct {
		name string
		r    *Reginfo
		want Decision
	}{
		{"shortened without expires: now", doc(RegActive, shortenedNoExpires),
			Decision{Action: ActionReregister, Event: EventShortened}},
		{"refreshed: informative expires", doc(RegActive, refreshed),
			Decision{Action: ActionNone, Event: EventRefreshed, Expires: 30 * time.Minute, HasExpires: true}},
		{"created", doc(RegActive, c(me, ContactActive, EventCreated)), Decision{Event: EventCreated}},
		{"deactivated while the AOR stays active", doc(RegActive, c(me, ContactTerminated, EventDeactivated), c(other, ContactActive, EventRegistered)),
			Decision{Action: ActionReregister, Event: EventDeactivated, Initial: true}},
		{"probation without retry-after", doc(RegTerminated, probationNoRetry),
			Decision{Action: ActionReregister, Event: EventProbation, Initial: true}},
		{"unregistered", doc(RegTerminated, terminatedWithExpires), Decision{Action: ActionTerminated, Event: EventUnregistered}},
		{"expired", doc(RegTerminated, c(me, ContactTerminated, EventExpired)), Decision{Action: ActionTerminated, Event: EventExpired}},
		{"unknown terminating event", doc(RegActive, c(me, ContactTerminated, "migrated")), Decision{Action: ActionTerminated, Event: "migrated"}},
		{"unknown active event", doc(RegActive, c(me, ContactActive, "migrated")), Decision{Event: "migrated"}},
		{"registration terminated, contact not listed", doc(RegTerminated, c(other, ContactTerminated, EventExpired)),
			Decision{Action: ActionTerminated}},
		{"registration terminated, contact listed active", doc(RegTerminated, c(me, ContactActive, EventRegistered)),
			Decision{Action: ActionTerminated, Event: EventRegistered}},
		{"other device deactivated", doc(RegActive, c(other, ContactTerminated, EventDeactivated)), Decision{}},
		{"no contacts, init", doc(RegInit), Decision{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Decide("sip:a@d", me); got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDecideAnyAOR: with no AOR, the most severe decision over the
// registrations that list the UE wins, whatever their order.
func TestDecideAnyAOR(t *testing.T) {
	const me = "sip:ue@10.0.0.1:5064"
	reg := func(aor string, st ContactState, ev Event) Registration {
		rs := RegActive
		if st == ContactTerminated {
			rs = RegTerminated
		}
		return Registration{AOR: aor, ID: aor, State: rs, Contacts: []Contact{{ID: "c", State: st, Event: ev, URI: me}}}
	}
	active := reg("sip:a@d", ContactActive, EventRegistered)
	shortened := reg("sip:b@d", ContactActive, EventShortened)
	deactivated := reg("sip:c@d", ContactTerminated, EventDeactivated)
	rejected := reg("tel:+1", ContactTerminated, EventRejected)
	notMine := Registration{AOR: "sip:x@d", ID: "x", State: RegTerminated}
	for _, tc := range []struct {
		regs []Registration
		want Action
		ev   Event
	}{
		{[]Registration{active, notMine}, ActionNone, EventRegistered},
		{[]Registration{active, shortened}, ActionReregister, EventShortened},
		{[]Registration{shortened, deactivated, active}, ActionReregister, EventDeactivated},
		{[]Registration{deactivated, shortened}, ActionReregister, EventDeactivated},
		{[]Registration{rejected, deactivated}, ActionTerminated, EventRejected},
		{[]Registration{deactivated, rejected}, ActionTerminated, EventRejected},
	} {
		r := &Reginfo{State: StateFull, Registrations: tc.regs}
		if got := r.Decide("", me); got.Action != tc.want || got.Event != tc.ev {
			t.Errorf("Decide over %v = %+v, want %v/%v", tc.regs, got, tc.want, tc.ev)
		}
	}
}

func TestSameURI(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"sip:ue@10.0.0.1:5064", "sip:ue@10.0.0.1:5064", true},
		{"sip:ue@10.0.0.1:5064", "<sip:ue@10.0.0.1:5064;transport=udp>", true},
		{"SIP:ue@Example.COM", "sip:ue@example.com", true},
		{"sip:ue@[2001:db8::1]:5064;ob", "sip:ue@[2001:DB8::1]:5064", true},
		{"sip:10.0.0.1:5064", "sip:10.0.0.1:5064;lr", true},
		{"sip:+1555;phone-context=x@d;user=phone", "sip:+1555;phone-context=x@d", true},
		{"tel:+15551230001", "TEL:+15551230001", true},
		{"sip:UE@d", "sip:ue@d", false}, // the user part is case-sensitive
		{"sip:ue@10.0.0.1:5064", "sip:ue@10.0.0.1:5065", false},
		{"sip:ue@10.0.0.1", "sip:ue@10.0.0.1:5060", false}, // RFC 3261: an explicit port differs
		{"sip:ue@d", "sips:ue@d", false},
		{"sip:ue@d", "tel:ue@d", false},
		{"sip:ue@d", "", false},
		{"", "", false},
		{"ue@d", "ue@d", false},
		{"sip:", "sip:", false},
	} {
		if got := SameURI(tc.a, tc.b); got != tc.want {
			t.Errorf("SameURI(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := SameURI(tc.b, tc.a); got != tc.want {
			t.Errorf("SameURI(%q, %q) = %v, want %v (not symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestFreshness(t *testing.T) {
	for _, tc := range []struct {
		version  uint64
		state    State
		last     uint64
		haveLast bool
		want     Freshness
	}{
		{0, StateFull, 0, false, Fresh},
		{5, StateFull, 0, false, Fresh},
		{0, StatePartial, 0, false, Gap},
		{1, StatePartial, 0, true, Fresh},
		{2, StatePartial, 0, true, Gap},
		{9, StateFull, 0, true, Fresh},
		{0, StatePartial, 0, true, Stale},
		{0, StateFull, 0, true, Stale},
		{3, StateFull, 4, true, Stale},
		{1<<64 - 1, StatePartial, 1<<64 - 2, true, Fresh},
	} {
		r := &Reginfo{Version: tc.version, State: tc.state}
		if got := r.Freshness(tc.last, tc.haveLast); got != tc.want {
			t.Errorf("version %d %s after %d (%v): %v, want %v", tc.version, tc.state, tc.last, tc.haveLast, got, tc.want)
		}
	}
	for f, s := range map[Freshness]string{Fresh: "fresh", Stale: "stale", Gap: "gap", 9: "Freshness(9)"} {
		if f.String() != s {
			t.Errorf("%d.String() = %q", f, f.String())
		}
	}
	for a, s := range map[Action]string{ActionNone: "none", ActionReregister: "reregister", ActionTerminated: "terminated", 9: "Action(9)"} {
		if a.String() != s {
			t.Errorf("%d.String() = %q", a, a.String())
		}
	}
}

func TestSecondsSaturates(t *testing.T) {
	if got := seconds(1<<64 - 1); got <= 0 || got < 290*365*24*time.Hour {
		t.Errorf("seconds(max) = %v", got)
	}
	if got := seconds(90); got != 90*time.Second {
		t.Errorf("seconds(90) = %v", got)
	}
}
