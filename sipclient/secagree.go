package sipclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// Glue between the registration and package mt (RFC 3329 sec-agree,
// TS 33.203 SAs) and the ipsec.Backend.

// offer is one Security-Client: the UE's fresh SPIs and client port
// (port_uc, bound here and owned by the offer until a set adopts it) and its
// mechanisms in preference order.
type offer struct {
	params mt.Params
	mechs  []mt.Mechanism
	value  string // the Security-Client header value
	// adopted: a set owns params already (a re-challenge answers with the
	// same Security-Client); dropping the offer releases nothing.
	adopted bool
}

// saState is one SA set of the UE and what it was agreed from.
type saState struct {
	set    *ipsec.SASet
	mech   mt.Mechanism // the Security-Server entry chosen
	ue     mt.Params
	pcscf  mt.Params
	verify []string // the Security-Server header values, byte for byte
}

// newOffer takes new SPIs and a new port_uc from the mt.Allocator (port_uc
// differs from port_us, from the previous one and from every one held,
// TS 33.203 §7.4), binds port_uc now, so the number is the UE's until
// released, and builds the Security-Client. port_us is the Client's, kept
// for its whole life.
func (c *Client) newOffer() (*offer, error) {
	if c.s.ClientPort != 0 && c.current() == nil {
		return c.fixedOffer()
	}
	p, err := c.alloc.Allocate()
	if err != nil {
		return nil, fmt.Errorf("allocating SPIs and port_uc: %w", err)
	}
	for tries := 0; ; tries++ {
		_, err = c.tp.BindUDP(netip.AddrPortFrom(c.local, p.PortC))
		if err == nil {
			break
		}
		if tries == 16 {
			c.alloc.Release(p)
			return nil, fmt.Errorf("allocating port_uc: %w", err)
		}
		if p, err = c.alloc.PortBusy(p.PortC); err != nil {
			c.alloc.Release(p)
			return nil, fmt.Errorf("allocating port_uc: %w", err)
		}
	}
	return c.buildOffer(p)
}

// fixedOffer is newOffer with Config.ClientPort as port_uc, for the
// initial registration (re-registrations take new ports, TS 33.203 §7.4).
// The port is the user's choice: if it cannot be bound, that is the error.
func (c *Client) fixedOffer() (*offer, error) {
	p, err := c.alloc.AllocateAt(c.s.ClientPort)
	if err != nil {
		return nil, fmt.Errorf("port_uc %d: %w: %w", c.s.ClientPort, ErrLocalAddress, err)
	}
	if _, err := c.tp.BindUDP(netip.AddrPortFrom(c.local, p.PortC)); err != nil {
		c.alloc.Release(p)
		return nil, fmt.Errorf("port_uc: %w: %w", ErrLocalAddress, err)
	}
	return c.buildOffer(p)
}

// buildOffer makes the Security-Client of bound params (port_us is the
// Client's); on error the params are released.
func (c *Client) buildOffer(p mt.Params) (*offer, error) {
	p.PortS = c.portUS
	mechs, err := mt.Offer(c.s.algs, c.s.ealgs, p)
	if err != nil {
		c.dropOffer(&offer{params: p})
		return nil, fmt.Errorf("building Security-Client: %w", err)
	}
	return &offer{params: p, mechs: mechs, value: mt.FormatSecurity(mechs)}, nil
}

// dropOffer releases an offer no SA set adopted: its port_uc and SPIs.
func (c *Client) dropOffer(o *offer) {
	if o != nil && !o.adopted {
		c.tp.Release(netip.AddrPortFrom(c.local, o.params.PortC))
		c.alloc.Release(o.params)
	}
}

// agree reads the Security-Server of a 401 and chooses the mechanism
// (mt.Choose: highest q among the pairs offered; never a downgrade).
func (c *Client) agree(o *offer, res *sip.Response) (mt.Mechanism, []string, error) {
	vals := headerValues(res, "Security-Server")
	if len(vals) == 0 {
		return mt.Mechanism{}, nil, ErrNoSecurityServer
	}
	server, err := mt.ParseSecurity(vals...)
	if err != nil {
		return mt.Mechanism{}, nil, fmt.Errorf("Security-Server %q: %w", strings.Join(vals, ", "), err)
	}
	m, err := mt.Choose(o.mechs, server)
	if err == nil {
		// Everything the SAs will need from the P-CSCF, checked now: AKA
		// spends an SQN, and values that fail at planning would waste it.
		err = mt.CheckAgreement(mt.Endpoints{UE: c.local, PCSCF: c.s.pcscf.Addr()}, o.params, m.Params(), m, false)
	}
	if err != nil {
		return mt.Mechanism{}, nil, fmt.Errorf("Security-Server %q: %w", strings.Join(vals, ", "), err)
	}
	return m, vals, nil
}

// install plans the four SAs from the agreement and CK/IK and makes them
// the pending set of the lifecycle (which first removes a pending or old
// set still there: at most one old and one new, TS 33.203 §7.4), then
// installs them. The offer's port_uc becomes the set's.
func (c *Client) install(ctx context.Context, o *offer, m mt.Mechanism, verify []string, ck, ik [16]byte, chal mt.Challenge) (*saState, error) {
	pc := m.Params()
	ep := mt.Endpoints{UE: c.local, PCSCF: c.s.pcscf.Addr()}
	// The kernel enforces reg-await-auth on the temporary set; its 200 OK
	// extends it to the registration's lifetime (apply, OpExtend).
	set, err := mt.PlanUE(ep, o.params, pc, m, ck, ik, mt.TemporaryLifetime)
	if err != nil {
		return nil, fmt.Errorf("planning the SA set: %w", err)
	}
	acts, err := c.sets.Challenged(time.Now(), chal, set)
	if err != nil {
		return nil, fmt.Errorf("SA set lifecycle: %w", err)
	}
	s := &saState{set: set, mech: m, ue: o.params, pcscf: pc, verify: verify}
	c.sas[set.ID] = s
	if err := c.apply(ctx, acts); err != nil {
		// Forget the pending set; the offer's port and SPIs go with it.
		c.applyLogged(ctx, c.sets.Abort(time.Now()))
		return nil, err
	}
	if c.s.log.Enabled(ctx, slog.LevelInfo) { // twelve boxed attributes, logged or not
		c.s.log.Info("SA set installed", "set", set.ID, "alg", m.Alg, "ealg", m.EAlg,
			"spi_uc", o.params.SPIc, "spi_us", o.params.SPIs, "spi_pc", pc.SPIc, "spi_ps", pc.SPIs,
			"port_uc", o.params.PortC, "port_us", o.params.PortS, "port_pc", pc.PortC, "port_ps", pc.PortS)
	}
	return s, nil
}

// apply carries out the lifecycle's actions in order through the Backend:
// installs, extensions (the kernel's hard expiry follows the lifecycle's:
// TS 33.203 §7.4) and removals (with their port_uc and SPIs released). It
// stops at the first failed install or extension; removals go on past a
// failure.
func (c *Client) apply(ctx context.Context, acts []mt.Action) error {
	var errs []error
	// A set replaced by one with the same local side (a re-challenge with
	// the same Security-Client) hands its port_uc and SPIs over: they are
	// not released.
	kept := map[mt.Params]bool{}
	for _, a := range acts {
		if a.Op == mt.OpInstall {
			kept[a.Local] = true
		}
	}
	for _, a := range acts {
		switch a.Op {
		case mt.OpInstall:
			if err := c.s.backend.Install(ctx, a.Set); err != nil {
				return errors.Join(append(errs, &IPsecError{Op: "install", Set: a.Set.ID, Err: err})...)
			}
			c.mu.Lock()
			c.installed[a.Set.ID] = a.Set
			c.mu.Unlock()
		case mt.OpExtend:
			if err := c.s.backend.Extend(ctx, a.Set, a.Expires); err != nil {
				return errors.Join(append(errs, &IPsecError{Op: "extend", Set: a.Set.ID, Err: err})...)
			}
		case mt.OpRemove:
			if err := c.remove(ctx, a.Set, a.Local, !kept[a.Local]); err != nil {
				errs = append(errs, err)
			}
			delete(c.sas, a.Set.ID)
			c.s.log.Info("SA set removed", "set", a.Set.ID, "reason", a.Reason.String())
		}
	}
	return errors.Join(errs...)
}

func (c *Client) applyLogged(ctx context.Context, acts []mt.Action) {
	if err := c.apply(ctx, acts); err != nil {
		c.s.log.Warn("removing an SA set failed", "err", err)
	}
}

// current is the established set in use, or nil.
func (c *Client) current() *saState {
	if e := c.sets.Current(); e != nil {
		return c.sas[e.Set.ID]
	}
	return nil
}

// remove removes a set through the Backend and, with release, frees its
// port_uc and SPIs (local) even when the Backend fails; the Backend error,
// if any, is returned.
func (c *Client) remove(ctx context.Context, set *ipsec.SASet, local mt.Params, release bool) error {
	if release {
		c.tp.Release(netip.AddrPortFrom(c.local, local.PortC))
		c.alloc.Release(local)
	}
	// A cancelled caller context must not leave SAs behind.
	ctx = context.WithoutCancel(ctx)
	c.withdraw(set.ID)
	err := c.s.backend.Remove(ctx, set)
	c.mu.Lock()
	delete(c.installed, set.ID)
	delete(c.withdrawn, set.ID)
	c.mu.Unlock()
	if err != nil {
		return &IPsecError{Op: "remove", Set: set.ID, Err: err}
	}
	return nil
}

// withdraw marks the set as being removed, once no response over it is
// being sent: from then on requests that arrived over it go unanswered,
// since an answer sent after its SAs are gone would leave in clear.
func (c *Client) withdraw(id uint64) {
	c.sendMu.Lock()
	c.mu.Lock()
	c.withdrawn[id] = true
	c.mu.Unlock()
	c.sendMu.Unlock()
}

// arrivedOver returns the live set (installed, removal not begun) with an
// inbound SA from in.Remote to in.Local: the set a request arrived over.
func (c *Client) arrivedOver(in *sipnet.Inbound) (id uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, set := range c.installed {
		if c.withdrawn[id] {
			continue
		}
		for _, sa := range set.SAs {
			if sa.Dir == ipsec.In && sa.Src == in.Remote && sa.Dst == in.Local {
				return id, true
			}
		}
	}
	return 0, false
}

// protectedRoute is how requests go over set s: from port_uc to port_ps.
// Only a response from the P-CSCF's protected ports of s to the UE's
// completes them (betweenPorts): one from any other port, or to the
// unprotected port, is dropped.
func (c *Client) protectedRoute(s *saState) sipnet.Route {
	r := c.route(c.s.network, s.ue.PortC, netip.AddrPortFrom(c.s.pcscf.Addr(), s.pcscf.PortS))
	r.Accept = func(in *sipnet.Inbound) bool { return c.betweenPorts(s, in) }
	return r
}

// betweenPorts reports whether a response came from the P-CSCF's protected
// ports of set s (port_pc or port_ps) to the UE's (port_us or port_uc).
// Kamailio 5.6 answers UDP requests over an established set from port_ps
// to port_us, a pair no SA covers (so in clear); that is tolerated. What
// comes from any other port, or to the unprotected port, is refused.
func (c *Client) betweenPorts(s *saState, in *sipnet.Inbound) bool {
	if s == nil || in.Remote.Addr() != c.s.pcscf.Addr() {
		return false
	}
	from, to := in.Remote.Port(), in.Local.Port()
	return (from == s.pcscf.PortC || from == s.pcscf.PortS) && (to == s.ue.PortS || to == s.ue.PortC)
}

// carried reports whether a message arrived over set s: from port_pc to
// port_us (SA #3) or from port_ps to port_uc (SA #2).
func (c *Client) carried(s *saState, in *sipnet.Inbound) bool {
	if s == nil || in.Remote.Addr() != c.s.pcscf.Addr() {
		return false
	}
	return (in.Local.Port() == s.ue.PortS && in.Remote.Port() == s.pcscf.PortC) ||
		(in.Local.Port() == s.ue.PortC && in.Remote.Port() == s.pcscf.PortS)
}
