package mt

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/imsue/imsue/ipsec"
)

// The SA sets of one registration through their lifecycle (TS 33.203 §7.1,
// §7.2 and §7.4; TS 24.229 §5.1.1.5.1):
//
//   - A 401 that passes AKA creates a temporary set (Challenged), valid for
//     TemporaryLifetime. A newer 401 replaces a temporary set still pending.
//   - The 200 OK to the REGISTER sent over that set makes it established
//     (Registered): its lifetime becomes max(remaining lifetime of the
//     current set, Expires + ExpiresMargin), capped at MaxLifetime, and it
//     becomes the current set, used for new requests. The previous current
//     set becomes the old set and stays for the transactions in progress.
//   - The old set is dropped when traffic arrives on the new current set
//     (Traffic) or when it expires (Expire). At most one old and one new set
//     exist: a new 401 while an old set remains drops the old set.
//   - A failed (re-)authentication drops the temporary set and keeps the
//     others (Abort). The end of the registration drops all (Clear).
//
// Lifecycle does no I/O and never reads the clock: every method takes the
// time, and the changes come back as Actions for the caller to carry out
// through an ipsec.Backend, in order.
//
// Lifecycle is the authority on expiry: it removes a set when its lifetime
// ends (Expire, NextExpiry). It never changes the SAs it is given, so their
// Lifetime (the kernel's hard expiry, planned by the caller) is only a
// backstop: with a Backend that cannot update an installed SA, plan the
// temporary set with the lifetime it may grow to (or 0 for none), never
// with TemporaryLifetime, or the kernel drops the established set after
// four minutes.

// SetState is where an SA set stands.
type SetState uint8

const (
	// Temporary: created from a 401, waiting for the 200 OK.
	Temporary SetState = iota + 1
	// Established: confirmed by a 200 OK.
	Established
)

func (s SetState) String() string {
	switch s {
	case Temporary:
		return "temporary"
	case Established:
		return "established"
	}
	return fmt.Sprintf("SetState(%d)", uint8(s))
}

// Op is what an Action asks of the caller.
type Op uint8

const (
	// OpInstall: install Set with Backend.Install.
	OpInstall Op = iota + 1
	// OpExtend: Set's lifetime grew to Expires (the set is now established).
	// Nothing needs doing unless the Backend enforces lifetimes and can
	// update installed SAs; the set stays installed either way.
	OpExtend
	// OpRemove: remove Set with Backend.Remove, then release Local to the
	// Allocator.
	OpRemove
)

func (o Op) String() string {
	switch o {
	case OpInstall:
		return "install"
	case OpExtend:
		return "extend"
	case OpRemove:
		return "remove"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Reason says why an Action was taken, for logs and tests.
type Reason uint8

const (
	ReasonChallenged  Reason = iota + 1 // install: a 401 was processed
	ReasonRegistered                    // extend: the 200 OK arrived
	ReasonReplaced                      // remove: a newer 401 replaced this temporary set
	ReasonSuperseded                    // remove: an old set gives way to a newer pair
	ReasonNewSetInUse                   // remove: traffic arrived on the new set
	ReasonExpired                       // remove: the set's lifetime ran out
	ReasonFailed                        // remove: the (re-)authentication failed
	ReasonEnded                         // remove: the registration ended
)

var reasonNames = [...]string{
	ReasonChallenged:  "challenged",
	ReasonRegistered:  "registered",
	ReasonReplaced:    "replaced by a newer challenge",
	ReasonSuperseded:  "superseded",
	ReasonNewSetInUse: "new set in use",
	ReasonExpired:     "expired",
	ReasonFailed:      "authentication failed",
	ReasonEnded:       "registration ended",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Action is one change for the caller to make.
type Action struct {
	Op     Op
	Set    *ipsec.SASet
	Reason Reason
	// Expires is when the set expires (for OpInstall and OpExtend).
	Expires time.Time
	// Local holds the SPIs and ports the local side chose for Set; after
	// OpRemove, hand it to Allocator.Release.
	Local Params
}

func (a Action) String() string {
	var id uint64
	if a.Set != nil {
		id = a.Set.ID
	}
	return fmt.Sprintf("%s SA set %d (%s)", a.Op, id, a.Reason)
}

// Challenge identifies the 401 that created a set, so that a retransmitted
// 401 can be recognised: same nonce, or same Call-ID and CSeq.
type Challenge struct {
	CallID string
	CSeq   uint32
	Nonce  string
}

// same reports whether c and o are the same challenge.
func (c Challenge) same(o Challenge) bool {
	return c.Nonce != "" && c.Nonce == o.Nonce ||
		c.CallID != "" && c.CallID == o.CallID && c.CSeq == o.CSeq
}

// ErrDuplicateChallenge: Challenged was given a 401 that already created a
// set (a retransmission). Check Seen before running AKA.
var ErrDuplicateChallenge = errors.New("mt: retransmitted 401: SA set already created for this challenge")

// SetInfo describes a tracked set.
type SetInfo struct {
	Set       *ipsec.SASet
	State     SetState
	Installed time.Time
	Expires   time.Time
	Challenge Challenge
}

// Lifecycle tracks the SA sets of one registration. The zero value is ready
// to use; it is safe for concurrent use.
type Lifecycle struct {
	mu sync.Mutex
	// cur is the established set in use; old the one it replaced;
	// pending the temporary set of a registration in progress.
	cur, old, pending *SetInfo
	last              Challenge // the latest challenge that created a set
}

// Seen reports whether c repeats a 401 that already created a set (the
// pending one, the current one or the latest one): the caller must then
// neither run AKA again nor create a set.
func (l *Lifecycle) Seen(c Challenge) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen(c)
}

func (l *Lifecycle) seen(c Challenge) bool {
	if c.same(l.last) {
		return true
	}
	for _, e := range [...]*SetInfo{l.pending, l.cur, l.old} {
		if e != nil && c.same(e.Challenge) {
			return true
		}
	}
	return false
}

// Challenged records the temporary set built (PlanUE or PlanPCSCF) from
// the 401 identified by c, and returns the actions: remove a temporary set
// still pending and an old set still kept (at most one old and one new),
// then install set, which expires TemporaryLifetime from now unless a 200
// OK arrives over it. A c that was Seen returns ErrDuplicateChallenge and
// changes nothing.
func (l *Lifecycle) Challenged(now time.Time, c Challenge, set *ipsec.SASet) ([]Action, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen(c) {
		return nil, ErrDuplicateChallenge
	}
	if set == nil {
		return nil, errors.New("mt: Challenged without an SA set")
	}
	local, _, ok := SetParams(set)
	if !ok {
		return nil, fmt.Errorf("mt: SA set %d was not planned by PlanUE or PlanPCSCF", set.ID)
	}
	if l.tracks(set.ID) {
		return nil, fmt.Errorf("mt: SA set %d is already tracked", set.ID)
	}
	acts := l.expire(now, nil)
	if l.pending != nil {
		acts = l.remove(acts, &l.pending, ReasonReplaced)
	}
	if l.old != nil {
		acts = l.remove(acts, &l.old, ReasonSuperseded)
	}
	l.pending = &SetInfo{Set: set, State: Temporary, Installed: now, Expires: now.Add(TemporaryLifetime), Challenge: c}
	l.last = c
	return append(acts, Action{Op: OpInstall, Set: set, Reason: ReasonChallenged, Expires: l.pending.Expires, Local: local}), nil
}

// Registered records the 200 OK to a REGISTER that went over set setID,
// granting expires. If setID is the pending set, it becomes established and
// current, with lifetime max(remaining lifetime of the current set,
// expires + ExpiresMargin) capped at MaxLifetime; the current set becomes
// the old one. If setID is the current set (a re-registration that was not
// challenged), the current set's lifetime grows by the same rule. The
// returned OpExtend carries the new expiry. A set that is neither (it
// expired or was replaced) is an error. Use Clear for a de-registration.
func (l *Lifecycle) Registered(now time.Time, setID uint64, expires time.Duration) ([]Action, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if expires <= 0 {
		return nil, fmt.Errorf("mt: Registered with expires %v: a de-registration ends with Clear", expires)
	}
	acts := l.expire(now, nil)
	life := expires + ExpiresMargin
	if expires > MaxLifetime { // no overflow in the sum
		life = MaxLifetime
	}
	if l.cur != nil {
		life = max(life, l.cur.Expires.Sub(now))
	}
	life = min(life, MaxLifetime)
	var e *SetInfo
	switch {
	case l.pending != nil && l.pending.Set.ID == setID:
		if l.old != nil { // Challenged already dropped it; defensive
			acts = l.remove(acts, &l.old, ReasonSuperseded)
		}
		e = l.pending
		l.old, l.cur, l.pending = l.cur, l.pending, nil
	case l.cur != nil && l.cur.Set.ID == setID:
		e = l.cur
		if !now.Add(life).After(e.Expires) {
			return acts, nil
		}
	default:
		return acts, fmt.Errorf("mt: 200 OK over SA set %d, which is neither pending nor current (expired or replaced?)", setID)
	}
	e.State = Established
	e.Expires = now.Add(life)
	local, _, _ := SetParams(e.Set)
	return append(acts, Action{Op: OpExtend, Set: e.Set, Reason: ReasonRegistered, Expires: e.Expires, Local: local}), nil
}

// Traffic records that a protected message arrived over set setID. When
// that is the current set and an old set remains, the old set is removed:
// the peer has switched to the new one. Other sets are ignored.
func (l *Lifecycle) Traffic(now time.Time, setID uint64) []Action {
	l.mu.Lock()
	defer l.mu.Unlock()
	acts := l.expire(now, nil)
	if l.cur != nil && l.cur.Set.ID == setID && l.old != nil {
		acts = l.remove(acts, &l.old, ReasonNewSetInUse)
	}
	return acts
}

// Abort records that the registration attempt in progress failed (403,
// MAC failure, timeout, or the pending set could not be installed): the
// temporary set is removed, the current and old sets stay. Removing a set
// that failed to install is harmless: Backend.Remove is idempotent.
func (l *Lifecycle) Abort(now time.Time) []Action {
	l.mu.Lock()
	defer l.mu.Unlock()
	acts := l.expire(now, nil)
	if l.pending != nil {
		acts = l.remove(acts, &l.pending, ReasonFailed)
	}
	return acts
}

// Expire removes every set whose lifetime has run out at now. The caller
// calls it at NextExpiry; every other method expires sets first too.
func (l *Lifecycle) Expire(now time.Time) []Action {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expire(now, nil)
}

// Clear removes every set (de-registration, network de-registration,
// P-CSCF restart, shutdown) and forgets the challenges: the next
// registration starts from scratch.
func (l *Lifecycle) Clear() []Action {
	l.mu.Lock()
	defer l.mu.Unlock()
	var acts []Action
	for _, p := range [...]**SetInfo{&l.pending, &l.old, &l.cur} {
		if *p != nil {
			acts = l.remove(acts, p, ReasonEnded)
		}
	}
	l.last = Challenge{}
	return acts
}

// NextExpiry returns the earliest expiry among the tracked sets.
func (l *Lifecycle) NextExpiry() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t time.Time
	for _, e := range [...]*SetInfo{l.pending, l.cur, l.old} {
		if e != nil && (t.IsZero() || e.Expires.Before(t)) {
			t = e.Expires
		}
	}
	return t, !t.IsZero()
}

// Current returns the established set new requests use, or nil.
func (l *Lifecycle) Current() *SetInfo { return l.get(func() *SetInfo { return l.cur }) }

// Pending returns the temporary set of the registration in progress, or nil.
func (l *Lifecycle) Pending() *SetInfo { return l.get(func() *SetInfo { return l.pending }) }

// Old returns the set the current one replaced, kept until the new one
// carries traffic, or nil.
func (l *Lifecycle) Old() *SetInfo { return l.get(func() *SetInfo { return l.old }) }

// get returns a copy of one entry (the SASet pointer is shared).
func (l *Lifecycle) get(f func() *SetInfo) *SetInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := f()
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

func (l *Lifecycle) tracks(id uint64) bool {
	for _, e := range [...]*SetInfo{l.pending, l.cur, l.old} {
		if e != nil && e.Set.ID == id {
			return true
		}
	}
	return false
}

// expire appends the removal of every set expired at now.
func (l *Lifecycle) expire(now time.Time, acts []Action) []Action {
	for _, p := range [...]**SetInfo{&l.pending, &l.old, &l.cur} {
		if *p != nil && !now.Before((*p).Expires) {
			acts = l.remove(acts, p, ReasonExpired)
		}
	}
	return acts
}

// remove appends the removal of *p and forgets it.
func (l *Lifecycle) remove(acts []Action, p **SetInfo, why Reason) []Action {
	local, _, _ := SetParams((*p).Set)
	acts = append(acts, Action{Op: OpRemove, Set: (*p).Set, Reason: why, Local: local})
	*p = nil
	return acts
}
