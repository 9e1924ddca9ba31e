package mt

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/ipsec"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// sets plans n UE SA sets labelled A, B, C, ... with distinct SPIs and
// client ports (the server ports are kept, as at re-registration).
func planSets(t *testing.T, n int) (map[string]*ipsec.SASet, map[uint64]string, map[string]Params) {
	t.Helper()
	var ck, ik [16]byte
	m := mustParse(t, kamailioServer)[0]
	ep := Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")}
	sets, names, ue := map[string]*ipsec.SASet{}, map[uint64]string{}, map[string]Params{}
	for i := range n {
		name := string(rune('A' + i))
		p := Params{SPIc: uint32(1000 + 2*i), SPIs: uint32(1001 + 2*i), PortC: uint16(61000 + i), PortS: 62000}
		pc := Params{SPIc: uint32(5000 + 2*i), SPIs: uint32(5001 + 2*i), PortC: uint16(7100 + i), PortS: 7200}
		set, err := PlanUE(ep, p, pc, m, ck, ik, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		sets[name], names[set.ID], ue[name] = set, name, p
	}
	return sets, names, ue
}

// step is one event of a scenario and what it must produce.
type step struct {
	at   time.Duration // since t0
	do   string        // challenged, registered, traffic, abort, expire, clear
	set  string        // label of the set (challenged, registered, traffic)
	ch   Challenge     // challenged
	exp  time.Duration // registered: granted expiry
	want []string      // actions as "op label reason [+expires since t0]"
	err  error         // wanted error (errors.Is), or nil
	// state after the step: labels of current, old, pending ("" for none)
	cur, old, pending string
}

func c(callID string, cseq uint32, nonce string) Challenge {
	return Challenge{CallID: callID, CSeq: cseq, Nonce: nonce}
}

const (
	tmp  = TemporaryLifetime
	mrg  = ExpiresMargin
	hour = time.Hour
)

func TestLifecycle(t *testing.T) {
	scenarios := []struct {
		name  string
		steps []step
	}{
		{"initial registration", []step{
			{at: 0, do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{at: time.Second, do: "registered", set: "A", exp: 600000 * time.Second,
				want: []string{"extend A registered +166h40m31s"}, cur: "A"},
		}},
		{"retransmitted 401: same nonce, same Call-ID/CSeq, after the 200", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "challenged", set: "B", ch: c("y", 9, "n1"), err: ErrDuplicateChallenge, pending: "A"},
			{do: "challenged", set: "B", ch: c("x", 1, "other"), err: ErrDuplicateChallenge, pending: "A"},
			{at: time.Second, do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h0m31s"}, cur: "A"},
			{at: 2 * time.Second, do: "challenged", set: "B", ch: c("x", 1, "n1"), err: ErrDuplicateChallenge, cur: "A"},
		}},
		{"re-registration: old set kept until traffic on the new one", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h0m30s"}, cur: "A"},
			{at: 30 * time.Minute, do: "challenged", set: "B", ch: c("x", 3, "n2"), want: []string{"install B challenged +34m0s"}, cur: "A", pending: "B"},
			{at: 30 * time.Minute, do: "traffic", set: "B", cur: "A", pending: "B"}, // the protected REGISTER over B
			{at: 30*time.Minute + time.Second, do: "registered", set: "B", exp: hour,
				want: []string{"extend B registered +1h30m31s"}, cur: "B", old: "A"},
			{at: 31 * time.Minute, do: "traffic", set: "A", cur: "B", old: "A"}, // a transaction in progress on A
			{at: 32 * time.Minute, do: "traffic", set: "B", want: []string{"remove A new set in use"}, cur: "B"},
		}},
		{"re-registration: old set expires without traffic", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h0m30s"}, cur: "A"},
			{at: 50 * time.Minute, do: "challenged", set: "B", ch: c("x", 3, "n2"), want: []string{"install B challenged +54m0s"}, cur: "A", pending: "B"},
			{at: 50 * time.Minute, do: "registered", set: "B", exp: hour, want: []string{"extend B registered +1h50m30s"}, cur: "B", old: "A"},
			{at: hour + 30*time.Second - time.Nanosecond, do: "expire", cur: "B", old: "A"},
			{at: hour + 30*time.Second, do: "expire", want: []string{"remove A expired"}, cur: "B"},
		}},
		{"new lifetime: the old set's remaining lifetime when longer", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: 10 * hour, want: []string{"extend A registered +10h0m30s"}, cur: "A"},
			{at: hour, do: "challenged", set: "B", ch: c("x", 3, "n2"), want: []string{"install B challenged +1h4m0s"}, cur: "A", pending: "B"},
			{at: hour, do: "registered", set: "B", exp: 60 * time.Second, want: []string{"extend B registered +10h0m30s"}, cur: "B", old: "A"},
		}},
		{"failed re-authentication keeps the old set", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h0m30s"}, cur: "A"},
			{at: 30 * time.Minute, do: "challenged", set: "B", ch: c("x", 3, "n2"), want: []string{"install B challenged +34m0s"}, cur: "A", pending: "B"},
			{at: 30 * time.Minute, do: "abort", want: []string{"remove B authentication failed"}, cur: "A"},
			{at: 31 * time.Minute, do: "abort", cur: "A"},
			{at: 31 * time.Minute, do: "registered", set: "B", exp: hour, err: errAny, cur: "A"},
		}},
		{"failed initial authentication", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{at: time.Second, do: "abort", want: []string{"remove A authentication failed"}},
			// The 401 of the failed attempt is still recognised.
			{at: 2 * time.Second, do: "challenged", set: "B", ch: c("x", 1, "n1"), err: ErrDuplicateChallenge},
		}},
		{"temporary set expires before the 200", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{at: tmp - time.Nanosecond, do: "expire", pending: "A"},
			{at: tmp, do: "registered", set: "A", exp: hour, want: []string{"remove A expired"}, err: errAny},
		}},
		{"a newer 401 replaces the pending set", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{at: time.Second, do: "challenged", set: "B", ch: c("x", 2, "n2"),
				want: []string{"remove A replaced by a newer challenge", "install B challenged +4m1s"}, pending: "B"},
			{at: 2 * time.Second, do: "registered", set: "A", exp: hour, err: errAny, pending: "B"},
		}},
		{"a third set drops the old one (at most one old and one new)", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h0m30s"}, cur: "A"},
			{at: time.Minute, do: "challenged", set: "B", ch: c("x", 3, "n2"), want: []string{"install B challenged +5m0s"}, cur: "A", pending: "B"},
			{at: time.Minute, do: "registered", set: "B", exp: hour, want: []string{"extend B registered +1h1m30s"}, cur: "B", old: "A"},
			{at: 2 * time.Minute, do: "challenged", set: "C", ch: c("x", 5, "n3"),
				want: []string{"remove A superseded", "install C challenged +6m0s"}, cur: "B", pending: "C"},
			{at: 2 * time.Minute, do: "registered", set: "C", exp: hour, want: []string{"extend C registered +1h2m30s"}, cur: "C", old: "B"},
		}},
		{"unchallenged re-registration extends the current set", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h0m30s"}, cur: "A"},
			{at: 30 * time.Minute, do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h30m30s"}, cur: "A"},
			{at: 40 * time.Minute, do: "registered", set: "A", exp: time.Minute, cur: "A"}, // shorter: unchanged
		}},
		{"current set expires: registration lost", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h0m30s"}, cur: "A"},
			{at: 2 * hour, do: "traffic", set: "A", want: []string{"remove A expired"}},
		}},
		{"clear removes everything and forgets the challenges", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: hour, want: []string{"extend A registered +1h0m30s"}, cur: "A"},
			{do: "challenged", set: "B", ch: c("x", 3, "n2"), want: []string{"install B challenged +4m0s"}, cur: "A", pending: "B"},
			{do: "registered", set: "B", exp: hour, want: []string{"extend B registered +1h0m30s"}, cur: "B", old: "A"},
			{do: "challenged", set: "C", ch: c("x", 5, "n3"), want: []string{"remove A superseded", "install C challenged +4m0s"}, cur: "B", pending: "C"},
			{do: "clear", want: []string{"remove C registration ended", "remove B registration ended"}},
			{do: "challenged", set: "D", ch: c("x", 5, "n3"), want: []string{"install D challenged +4m0s"}, pending: "D"},
		}},
		{"lifetime capped at 2^32-1 s", []step{
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "registered", set: "A", exp: 1 << 32 * time.Second, want: []string{fmt.Sprintf("extend A registered +%v", MaxLifetime)}, cur: "A"},
		}},
		{"bad calls", []step{
			{do: "registered", set: "A", exp: hour, err: errAny},
			{do: "challenged", set: "A", ch: c("x", 1, "n1"), want: []string{"install A challenged +4m0s"}, pending: "A"},
			{do: "challenged", set: "A", ch: c("x", 2, "n2"), err: errAny, pending: "A"}, // already tracked
			{do: "registered", set: "A", exp: 0, err: errAny, pending: "A"},
			{do: "traffic", set: "Z", pending: "A"},
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sets, names, ue := planSets(t, 4)
			var l Lifecycle
			for i, s := range sc.steps {
				now := t0.Add(s.at)
				var (
					acts []Action
					err  error
				)
				id := uint64(1 << 60) // unknown set
				if set := sets[s.set]; set != nil {
					id = set.ID
				}
				switch s.do {
				case "challenged":
					seen := l.Seen(s.ch)
					acts, err = l.Challenged(now, s.ch, sets[s.set])
					if seen != errors.Is(err, ErrDuplicateChallenge) {
						t.Errorf("step %d: Seen = %v but Challenged error %v", i, seen, err)
					}
				case "registered":
					acts, err = l.Registered(now, id, s.exp)
				case "traffic":
					acts = l.Traffic(now, id)
				case "abort":
					acts = l.Abort(now)
				case "expire":
					acts = l.Expire(now)
				case "clear":
					acts = l.Clear()
				default:
					t.Fatalf("step %d: unknown %q", i, s.do)
				}
				switch {
				case s.err == errAny && err == nil, s.err == nil && err != nil:
					t.Fatalf("step %d (%s %s): error %v, want %v", i, s.do, s.set, err, s.err)
				case s.err != nil && s.err != errAny && !errors.Is(err, s.err):
					t.Fatalf("step %d (%s %s): error %v, want %v", i, s.do, s.set, err, s.err)
				}
				var got []string
				for _, a := range acts {
					got = append(got, describe(a, names))
					if a.Local != ue[names[a.Set.ID]] {
						t.Errorf("step %d: %s: Local %+v, want %+v", i, a, a.Local, ue[names[a.Set.ID]])
					}
					if a.Op != OpRemove {
						checkLifetime(t, i, &l, a)
					}
				}
				if strings.Join(got, "; ") != strings.Join(s.want, "; ") {
					t.Errorf("step %d (%s %s): actions\n got [%s]\nwant [%s]", i, s.do, s.set, strings.Join(got, "; "), strings.Join(s.want, "; "))
				}
				for _, r := range []struct {
					role string
					e    *SetInfo
					want string
				}{{"current", l.Current(), s.cur}, {"old", l.Old(), s.old}, {"pending", l.Pending(), s.pending}} {
					name := ""
					if r.e != nil {
						name = names[r.e.Set.ID]
					}
					if name != r.want {
						t.Errorf("step %d (%s %s): %s set %q, want %q", i, s.do, s.set, r.role, name, r.want)
					}
				}
			}
		})
	}
}

// errAny stands for "some error" in a step.
var errAny = errors.New("any error")

func describe(a Action, names map[uint64]string) string {
	s := fmt.Sprintf("%s %s %s", a.Op, names[a.Set.ID], a.Reason)
	if a.Op != OpRemove {
		s += fmt.Sprintf(" +%v", a.Expires.Sub(t0))
	}
	return s
}

// checkLifetime checks that an installed or extended set is tracked with
// the action's expiry and the right state, and that its SAs were left as
// planned (one hour in planSets).
func checkLifetime(t *testing.T, step int, l *Lifecycle, a Action) {
	t.Helper()
	var e *SetInfo
	for _, x := range []*SetInfo{l.Current(), l.Pending()} {
		if x != nil && x.Set.ID == a.Set.ID {
			e = x
		}
	}
	if e == nil {
		t.Errorf("step %d: %s: set not tracked as current or pending", step, a)
		return
	}
	if !e.Expires.Equal(a.Expires) {
		t.Errorf("step %d: %s: tracked expiry %v, action %v", step, a, e.Expires, a.Expires)
	}
	wantState := map[Op]SetState{OpInstall: Temporary, OpExtend: Established}[a.Op]
	if e.State != wantState {
		t.Errorf("step %d: %s: state %s, want %s", step, a, e.State, wantState)
	}
	for i, sa := range a.Set.SAs {
		if sa.Lifetime != time.Hour {
			t.Errorf("step %d: %s: SA #%d lifetime changed to %v", step, a, i+1, sa.Lifetime)
		}
	}
}

func TestLifecycleNextExpiry(t *testing.T) {
	sets, _, _ := planSets(t, 2)
	var l Lifecycle
	if _, ok := l.NextExpiry(); ok {
		t.Error("empty lifecycle has an expiry")
	}
	l.Challenged(t0, c("x", 1, "n1"), sets["A"])
	l.Registered(t0, sets["A"].ID, hour)
	l.Challenged(t0.Add(time.Minute), c("x", 3, "n2"), sets["B"])
	got, ok := l.NextExpiry()
	if want := t0.Add(time.Minute + tmp); !ok || !got.Equal(want) {
		t.Errorf("NextExpiry = %v, %v; want the temporary set's %v", got, ok, want)
	}
	l.Abort(t0.Add(2 * time.Minute))
	got, ok = l.NextExpiry()
	if want := t0.Add(hour + mrg); !ok || !got.Equal(want) {
		t.Errorf("NextExpiry = %v, %v; want the current set's %v", got, ok, want)
	}
}

func TestLifecycleChallengedErrors(t *testing.T) {
	var l Lifecycle
	if _, err := l.Challenged(t0, c("x", 1, "n"), nil); err == nil {
		t.Error("nil set accepted")
	}
	if _, err := l.Challenged(t0, c("x", 1, "n"), &ipsec.SASet{ID: 99}); err == nil {
		t.Error("set of the wrong shape accepted")
	}
	if l.Pending() != nil || l.Seen(c("x", 1, "n")) {
		t.Error("a refused set left state behind")
	}
	// An empty challenge never matches another.
	if l.Seen(Challenge{}) {
		t.Error("empty challenge seen")
	}
}

func TestLifecycleWithRecorder(t *testing.T) {
	// The actions, carried out in order on the Backend test double, never
	// install a set twice or reuse a live SPI, and leave nothing at the end.
	sets, _, _ := planSets(t, 4)
	var (
		l   Lifecycle
		rec ipsec.Recorder
	)
	run := func(acts []Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts {
			switch a.Op {
			case OpInstall:
				if err := rec.Install(t.Context(), a.Set); err != nil {
					t.Fatal(err)
				}
			case OpRemove:
				rec.Remove(t.Context(), a.Set)
			}
		}
	}
	now := t0
	run(l.Challenged(now, c("x", 1, "n1"), sets["A"]))
	run(l.Registered(now, sets["A"].ID, hour))
	for i, name := range []string{"B", "C", "D"} {
		now = now.Add(30 * time.Minute)
		run(l.Challenged(now, c("x", uint32(3+2*i), "n"+name), sets[name]))
		run(l.Registered(now, sets[name].ID, hour))
		if live := len(rec.Live()); live != 2 {
			t.Errorf("after re-registration %s: %d live sets, want 2", name, live)
		}
		run(l.Traffic(now, sets[name].ID), nil)
		if live := len(rec.Live()); live != 1 {
			t.Errorf("after traffic on %s: %d live sets, want 1", name, live)
		}
	}
	run(l.Clear(), nil)
	if live := rec.Live(); len(live) != 0 {
		t.Errorf("after Clear: live sets %v", live)
	}
}

func TestActionString(t *testing.T) {
	if s := (Action{}).String(); !strings.Contains(s, "set 0") {
		t.Errorf("zero Action: %q", s)
	}
	if s := (Action{Op: OpRemove, Set: &ipsec.SASet{ID: 7}, Reason: ReasonExpired}).String(); s != "remove SA set 7 (expired)" {
		t.Errorf("Action.String() = %q", s)
	}
	if Reason(99).String() != "Reason(99)" || Op(9).String() != "Op(9)" || SetState(5).String() != "SetState(5)" {
		t.Error("unknown enum values are not named by number")
	}
}
