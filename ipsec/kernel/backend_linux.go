package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/imsue/imsue/ipsec"
)

// Backend installs SA sets as XFRM states and policies in one network
// namespace. It implements ipsec.Backend and is safe for concurrent use.
type Backend struct {
	s *session

	mu       sync.Mutex
	live     map[uint64]*installed // by SASet.ID
	leftover []*installed          // failed installs whose rollback failed too
	closed   bool
}

var _ ipsec.Backend = (*Backend)(nil)

// installed is what Install created for one set, without keys.
type installed struct {
	added    time.Time // when Install added the states: their lifetimes count from it
	reqid    uint32
	record   string
	states   []stateRef
	policies []policyRef
}

type stateRef struct {
	name string
	id   netlink.XfrmState // Src, Dst, Proto, Spi only
}

type policyRef struct {
	name string
	sel  netlink.XfrmPolicy // selector and Dir; Tmpls unused by delete
}

// New opens the backend in cfg's network namespace. It fails with an error
// wrapping ipsec.ErrUnsupported when the process lacks CAP_NET_ADMIN or the
// kernel has no XFRM netlink interface; a kernel without ESP or without an
// algorithm is only detected by Install, which is when the SA is known.
func New(cfg Config) (*Backend, error) {
	s, err := openSession(cfg)
	if err != nil {
		return nil, err
	}
	return &Backend{s: s, live: map[uint64]*installed{}}, nil
}

// Name returns "kernel".
func (b *Backend) Name() string { return "kernel" }

func setName(set *ipsec.SASet) string {
	if set == nil {
		return "SA set <nil>"
	}
	return fmt.Sprintf("SA set %d", set.ID)
}

var errClosed = errors.New("backend closed")

// Install installs the four states and four policies of set as a unit,
// tagged with a fresh reqid of imsue's range, after writing its state
// record. On any error it removes what it created (and the record) before
// returning; if that removal fails too, both errors are returned, the record
// stays (for Flush), and Close tries again. Installing a set whose ID is
// already installed by this Backend is an error.
func (b *Backend) Install(ctx context.Context, set *ipsec.SASet) error {
	objs, err := buildSet(set, 0)
	if err != nil {
		return &Error{Op: "check", Object: setName(set), Err: err}
	}
	defer objs.wipe()
	return b.install(ctx, set, objs)
}

// install is Install after validation: record, objects, rollback.
func (b *Backend) install(ctx context.Context, set *ipsec.SASet, objs *setObjects) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return &Error{Op: "install", Object: setName(set), Err: errClosed}
	}
	if _, dup := b.live[set.ID]; dup {
		return &Error{Op: "install", Object: setName(set), Err: errors.New("already installed")}
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: "install", Object: setName(set), Err: err}
	}
	reqid, path, err := b.s.store.create(set)
	if err != nil {
		return &Error{Op: "write state record", Object: b.s.store.dir, Err: err}
	}
	objs.setReqID(reqid)
	inst := &installed{reqid: reqid, record: path, added: time.Now()}
	if err := b.add(ctx, set, objs, inst); err != nil {
		if rbErr := b.del(inst); rbErr != nil {
			b.leftover = append(b.leftover, inst)
			return errors.Join(err, &Error{Op: "roll back", Object: setName(set), Err: rbErr})
		}
		if rmErr := b.s.store.remove(path); rmErr != nil {
			return errors.Join(err, &Error{Op: "roll back", Object: setName(set), Err: rmErr})
		}
		return err
	}
	b.live[set.ID] = inst
	return nil
}

// add creates the states, then the policies, recording each in inst as
// soon as the kernel has it.
func (b *Backend) add(ctx context.Context, set *ipsec.SASet, objs *setObjects, inst *installed) error {
	for i := range objs.states {
		if err := ctx.Err(); err != nil {
			return &Error{Op: "install", Object: setName(set), Err: err}
		}
		st := &objs.states[i]
		if err := b.s.h.XfrmStateAdd(st); err != nil {
			return &Error{Op: "add SA", Object: objs.names[i], Err: stateError(&set.SAs[i], objs.v6, err)}
		}
		inst.states = append(inst.states, stateRef{name: objs.names[i], id: stateID(st)})
	}
	for i := range objs.policies {
		if err := ctx.Err(); err != nil {
			return &Error{Op: "install", Object: setName(set), Err: err}
		}
		p := &objs.policies[i]
		name := fmt.Sprintf("%s for SA %s", p.Dir, objs.names[i])
		if err := b.s.h.XfrmPolicyAdd(p); err != nil {
			return &Error{Op: "add policy", Object: name, Err: policyError(err)}
		}
		inst.policies = append(inst.policies, policyRef{name: name, sel: *p})
	}
	return nil
}

// Extend updates set's four states (XFRM_MSG_UPDSA) so that they
// hard-expire at until. The kernel counts a state's add-expiry from the
// time it was added, which an update keeps, so the new limit is until
// minus the install time. Only a set this Backend installed can be
// extended.
func (b *Backend) Extend(ctx context.Context, set *ipsec.SASet, until time.Time) error {
	if set == nil {
		return &Error{Op: "extend", Object: setName(set), Err: errors.New("nil SA set")}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	inst, ok := b.live[set.ID]
	if b.closed || !ok {
		return &Error{Op: "extend", Object: setName(set), Err: errors.New("not installed by this backend")}
	}
	objs, err := buildSet(set, inst.reqid)
	if err != nil {
		return &Error{Op: "check", Object: setName(set), Err: err}
	}
	defer objs.wipe()
	hard, soft := lifetimeSeconds(until.Sub(inst.added))
	if hard == 0 { // until has passed: expire at the next second, never "no limit"
		hard, soft = 1, 1
	}
	for i := range objs.states {
		if err := ctx.Err(); err != nil {
			return &Error{Op: "extend", Object: setName(set), Err: err}
		}
		st := &objs.states[i]
		st.Limits.TimeHard, st.Limits.TimeSoft = hard, soft
		if err := b.s.h.XfrmStateUpdate(st); err != nil {
			return &Error{Op: "update SA", Object: objs.names[i], Err: opError(err)}
		}
	}
	return nil
}

// del deletes inst's states, then its policies. Objects already gone are
// not an error; objects that fail to go stay in inst, for a later retry.
func (b *Backend) del(inst *installed) error {
	var errs []error
	states := inst.states[:0]
	for _, r := range inst.states {
		if err := b.s.h.XfrmStateDel(&r.id); err != nil && !notFound(err) {
			errs = append(errs, &Error{Op: "delete SA", Object: r.name, Err: opError(err)})
			states = append(states, r)
		}
	}
	inst.states = states
	pols := inst.policies[:0]
	for _, r := range inst.policies {
		if err := b.s.h.XfrmPolicyDel(&r.sel); err != nil && !notFound(err) {
			errs = append(errs, &Error{Op: "delete policy", Object: r.name, Err: opError(err)})
			pols = append(pols, r)
		}
	}
	inst.policies = pols
	return errors.Join(errs...)
}

// Remove removes set's states and policies and its state record. It is
// idempotent: a set already removed, or never installed, is not an error.
// A set this Backend did not install (for instance one a previous process
// left) is looked up in the kernel by its SAs' destinations and SPIs and its
// policies' selectors, and removed only where the objects carry a reqid of
// imsue's range.
func (b *Backend) Remove(ctx context.Context, set *ipsec.SASet) error {
	if set == nil {
		return &Error{Op: "remove", Object: setName(set), Err: errors.New("nil SA set")}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil // Close removed everything
	}
	inst, ok := b.live[set.ID]
	if !ok {
		return b.removeForeign(ctx, set)
	}
	if err := b.del(inst); err != nil {
		return err
	}
	delete(b.live, set.ID)
	if err := b.s.store.remove(inst.record); err != nil {
		return &Error{Op: "remove", Object: setName(set), Err: err}
	}
	return nil
}

// removeForeign removes the imsue-tagged objects that match set.
func (b *Backend) removeForeign(ctx context.Context, set *ipsec.SASet) error {
	objs, err := buildSet(set, 0)
	if err != nil {
		return &Error{Op: "check", Object: setName(set), Err: err}
	}
	objs.wipe()
	var errs []error
	reqids := map[uint32]bool{}
	for i := range objs.states {
		if err := ctx.Err(); err != nil {
			return &Error{Op: "remove", Object: setName(set), Err: err}
		}
		id := stateID(&objs.states[i])
		got, err := b.s.h.XfrmStateGet(&id)
		if got != nil {
			wipeState(got)
		}
		switch {
		case notFound(err):
			continue
		case err != nil:
			errs = append(errs, &Error{Op: "get SA", Object: objs.names[i], Err: opError(err)})
			continue
		case !Owned(uint32(got.Reqid)):
			continue // same SPI and destination, but not imsue's
		}
		if err := b.s.h.XfrmStateDel(&id); err != nil && !notFound(err) {
			errs = append(errs, &Error{Op: "delete SA", Object: objs.names[i], Err: opError(err)})
			continue
		}
		reqids[uint32(got.Reqid)] = true
	}
	for i := range objs.policies {
		p := objs.policies[i]
		got, err := b.s.h.XfrmPolicyGet(&p)
		switch {
		case notFound(err):
			continue
		case err != nil:
			errs = append(errs, &Error{Op: "get policy", Object: objs.names[i], Err: opError(err)})
			continue
		}
		reqid := policyReqID(got)
		if reqid == 0 {
			continue
		}
		byIndex := policyByIndex(got)
		if err := b.s.h.XfrmPolicyDel(&byIndex); err != nil && !notFound(err) {
			errs = append(errs, &Error{Op: "delete policy", Object: objs.names[i], Err: opError(err)})
			continue
		}
		reqids[reqid] = true
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for reqid := range reqids {
		if err := b.s.store.remove(b.s.store.pathOf(reqid)); err != nil {
			errs = append(errs, &Error{Op: "remove", Object: setName(set), Err: err})
		}
	}
	return errors.Join(errs...)
}

// Close removes every set this Backend installed and still holds, then
// releases the netlink socket. Sets whose removal fails keep their state
// records, so Flush can remove them later. Close is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	var errs []error
	for id, inst := range b.live {
		if err := b.del(inst); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := b.s.store.remove(inst.record); err != nil {
			errs = append(errs, &Error{Op: "close", Err: err})
		}
		delete(b.live, id)
	}
	for _, inst := range b.leftover {
		if err := b.del(inst); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := b.s.store.remove(inst.record); err != nil {
			errs = append(errs, &Error{Op: "close", Err: err})
		}
	}
	b.leftover = nil
	b.closed = true
	b.s.close()
	return errors.Join(errs...)
}
