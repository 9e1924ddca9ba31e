package kernel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/imsue/imsue/ipsec"
)

// group is one imsue set found in a namespace: what List reports, plus the
// identities Flush deletes by.
type group struct {
	set      Set
	states   []netlink.XfrmState  // identities (stateID)
	policies []netlink.XfrmPolicy // index and dir (policyByIndex)
	record   string               // path of the state record, if any
	alive    bool                 // the record's owner still runs
}

// inventory collects the imsue-tagged states and policies of the
// namespace and its state records, by reqid.
func (s *session) inventory() (map[uint32]*group, error) {
	states, pols, err := s.dump()
	if err != nil {
		return nil, err
	}
	recs, err := s.store.list()
	if err != nil {
		return nil, &Error{Op: "read state records", Object: s.store.dir, Err: err}
	}
	groups := map[uint32]*group{}
	get := func(reqid uint32) *group {
		g := groups[reqid]
		if g == nil {
			g = &group{set: Set{ReqID: reqid}}
			groups[reqid] = g
		}
		return g
	}
	for i := range states {
		st := &states[i]
		if !Owned(uint32(st.Reqid)) {
			continue
		}
		g := get(uint32(st.Reqid))
		g.set.States = append(g.set.States, reportState(st))
		g.states = append(g.states, stateID(st))
	}
	for i := range pols {
		p := &pols[i]
		reqid := policyReqID(p)
		if reqid == 0 {
			continue
		}
		g := get(reqid)
		g.set.Policies = append(g.set.Policies, reportPolicy(p))
		g.policies = append(g.policies, policyByIndex(p))
	}
	for reqid, l := range recs {
		g := get(reqid)
		g.record = l.path
		g.set.Owner = l.owner()
		g.alive = g.set.Owner.Alive
	}
	return groups, nil
}

func reportState(st *netlink.XfrmState) State {
	r := State{
		Src:          addrOf(st.Src),
		Dst:          addrOf(st.Dst),
		SPI:          uint32(st.Spi),
		ReplayWindow: uint8(st.ReplayWindow),
		HardLifetime: time.Duration(min(st.Limits.TimeHard, uint64(1<<32))) * time.Second,
		Bytes:        st.Statistics.Bytes,
		Packets:      st.Statistics.Packets,
	}
	if sel := st.Selector; sel != nil {
		r.SrcPort, r.DstPort = uint16(sel.SrcPort), uint16(sel.DstPort)
	}
	if st.Auth != nil {
		r.Auth = authName(st.Auth.Name)
	}
	if st.Crypt != nil {
		r.Enc = encName(st.Crypt.Name)
	}
	return r
}

func reportPolicy(p *netlink.XfrmPolicy) Policy {
	r := Policy{Priority: uint32(p.Priority), Index: uint32(p.Index)}
	switch p.Dir {
	case netlink.XFRM_DIR_OUT:
		r.Dir = ipsec.Out
	case netlink.XFRM_DIR_IN:
		r.Dir = ipsec.In
	}
	if p.Src != nil {
		r.Src = netip.AddrPortFrom(addrOf(p.Src.IP), uint16(p.SrcPort))
	}
	if p.Dst != nil {
		r.Dst = netip.AddrPortFrom(addrOf(p.Dst.IP), uint16(p.DstPort))
	}
	for _, t := range p.Tmpls {
		if Owned(uint32(t.Reqid)) {
			r.SPI = uint32(t.Spi)
			break
		}
	}
	return r
}

// List returns the imsue SA sets of cfg's network namespace, by reqid: the
// tagged states and policies and the state records. It never reports keys,
// and it never reports another program's objects.
func List(ctx context.Context, cfg Config) ([]Set, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "list", Err: err}
	}
	s, err := openSession(cfg)
	if err != nil {
		return nil, err
	}
	defer s.close()
	groups, err := s.inventory()
	if err != nil {
		return nil, err
	}
	out := make([]Set, 0, len(groups))
	for _, g := range groups {
		slices.SortFunc(g.set.States, func(a, b State) int { return cmp.Compare(a.SPI, b.SPI) })
		slices.SortFunc(g.set.Policies, func(a, b Policy) int {
			return cmp.Or(cmp.Compare(a.Dir, b.Dir), cmp.Compare(a.SPI, b.SPI))
		})
		out = append(out, g.set)
	}
	slices.SortFunc(out, func(a, b Set) int { return cmp.Compare(a.ReqID, b.ReqID) })
	return out, nil
}

// Flush removes imsue SA sets from cfg's network namespace: all of them
// (FlushAll), or those whose owning process is gone and those without a
// state record (FlushStale). For each set it deletes the states, then the
// policies, then the record; objects that vanish meanwhile are not an
// error. Another program's states and policies are never touched. Flush
// continues after a failed deletion and returns what it removed with the
// errors joined.
func Flush(ctx context.Context, cfg Config, mode FlushMode) (Flushed, error) {
	var n Flushed
	if mode != FlushAll && mode != FlushStale {
		return n, &Error{Op: "flush", Err: fmt.Errorf("unknown mode %v", mode)}
	}
	s, err := openSession(cfg)
	if err != nil {
		return n, err
	}
	defer s.close()
	groups, err := s.inventory()
	if err != nil {
		return n, err
	}
	reqids := make([]uint32, 0, len(groups))
	for reqid := range groups {
		reqids = append(reqids, reqid)
	}
	slices.Sort(reqids)
	var errs []error
	for _, reqid := range reqids {
		if err := ctx.Err(); err != nil {
			errs = append(errs, &Error{Op: "flush", Err: err})
			break
		}
		g := groups[reqid]
		if mode == FlushStale && g.alive {
			continue
		}
		failed := false
		for i := range g.states {
			err := s.h.XfrmStateDel(&g.states[i])
			switch {
			case err == nil:
				n.States++
			case !notFound(err):
				failed = true
				errs = append(errs, &Error{Op: "delete SA", Object: fmt.Sprintf("spi 0x%08x of reqid 0x%08x", g.states[i].Spi, reqid), Err: opError(err)})
			}
		}
		for i := range g.policies {
			err := s.h.XfrmPolicyDel(&g.policies[i])
			switch {
			case err == nil:
				n.Policies++
			case !notFound(err):
				failed = true
				errs = append(errs, &Error{Op: "delete policy", Object: fmt.Sprintf("index %d of reqid 0x%08x", g.policies[i].Index, reqid), Err: opError(err)})
			}
		}
		if len(g.states)+len(g.policies) > 0 && !failed {
			n.Sets++
		}
		if !failed && g.record != "" {
			if err := s.store.remove(g.record); err != nil {
				errs = append(errs, &Error{Op: "remove state record", Object: g.record, Err: err})
			}
		}
	}
	return n, errors.Join(errs...)
}
