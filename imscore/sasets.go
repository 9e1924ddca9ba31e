package imscore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// The P-CSCF's SA sets (TS 33.203 §7): one per security agreement with a
// UE, temporary from the 401 until the protected REGISTER authenticates,
// then established, then old until the next set carries traffic (§7.4).
// A set is decided under the P-CSCF's lock and installed outside it.

// setState is the P-CSCF's state of one SA set (TS 33.203 §7.4).
type setState uint8

const (
	setTemporary setState = iota + 1
	setEstablished
	setOld
)

func (s setState) String() string {
	switch s {
	case setTemporary:
		return "temporary"
	case setEstablished:
		return "established"
	case setOld:
		return "old"
	}
	return "unknown"
}

// secSet is one security agreement with a UE and the mirror SA set the
// P-CSCF installed for it.
type secSet struct {
	id          uint64
	keepConns   bool // replaced by a set on the same flow: its TCP connection stays
	state       setState
	b           *pcontact
	ue, local   netip.Addr
	transport   string
	mech        mt.Mechanism   // the entry the UE is expected to choose, with the P-CSCF's parameters
	client      mt.Params      // the UE's spi_uc, spi_us, port_uc, port_us
	server      mt.Params      // the P-CSCF's spi_pc, spi_ps, port_pc, port_ps
	clientMechs []mt.Mechanism // the Security-Client that created the set
	serverMechs []mt.Mechanism // the Security-Server the P-CSCF sent
	sa          *ipsec.SASet
	pc          *endpoint    // port_pc
	tcpOut      *sipnet.Conn // TCP connection dialled from port_pc, for requests to the UE
	expires     time.Time    // established: registration expiry + 30 s (TS 33.203 §7.1)
	created     time.Time
	timer       *time.Timer
	removed     bool
}

func (s *secSet) flow() netip.AddrPort { return netip.AddrPortFrom(s.ue, s.client.PortC) }

// toUE is the route for the P-CSCF's UDP messages to the UE over this set:
// port_pc → port_us.
func (s *secSet) toUE() route {
	return udpRoute(s.pc, netip.AddrPortFrom(s.ue, s.client.PortS))
}

// setReservation is an SA set decided under the lock and installed outside
// it: newTemporarySet reserves (reserveSetLocked), installs (installSet)
// and commits or rolls back (commitSetLocked).
type setReservation struct {
	key         string // the contact's
	impi        string
	ck, ik      [16]byte
	nonce       string
	epoch       uint64
	ue, local   netip.Addr
	transport   string
	client      mt.Params
	spiPC       uint32
	spiPS       uint32
	avoid       uint16 // the current set's port_pc
	list        []mt.Mechanism
	idx         int
	clientMechs []mt.Mechanism

	pc     *endpoint // bound by installSet
	server mt.Params
	sa     *ipsec.SASet
}

// errSuperseded ends a set installation whose contact got another
// challenge, or ended, while the SAs were being installed.
var errSuperseded = errors.New("superseded while the SA set was installed")

// newTemporarySet plans and installs the P-CSCF's mirror SA set for the
// challenge with this nonce and these keys, before the 401 leaves. It is
// called and returns under the lock, but releases it while port_pc is
// bound and the SAs installed: the decision is taken and committed under
// the lock, the I/O happens outside.
func (p *pcscf) newTemporarySet(rc regContext, ck, ik [16]byte, nonce string) (*secSet, error) {
	rv, err := p.reserveSetLocked(rc, ck, ik, nonce)
	if err != nil {
		return nil, err
	}
	p.unlockQuiet()
	err = p.installSet(rv)
	p.mu.Lock()
	return p.commitSetLocked(rv, err)
}

// reserveSetLocked decides the set: the mechanisms, the SPIs (held until
// the commit), and drops the sets it replaces.
func (p *pcscf) reserveSetLocked(rc regContext, ck, ik [16]byte, nonce string) (*setReservation, error) {
	list, idx, err := p.serverMechanisms(rc.offer)
	if err != nil {
		return nil, err
	}
	ct := rc.req.Contact()
	if ct == nil || ct.Address.Wildcard {
		return nil, errors.New("a challenged REGISTER without a Contact")
	}
	client := ueParams(rc.offer)
	ueIP := rc.in.remote.Addr()
	rv := &setReservation{
		key: contactKey(ct.Address), impi: identityOf(rc.req), ck: ck, ik: ik, nonce: nonce,
		epoch: p.epoch, ue: ueIP, local: p.c.localFor(ueIP), transport: rc.in.transport,
		client: client, list: list, idx: idx, clientMechs: rc.offer,
	}
	u := p.ues[rv.key]
	// A new challenge replaces the previous temporary set: the UE builds
	// SAs only from the 401 it answers.
	flow := netip.AddrPortFrom(ueIP, client.PortC)
	if u != nil && u.next != nil {
		u.next.keepConns = u.next.flow() == flow
		p.dropSetLocked(u.next, "replaced by a new challenge")
	}
	if old := p.byFlow[flow]; old != nil {
		old.keepConns = true
		p.dropSetLocked(old, "its port_uc is reused by a new Security-Client")
	}
	if u != nil && u.cur != nil {
		rv.avoid = u.cur.server.PortC
	}
	if rv.spiPC, rv.spiPS, err = p.allocSPIsLocked(client); err != nil {
		return nil, err
	}
	p.spiHeld[rv.spiPC], p.spiHeld[rv.spiPS] = true, true
	return rv, nil
}

// installSet binds port_pc, plans the SA set and installs it (no lock
// held). On error nothing stays bound or installed.
func (p *pcscf) installSet(rv *setReservation) error {
	c := p.c
	pc, err := p.openClientPort(rv.avoid)
	if err != nil {
		return fmt.Errorf("port_pc: %w", err)
	}
	server := mt.Params{SPIc: rv.spiPC, SPIs: rv.spiPS, PortC: pc.addr.Port(), PortS: c.server.addr.Port()}
	for i := range rv.list {
		rv.list[i].SPIc, rv.list[i].SPIs, rv.list[i].PortC, rv.list[i].PortS = server.SPIc, server.SPIs, server.PortC, server.PortS
		rv.list[i].Text = ""
	}
	sa, err := mt.PlanPCSCF(mt.Endpoints{UE: rv.ue, PCSCF: rv.local}, rv.client, server, rv.list[rv.idx], rv.ck, rv.ik, 0)
	if err != nil {
		c.closeEndpoint(pc)
		return fmt.Errorf("plan SA set: %w", err)
	}
	ictx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	err = c.cfg.IPsec.Install(ictx, sa)
	cancel()
	if err != nil {
		c.closeEndpoint(pc)
		return fmt.Errorf("install SA set with %s: %w", c.cfg.IPsec.Name(), err)
	}
	c.stats.setsInstalled.Add(1)
	rv.pc, rv.server, rv.sa = pc, server, sa
	return nil
}

// commitSetLocked makes an installed set live, or rolls it back (its
// removal queued) when the P-CSCF closed or restarted meanwhile, or
// another challenge of the contact committed its set after this one was
// reserved.
func (p *pcscf) commitSetLocked(rv *setReservation, err error) (*secSet, error) {
	c := p.c
	delete(p.spiHeld, rv.spiPC)
	delete(p.spiHeld, rv.spiPS)
	if err == nil && (p.closed || p.epoch != rv.epoch) {
		err = errSuperseded
		sa, pc := rv.sa, rv.pc
		p.later(func() error {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			rerr := c.cfg.IPsec.Remove(rctx, sa)
			cancel()
			c.stats.setsRemoved.Add(1)
			c.closeEndpoint(pc)
			if rerr != nil {
				rerr = fmt.Errorf("imscore: remove SA set %d: %w", sa.ID, rerr)
				c.log.Warn("SA set removal failed", "set", sa.ID, "err", rerr)
			}
			return rerr
		})
	}
	if err != nil {
		return nil, err
	}
	u := p.ues[rv.key]
	if u == nil {
		u = &pcontact{key: rv.key, impi: rv.impi}
		p.ues[u.key] = u
	}
	// Another challenge of the contact may have committed meanwhile: the
	// later 401 wins.
	flow := netip.AddrPortFrom(rv.ue, rv.client.PortC)
	if u.next != nil {
		u.next.keepConns = u.next.flow() == flow
		p.dropSetLocked(u.next, "replaced by a new challenge")
	}
	if old := p.byFlow[flow]; old != nil {
		old.keepConns = true
		p.dropSetLocked(old, "its port_uc is reused by a new Security-Client")
	}
	client, server := rv.client, rv.server
	s := &secSet{
		id: rv.sa.ID, state: setTemporary, b: u,
		ue: rv.ue, local: rv.local, transport: rv.transport,
		mech: rv.list[rv.idx], client: client, server: server,
		clientMechs: rv.clientMechs, serverMechs: rv.list,
		sa: rv.sa, pc: rv.pc, created: time.Now(),
	}
	s.pc.set = s
	p.sets[s.id] = s
	p.byFlow[s.flow()] = s
	u.next = s
	if u.authTimer != nil {
		u.authTimer.Stop()
	}
	// The P-CSCF's reg-await-auth timer for the temporary set.
	u.authTimer = p.after(c.cfg.AuthTimeout, func() {
		if u.next == s {
			c.log.Info("challenge not answered in time", "impi", u.impi, "timeout", c.cfg.AuthTimeout)
			p.dropSetLocked(s, "reg-await-auth timer expired")
			p.forgetIfUnregisteredLocked(u)
		}
	})
	c.log.Info("temporary SA set installed", "set", s.id, "impi", u.impi, "alg", s.mech.Alg, "ealg", s.mech.EAlg,
		"spi_uc", client.SPIc, "spi_us", client.SPIs, "spi_pc", server.SPIc, "spi_ps", server.SPIs,
		"port_uc", client.PortC, "port_us", client.PortS, "port_pc", server.PortC, "port_ps", server.PortS)
	return s, nil
}

// promoteLocked makes the temporary set that carried a successful
// authentication the established one; the previous established set becomes
// old until the new one carries traffic (TS 33.203 §7.4).
func (p *pcscf) promoteLocked(u *pcontact, s *secSet) {
	if s == nil || s.state != setTemporary || u.next != s {
		if s != nil && s.state == setEstablished && u.cur == s {
			p.extendLocked(u, s)
		}
		return
	}
	if u.old != nil {
		p.dropSetLocked(u.old, "superseded twice")
	}
	if prev := u.cur; prev != nil {
		prev.state = setOld
		u.old = prev
		if prev.timer != nil {
			prev.timer.Stop()
		}
		if d := time.Until(prev.expires); d > 0 {
			prev.timer = p.after(d, func() { p.dropSetLocked(prev, "old SA set lifetime ended") })
		} else {
			p.dropSetLocked(prev, "old SA set lifetime ended")
		}
	}
	s.state = setEstablished
	u.cur, u.next = s, nil
	if u.authTimer != nil {
		u.authTimer.Stop()
	}
	p.extendLocked(u, s)
	p.c.log.Info("SA set established", "set", s.id, "impi", u.impi)
}

// extendLocked sets the established set's lifetime: the registration's
// expiry + 30 s (TS 33.203 §7.1). The S-CSCF's reg event ends it sooner.
func (p *pcscf) extendLocked(u *pcontact, s *secSet) {
	s.expires = u.expires.Add(mt.ExpiresMargin)
	if u.expTimer != nil {
		u.expTimer.Stop()
	}
	u.expTimer = p.after(time.Until(s.expires), func() {
		if u.cur == s {
			p.forgetLocked(u, "SA set lifetime ended")
		}
	})
}

// dropSetLocked removes one SA set from the P-CSCF's state at once, and
// queues the removal of its SAs, its port_pc and its TCP connections for
// when the lock is released (unlock reports a failed removal).
func (p *pcscf) dropSetLocked(s *secSet, why string) {
	c := p.c
	if s == nil || s.removed {
		return
	}
	s.removed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	delete(p.sets, s.id)
	if p.byFlow[s.flow()] == s {
		delete(p.byFlow, s.flow())
	}
	if u := s.b; u != nil {
		switch s {
		case u.cur:
			u.cur = nil
		case u.next:
			u.next = nil
		case u.old:
			u.old = nil
		}
	}
	c.log.Info("SA set removed", "set", s.id, "state", s.state.String(), "reason", why)
	ps, flow, keep := c.server.addr.Port(), s.flow(), s.keepConns
	p.later(func() error {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.cfg.IPsec.Remove(rctx, s.sa)
		cancel()
		c.stats.setsRemoved.Add(1)
		c.closeEndpoint(s.pc)
		if !keep { // a set replaced on the same flow hands its connection on
			c.tp.CloseConns(func(tc *sipnet.Conn) bool { return tc.Local().Port() == ps && tc.Remote() == flow })
		}
		if err != nil {
			err = fmt.Errorf("imscore: remove SA set %d: %w", s.id, err)
			c.log.Warn("SA set removal failed", "set", s.id, "err", err)
		}
		return err
	})
}

// openClientPort binds a new port_pc, different from avoid (the current
// set's) as TS 33.203 §7.4 requires, and from port_ps.
func (p *pcscf) openClientPort(avoid uint16) (*endpoint, error) {
	c := p.c
	var held []*endpoint
	defer func() {
		for _, ep := range held {
			c.closeEndpoint(ep)
		}
	}()
	for range 8 {
		ep, err := c.bindEndpoint(0, roleClient)
		if err != nil {
			return nil, err
		}
		if port := ep.addr.Port(); port != avoid && port != c.server.addr.Port() {
			return ep, nil
		}
		held = append(held, ep) // keep it bound so the next try gets another port
	}
	return nil, errors.New("no free port different from the current port_pc")
}

// allocSPIsLocked picks spi_pc and spi_ps: random, above the reserved
// 1..255 (RFC 4303 §2.1), distinct from each other, from the UE's and from
// every SPI of the live sets and of those being installed.
func (p *pcscf) allocSPIsLocked(ue mt.Params) (uint32, uint32, error) {
	used := map[uint32]bool{ue.SPIc: true, ue.SPIs: true}
	for v := range p.spiHeld {
		used[v] = true
	}
	for _, s := range p.sets {
		for _, v := range []uint32{s.client.SPIc, s.client.SPIs, s.server.SPIc, s.server.SPIs} {
			used[v] = true
		}
	}
	var out [2]uint32
	for i := range out {
		for tries := 0; ; tries++ {
			if tries == 100 {
				return 0, 0, errors.New("SPI allocation: no free SPI after 100 tries")
			}
			var b [4]byte
			if _, err := rand.Read(b[:]); err != nil {
				return 0, 0, fmt.Errorf("SPI allocation: %w", err)
			}
			v := binary.BigEndian.Uint32(b[:])
			if v < 256 || used[v] {
				continue
			}
			used[v] = true
			out[i] = v
			break
		}
	}
	return out[0], out[1], nil
}
