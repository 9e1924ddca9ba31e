package reginfo

import (
	"fmt"
	"time"
)

// Action is what a UE must do about its own registration after a NOTIFY.
type Action uint8

// Actions, from least to most severe.
const (
	// ActionNone: nothing changed for this UE's binding (or the document
	// does not mention it).
	ActionNone Action = iota
	// ActionReregister: register again; Decision.Initial says whether as a
	// refresh of the current registration or from scratch.
	ActionReregister
	// ActionTerminated: the network ended the registration and does not
	// want it back; drop the registration state and SAs, do not retry.
	ActionTerminated
)

func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionReregister:
		return "reregister"
	case ActionTerminated:
		return "terminated"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// Event is the event of the UE's contact that led to the action, ""
	// when the document does not list the contact.
	Event Event
	// Initial, with ActionReregister: the network removed the binding, so
	// the UE starts an initial registration (unprotected REGISTER, new AKA
	// run, new SAs) instead of refreshing over the existing SAs.
	Initial bool
	// Expires, when HasExpires: the binding's remaining lifetime as the
	// registrar now states it. With a shortened event this replaces the
	// lifetime from the last 200 OK: the UE reschedules its refresh against
	// it (TS 24.229 §5.1.1.4.1 timing); with other active events it is
	// informative.
	Expires    time.Duration
	HasExpires bool
	// RetryAfter, with a probation event: wait this long before the
	// initial registration (RFC 3680 retry-after; 0 when absent).
	RetryAfter time.Duration
}

// Decide reads r for the UE's binding — its registered public identity aor
// and its Contact URI contact — and returns what the UE must do. An empty
// aor looks at every registration that lists the contact (the implicitly
// registered set) and returns the most severe decision.
//
// The rules (TS 24.229 §5.1.1.3 subscriber behaviour, §5.1.1.5.2
// network-initiated re-authentication, §5.1.1.7 network-initiated
// de-registration; clause numbers recalled [R], behaviour per RFC 3680
// §5.2.2 event definitions):
//
//	registration  UE's contact            action
//	active        active, shortened       Reregister (refresh) with Expires when given,
//	                                      at once when not: the S-CSCF asks for re-authentication
//	active        active, other event     None (Expires reported when given)
//	any           terminated, deactivated Reregister, Initial, now
//	any           terminated, probation   Reregister, Initial, after RetryAfter
//	any           terminated, rejected,   Terminated
//	              unregistered, expired,
//	              or an unknown event
//	terminated    not listed, or listed   Terminated (no binding is left for the AOR;
//	              active                  the registration state wins)
//	init/active   not listed              None (other devices' bindings; a missing
//	                                      binding in a partial document means no change)
//	no registration element for aor       None
//
// Contacts and AORs are matched with SameURI.
func (r *Reginfo) Decide(aor, contact string) Decision {
	var best Decision
	found := false
	for i := range r.Registrations {
		reg := &r.Registrations[i]
		if aor != "" && !SameURI(reg.AOR, aor) {
			continue
		}
		d, listed := reg.decide(contact)
		if aor == "" && !listed {
			continue // with no AOR given, only registrations that list the UE count
		}
		if aor != "" {
			return d
		}
		if !found || d.Action > best.Action || d.Action == best.Action && d.Initial && !best.Initial {
			best, found = d, true
		}
	}
	return best
}

// decide applies the table of Decide to one registration; listed reports
// whether the registration lists the contact.
func (reg *Registration) decide(contact string) (Decision, bool) {
	var c *Contact
	for i := range reg.Contacts {
		if SameURI(reg.Contacts[i].URI, contact) {
			c = &reg.Contacts[i]
			break
		}
	}
	if c == nil {
		if reg.State == RegTerminated {
			return Decision{Action: ActionTerminated}, false
		}
		return Decision{}, false
	}
	d := Decision{Event: c.Event}
	if c.HasExpires {
		d.Expires, d.HasExpires = seconds(c.Expires), true
	}
	if c.State == ContactTerminated {
		switch c.Event {
		case EventDeactivated:
			d.Action, d.Initial = ActionReregister, true
		case EventProbation:
			d.Action, d.Initial = ActionReregister, true
			if c.HasRetryAfter {
				d.RetryAfter = seconds(c.RetryAfter)
			}
		default:
			d.Action = ActionTerminated
		}
		d.Expires, d.HasExpires = 0, false
		return d, true
	}
	switch {
	case reg.State == RegTerminated:
		d.Action = ActionTerminated
		d.Expires, d.HasExpires = 0, false
	case c.Event == EventShortened:
		d.Action = ActionReregister
	}
	return d, true
}

// seconds converts an xs:unsignedLong count of seconds, saturating instead of
// overflowing time.Duration (about 292 years).
func seconds(n uint64) time.Duration {
	const max = uint64(1<<63-1) / uint64(time.Second)
	if n > max {
		n = max
	}
	return time.Duration(n) * time.Second
}

// Freshness classifies a document against the subscription's history.
type Freshness uint8

// Freshness values.
const (
	// Fresh: apply the document.
	Fresh Freshness = iota
	// Stale: its version is not above the last applied one (a duplicated
	// or reordered NOTIFY); ignore it.
	Stale
	// Gap: a partial document that does not follow the last applied one
	// (or arrives before any full one); a NOTIFY was missed, so refresh
	// the subscription to get full state.
	Gap
)

func (f Freshness) String() string {
	switch f {
	case Fresh:
		return "fresh"
	case Stale:
		return "stale"
	case Gap:
		return "gap"
	}
	return fmt.Sprintf("Freshness(%d)", uint8(f))
}

// Freshness checks r's version against last, the version of the last
// document applied in this subscription (haveLast false before the first).
// Versions count from 0 and rise by one per NOTIFY within a subscription
// (RFC 3680 §5.3 [R]); a full document may skip ahead, since it replaces
// all state, but a partial one must be exactly last+1.
func (r *Reginfo) Freshness(last uint64, haveLast bool) Freshness {
	switch {
	case !haveLast && r.State == StateFull:
		return Fresh
	case !haveLast:
		return Gap
	case r.Version <= last:
		return Stale
	case r.State == StatePartial && r.Version != last+1:
		return Gap
	}
	return Fresh
}
