package sipclient

import (
	"context"
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
}

// saState is one SA set of the UE and what it was agreed from.
type saState struct {
	set    *ipsec.SASet
	mech   mt.Mechanism // the Security-Server entry chosen
	ue     mt.Params
	pcscf  mt.Params
	verify []string // the Security-Server header values, byte for byte
	// established: the 200 OK for the REGISTER it protected arrived.
	established bool
	at          time.Time
}

// newOffer takes new SPIs and a new port_uc from the mt.Allocator (port_uc
// differs from port_us, from the previous one and from every one held,
// TS 33.203 §7.4), binds port_uc now, so the number is the UE's until
// released, and builds the Security-Client. port_us is the Client's, kept
// for its whole life.
func (c *Client) newOffer() (*offer, error) {
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
	if o != nil {
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
	if err != nil {
		return mt.Mechanism{}, nil, fmt.Errorf("Security-Server %q: %w", strings.Join(vals, ", "), err)
	}
	return m, vals, nil
}

// saLifetime is the lifetime planned into the kernel SAs. ipsec.Backend
// cannot extend a lifetime once installed, so the SAs get the longest
// lifetime the registration can need (requested expiry + 30 s, TS 33.203
// §7.4), and the temporary phase is bounded by the UE itself: the set is
// removed as soon as the protected REGISTER fails or Timer F expires, far
// sooner than the 4-minute reg-await-auth bound.
func (c *Client) saLifetime() time.Duration {
	const maxLifetime = (1<<32 - 1) * time.Second
	return min(c.s.expires+mt.ExpiresMargin, maxLifetime)
}

// install plans the four SAs from the agreement and CK/IK and installs
// them. The offer's port_uc becomes the set's.
func (c *Client) install(ctx context.Context, o *offer, m mt.Mechanism, verify []string, ck, ik [16]byte) (*saState, error) {
	pc := m.Params()
	ep := mt.Endpoints{UE: c.local, PCSCF: c.s.pcscf.Addr()}
	set, err := mt.PlanUE(ep, o.params, pc, m, ck, ik, c.saLifetime())
	if err != nil {
		return nil, fmt.Errorf("planning the SA set: %w", err)
	}
	if err := c.s.backend.Install(ctx, set); err != nil {
		return nil, &IPsecError{Op: "install", Set: set.ID, Err: err}
	}
	c.mu.Lock()
	c.installed[set.ID] = set
	c.mu.Unlock()
	if c.s.log.Enabled(ctx, slog.LevelInfo) { // twelve boxed attributes, logged or not
		c.s.log.Info("SA set installed", "set", set.ID, "alg", m.Alg, "ealg", m.EAlg,
			"spi_uc", o.params.SPIc, "spi_us", o.params.SPIs, "spi_pc", pc.SPIc, "spi_ps", pc.SPIs,
			"port_uc", o.params.PortC, "port_us", o.params.PortS, "port_pc", pc.PortC, "port_ps", pc.PortS)
	}
	return &saState{set: set, mech: m, ue: o.params, pcscf: pc, verify: verify, at: time.Now()}, nil
}

// remove removes a set through the Backend and releases its port_uc. It
// always releases the port; the Backend error, if any, is returned.
func (c *Client) remove(ctx context.Context, s *saState) error {
	if s == nil {
		return nil
	}
	c.tp.Release(netip.AddrPortFrom(c.local, s.ue.PortC))
	c.alloc.Release(s.ue)
	// A cancelled caller context must not leave SAs behind.
	ctx = context.WithoutCancel(ctx)
	c.withdraw(s.set.ID)
	err := c.s.backend.Remove(ctx, s.set)
	c.mu.Lock()
	delete(c.installed, s.set.ID)
	delete(c.withdrawn, s.set.ID)
	c.mu.Unlock()
	if err != nil {
		return &IPsecError{Op: "remove", Set: s.set.ID, Err: err}
	}
	c.s.log.Info("SA set removed", "set", s.set.ID)
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
func (c *Client) protectedRoute(s *saState) sipnet.Route {
	return c.route(c.s.network, s.ue.PortC, netip.AddrPortFrom(c.s.pcscf.Addr(), s.pcscf.PortS))
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
