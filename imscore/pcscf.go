package imscore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// The P-CSCF role: what may enter, sec-agree (RFC 3329 with TS 33.203),
// the SA sets, and the ports responses and requests leave from.
//
// Decisions where the specifications leave a choice:
//   - A request other than REGISTER on the unprotected port is discarded
//     silently and counted (Stats.Discarded), as is a request on port_ps
//     from an address that is no SA set's (UE IP, port_uc). Answering would
//     tell an attacker which ports are protected; TS 33.203 §7.1 has the
//     P-CSCF discard what does not arrive over an SA. With algorithm MD5
//     (no SAs) the P-CSCF instead accepts requests from the flow a
//     registration came from, as for "SIP digest without TLS".
//   - A REGISTER without Security-Client gets 421 (Require: sec-agree) when it
//     does not support sec-agree, else 494; a malformed one gets 400; one with
//     no acceptable mechanism gets 494 listing what the P-CSCF supports
//     (RFC 3329 §2.3.1).
//   - A protected REGISTER whose Security-Verify differs from the
//     Security-Server the P-CSCF sent (compared mechanism by mechanism,
//     parameter by parameter, so that whitespace does not matter), or whose
//     Security-Client differs from the one that created the temporary set,
//     gets 494 and the temporary set is dropped (RFC 3329 §2.3.1 treats it
//     as a downgrade attempt).
//   - A re-registration must change port_uc and both UE SPIs and keep
//     port_us (TS 33.203 §7.4); otherwise 400.
//   - The P-CSCF installs its SAs without kernel lifetimes (Kamailio does the
//     same) and enforces them itself: a temporary set lives AuthTimeout, an
//     established one until its registration ends, an old one until the new
//     set carries a request or its own lifetime (registration expiry + 30 s)
//     ends. Lifetimes in the kernel cannot be extended once installed.

// retransmission reports whether req repeats a request being or already
// answered (its server transaction resends the final response, and the
// transport counts it), so that it is not acted on again: one 401, one SA
// set. It may send: call it without c.mu.
func (c *Core) retransmission(req *sip.Request) bool { return !c.tp.Begin(req) }

// handleRequest admits a request according to the port it arrived on.
func (c *Core) handleRequest(in inbound, req *sip.Request) {
	if req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		c.stats.malformed.Add(1)
		c.log.Info("discarding request without Via, From, To, Call-ID or CSeq", "from", in.remote)
		return
	}
	if req.IsAck() {
		return // no INVITE transactions here
	}
	req.SetSource(in.remote.String())
	req.SetTransport(in.transport)
	if c.cfg.Faults.drop(string(req.Method)) {
		c.log.Info("fault: dropping request", "method", req.Method, "from", in.remote)
		return
	}
	switch in.ep.role {
	case roleUnprotected:
		c.onUnprotected(in, req)
	case roleServer:
		c.onProtected(in, req)
	default:
		c.discard(in, req, "request sent to port_pc")
	}
}

func (c *Core) discard(in inbound, req *sip.Request, why string) {
	c.stats.discarded.Add(1)
	c.log.Info("discarding request", "method", req.Method, "from", in.remote, "transport", in.transport, "port", in.ep.addr.Port(), "reason", why)
}

// onUnprotected handles a request on the unprotected port.
func (c *Core) onUnprotected(in inbound, req *sip.Request) {
	// Admission first, then the server transaction (which may resend a
	// response, so outside c.mu), then the request under c.mu.
	c.mu.Lock()
	closed, admit := c.closed, c.cfg.CKIKInChallenge || req.Method == sip.REGISTER || c.md5FlowLocked(in) != nil
	c.mu.Unlock()
	switch {
	case closed:
		return
	case !admit:
		c.discard(in, req, "unprotected request other than REGISTER")
		return
	case c.retransmission(req):
		return
	}
	c.mu.Lock()
	defer c.unlockQuiet()
	if c.closed {
		return
	}
	if c.cfg.CKIKInChallenge {
		c.onBareSCSCF(in, req)
		return
	}
	if req.Method != sip.REGISTER {
		if b := c.md5FlowLocked(in); b != nil {
			c.onRegisteredRequest(in, req, b, nil, c.responseRoute(in, req, nil))
			return
		}
		c.discard(in, req, "unprotected request other than REGISTER")
		return
	}
	c.stats.regUnprot.Add(1)
	r := c.responseRoute(in, req, nil)
	rc := regContext{in: in, req: req}
	if c.cfg.isAKA() {
		offer, bad := c.checkSecurityClient(req, nil)
		if bad != nil {
			c.reply(req, bad, r, nil)
			return
		}
		rc.offer = offer
	}
	c.finishRegister(rc, c.register(rc), r)
}

// md5FlowLocked returns the registered MD5 binding whose flow in came
// from: with SIP digest there are no SAs and the P-CSCF recognises a UE by
// the address its registration came from.
func (c *Core) md5FlowLocked(in inbound) *binding {
	if c.cfg.isAKA() {
		return nil
	}
	for _, b := range c.bindings {
		if b.state == stateRegistered && b.flow == in.remote {
			return b
		}
	}
	return nil
}

// onProtected handles a request on port_ps: it must come from the port_uc
// of a live SA set.
func (c *Core) onProtected(in inbound, req *sip.Request) {
	const noSA = "port_ps: no security association from this address and port"
	c.mu.Lock()
	closed, set := c.closed, c.byFlow[in.remote]
	c.mu.Unlock()
	switch {
	case closed:
		return
	case set == nil || set.removed:
		c.discard(in, req, noSA)
		return
	case c.retransmission(req):
		return
	}
	c.mu.Lock()
	defer c.unlockQuiet()
	if c.closed {
		return
	}
	if c.byFlow[in.remote] != set || set.removed {
		// Removed while the server transaction opened.
		c.discard(in, req, noSA)
		return
	}
	b := set.b
	if set.state == setEstablished && b.old != nil {
		// The new set carries traffic: the old one is no longer needed
		// (TS 33.203 §7.4).
		c.dropSetLocked(b.old, "the new SA set carries traffic")
	}
	r := c.responseRoute(in, req, set)
	if req.Method == sip.REGISTER {
		c.stats.regProt.Add(1)
		c.onProtectedRegister(in, req, set, r)
		return
	}
	c.onRegisteredRequest(in, req, b, set, r)
}

// acceptResponse is the Accept of the P-CSCF's client transactions: a
// response counts only when it arrived over an SA set (protectedResponse).
func (c *Core) acceptResponse(in *sipnet.Inbound) bool {
	if ep := c.endpointOf(in); ep != nil && c.protectedResponse(c.inbound(in, ep)) {
		return true
	}
	c.stats.discarded.Add(1)
	c.log.Info("discarding response that did not arrive over an SA set", "from", in.Remote, "port", in.Local.Port())
	return false
}

// protectedResponse reports whether a response to one of the P-CSCF's
// requests arrived over an SA: on port_ps from a set's port_uc (UDP,
// TS 33.203 §7.1 table row 1), or on port_pc from that set's port_us (the
// TCP connection the P-CSCF opened, row 4). Without SAs (MD5, bare S-CSCF)
// responses come to the unprotected port.
func (c *Core) protectedResponse(in inbound) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch in.ep.role {
	case roleServer:
		s := c.byFlow[in.remote]
		return s != nil && !s.removed
	case roleClient:
		s := in.ep.set
		return s != nil && !s.removed && in.remote == netip.AddrPortFrom(s.ue, s.client.PortS)
	}
	return !c.cfg.isAKA() || c.cfg.CKIKInChallenge
}

// onProtectedRegister checks sec-agree on a REGISTER that arrived over set.
func (c *Core) onProtectedRegister(in inbound, req *sip.Request, set *secSet, r route) {
	verify, err := parseSecurityHeaders(req, "Security-Verify")
	switch {
	case err != nil:
		c.secAgreeFail(req, r, set, sip.StatusBadRequest, "Malformed Security-Verify", err.Error())
		return
	case len(verify) == 0:
		c.secAgreeFail(req, r, set, 494, "Security Agreement Required", "protected REGISTER without Security-Verify")
		return
	case !sameMechanisms(verify, set.serverMechs):
		c.secAgreeFail(req, r, set, 494, "Security Agreement Required", "Security-Verify differs from the Security-Server sent")
		return
	}
	rc := regContext{in: in, req: req, set: set}
	if set.state == setTemporary {
		client, err := parseSecurityHeaders(req, "Security-Client")
		switch {
		case err != nil:
			c.secAgreeFail(req, r, set, sip.StatusBadRequest, "Malformed Security-Client", err.Error())
			return
		case !sameMechanisms(client, set.clientMechs):
			c.secAgreeFail(req, r, set, 494, "Security Agreement Required", "Security-Client differs from the one of the initial REGISTER")
			return
		}
	} else if !isDeregistration(req) {
		offer, bad := c.checkSecurityClient(req, set)
		if bad != nil {
			c.reply(req, bad, r, nil)
			return
		}
		rc.offer = offer
	}
	c.finishRegister(rc, c.register(rc), r)
}

// secAgreeFail rejects a protected REGISTER for a sec-agree violation and
// drops the temporary set it came over, if it did.
func (c *Core) secAgreeFail(req *sip.Request, r route, set *secSet, code int, reason, detail string) {
	c.stats.secAgree.Add(1)
	c.log.Info("sec-agree violation", "call_id", req.CallID().Value(), "detail", detail)
	resp := newResponse(req, code, reason)
	resp.AppendHeader(sip.NewHeader("Warning", `399 `+hostOf(set.local)+` "`+detail+`"`))
	if code == 494 {
		resp.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(c.supportedMechanisms())))
	}
	c.reply(req, resp, r, func() {
		if set.state == setTemporary {
			c.dropTemporaryLocked(set, "sec-agree violation")
		}
	})
}

// checkSecurityClient validates the Security-Client of a REGISTER that may
// be challenged. cur is the established set the REGISTER came over, if any.
// It returns the offered mechanisms, or the response to send instead.
func (c *Core) checkSecurityClient(req *sip.Request, cur *secSet) ([]mt.Mechanism, *sip.Response) {
	offer, err := parseSecurityHeaders(req, "Security-Client")
	if err != nil {
		c.stats.secAgree.Add(1)
		resp := newResponse(req, sip.StatusBadRequest, "Malformed Security-Client")
		resp.AppendHeader(sip.NewHeader("Warning", `399 imscore "`+sanitize(err.Error())+`"`))
		return nil, resp
	}
	if len(offer) == 0 {
		c.stats.secAgree.Add(1)
		if !hasOptionTag(req, "sec-agree") {
			resp := newResponse(req, sip.StatusExtensionRequired, "Extension Required")
			resp.AppendHeader(sip.NewHeader("Require", "sec-agree"))
			return nil, resp
		}
		resp := newResponse(req, 494, "Security Agreement Required")
		resp.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(c.supportedMechanisms())))
		return nil, resp
	}
	if _, _, err := c.serverMechanisms(offer); err != nil {
		c.stats.secAgree.Add(1)
		resp := newResponse(req, 494, "Security Agreement Required")
		resp.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(c.supportedMechanisms())))
		resp.AppendHeader(sip.NewHeader("Warning", `399 imscore "`+sanitize(err.Error())+`"`))
		return nil, resp
	}
	p := ueParams(offer)
	bad := func(detail string) ([]mt.Mechanism, *sip.Response) {
		c.stats.secAgree.Add(1)
		resp := newResponse(req, sip.StatusBadRequest, "Bad Security-Client")
		resp.AppendHeader(sip.NewHeader("Warning", `399 imscore "`+detail+`"`))
		return nil, resp
	}
	if p.PortC == 0 || p.PortS == 0 || p.SPIc == 0 || p.SPIs == 0 {
		return bad("Security-Client lacks spi-c, spi-s, port-c or port-s")
	}
	if p.SPIc == p.SPIs || p.PortC == p.PortS {
		return bad("Security-Client uses the same SPI or port for client and server")
	}
	if cur != nil {
		switch {
		case p.PortC == cur.client.PortC:
			return bad("re-registration keeps port-c: TS 33.203 7.4 requires a new port_uc")
		case p.PortS != cur.client.PortS:
			return bad("re-registration changes port-s: TS 33.203 7.4 keeps port_us")
		case p.SPIc == cur.client.SPIc || p.SPIs == cur.client.SPIs || p.SPIc == cur.client.SPIs || p.SPIs == cur.client.SPIc:
			return bad("re-registration reuses an SPI of the current security association")
		}
	}
	return offer, nil
}

// ueParams takes the UE's SPIs and ports from its first ipsec-3gpp entry
// (every entry of one Security-Client carries the same ones).
func ueParams(offer []mt.Mechanism) mt.Params {
	for _, m := range offer {
		if strings.EqualFold(m.Name, mt.MechanismIPsec3GPP) {
			return m.Params()
		}
	}
	return mt.Params{}
}

// supportedMechanisms is the P-CSCF's list for a 494: the configured
// entries, or every supported pair, without SPIs and ports.
func (c *Core) supportedMechanisms() []mt.Mechanism {
	if len(c.cfg.Mechanisms) > 0 {
		out := make([]mt.Mechanism, len(c.cfg.Mechanisms))
		for i, m := range c.cfg.Mechanisms {
			out[i] = mt.Mechanism{Name: mt.MechanismIPsec3GPP, Alg: m.Alg, EAlg: mt.NormEnc(m.EAlg), Prot: mt.ProtESP, Mode: ipsec.ModeTransport, Q: m.Q, HasQ: m.HasQ}
		}
		return out
	}
	var out []mt.Mechanism
	for _, a := range supportedAuth {
		for _, e := range supportedEnc {
			out = append(out, mt.Mechanism{Name: mt.MechanismIPsec3GPP, Alg: a, EAlg: e, Prot: mt.ProtESP, Mode: ipsec.ModeTransport})
		}
	}
	return out
}

// serverMechanisms builds the Security-Server list (without the P-CSCF's
// SPIs and ports yet) and the index of the entry the UE will choose.
func (c *Core) serverMechanisms(offer []mt.Mechanism) ([]mt.Mechanism, int, error) {
	if len(c.cfg.Mechanisms) == 0 {
		// Kamailio style: the first offered pair the core supports, alone.
		for _, m := range offer {
			if acceptable(m) && mt.Supported(m.Alg, m.EAlg) {
				return []mt.Mechanism{{Name: mt.MechanismIPsec3GPP, Alg: mt.NormAuth(m.Alg), EAlg: mt.NormEnc(m.EAlg), Prot: mt.ProtESP, Mode: ipsec.ModeTransport}}, 0, nil
			}
		}
		return nil, 0, fmt.Errorf("none of the offered ipsec-3gpp alg/ealg pairs (transport mode, esp) is supported: %w", mt.ErrNoAcceptableMechanism)
	}
	list := c.supportedMechanisms()
	chosen, err := mt.Choose(offer, list)
	if err != nil {
		return nil, 0, err
	}
	for i, m := range list {
		if strings.EqualFold(string(m.Alg), string(chosen.Alg)) && strings.EqualFold(string(m.EAlg), string(mt.NormEnc(chosen.EAlg))) {
			return list, i, nil
		}
	}
	return nil, 0, fmt.Errorf("mt.Choose returned alg %q ealg %q, which the P-CSCF did not list: %w", chosen.Alg, chosen.EAlg, mt.ErrNoAcceptableMechanism)
}

// acceptable reports whether an offered entry is an ipsec-3gpp ESP
// transport-mode mechanism (other modes are not negotiated).
func acceptable(m mt.Mechanism) bool {
	return strings.EqualFold(m.Name, mt.MechanismIPsec3GPP) &&
		(m.Prot == "" || strings.EqualFold(m.Prot, mt.ProtESP)) &&
		(m.Mode == "" || strings.EqualFold(string(m.Mode), string(ipsec.ModeTransport)))
}

// setReservation is an SA set decided under c.mu and installed outside
// it: newTemporarySet reserves (reserveSetLocked), installs (installSet)
// and commits or rolls back (commitSetLocked).
type setReservation struct {
	b           *binding
	ch          *challenge
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

// errSuperseded ends a set installation whose challenge was replaced, or
// whose binding ended, while the SAs were being installed.
var errSuperseded = errors.New("superseded while the SA set was installed")

// newTemporarySet plans and installs the P-CSCF's mirror SA set for a
// challenge before the 401 leaves, so that the UE's first protected message
// can be handled (TS 33.203 §7.2). It is called and returns under c.mu, but
// releases it while the port_pc is bound and the SAs installed: the
// decision is taken and committed under the lock, the I/O happens outside.
func (c *Core) newTemporarySet(rc regContext, b *binding, ch *challenge) (*secSet, error) {
	rv, err := c.reserveSetLocked(rc, b, ch)
	if err != nil {
		return nil, err
	}
	c.unlockQuiet()
	err = c.installSet(rv)
	c.mu.Lock()
	return c.commitSetLocked(rv, err)
}

// reserveSetLocked decides the set: the mechanisms, the SPIs (held until
// the commit), and drops the sets it replaces.
func (c *Core) reserveSetLocked(rc regContext, b *binding, ch *challenge) (*setReservation, error) {
	list, idx, err := c.serverMechanisms(rc.offer)
	if err != nil {
		return nil, err
	}
	client := ueParams(rc.offer)
	ueIP := rc.in.remote.Addr()
	// A new challenge replaces the previous temporary set: the UE builds
	// SAs only from the 401 it answers.
	if b.next != nil {
		c.dropSetLocked(b.next, "replaced by a new challenge")
	}
	if old := c.byFlow[netip.AddrPortFrom(ueIP, client.PortC)]; old != nil {
		c.dropSetLocked(old, "its port_uc is reused by a new Security-Client")
	}
	rv := &setReservation{
		b: b, ch: ch, epoch: c.epoch, ue: ueIP, local: c.localFor(ueIP), transport: rc.in.transport,
		client: client, list: list, idx: idx, clientMechs: rc.offer,
	}
	if b.cur != nil {
		rv.avoid = b.cur.server.PortC
	}
	if rv.spiPC, rv.spiPS, err = c.allocSPIsLocked(client); err != nil {
		return nil, err
	}
	c.spiHeld[rv.spiPC], c.spiHeld[rv.spiPS] = true, true
	return rv, nil
}

// installSet binds port_pc, plans the SA set and installs it (no lock
// held). On error nothing stays bound or installed.
func (c *Core) installSet(rv *setReservation) error {
	pc, err := c.openClientPort(rv.avoid)
	if err != nil {
		return fmt.Errorf("port_pc: %w", err)
	}
	server := mt.Params{SPIc: rv.spiPC, SPIs: rv.spiPS, PortC: pc.addr.Port(), PortS: c.server.addr.Port()}
	for i := range rv.list {
		rv.list[i].SPIc, rv.list[i].SPIs, rv.list[i].PortC, rv.list[i].PortS = server.SPIc, server.SPIs, server.PortC, server.PortS
		rv.list[i].Text = ""
	}
	sa, err := mt.PlanPCSCF(mt.Endpoints{UE: rv.ue, PCSCF: rv.local}, rv.client, server, rv.list[rv.idx], rv.ch.vec.CK, rv.ch.vec.IK, 0)
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
// removal queued) when the core closed or restarted, the challenge was
// replaced or the binding ended meanwhile.
func (c *Core) commitSetLocked(rv *setReservation, err error) (*secSet, error) {
	delete(c.spiHeld, rv.spiPC)
	delete(c.spiHeld, rv.spiPS)
	b := rv.b
	if err == nil && (c.closed || c.epoch != rv.epoch || b.chal != rv.ch || c.bindings[b.key] != b) {
		err = errSuperseded
		sa, pc := rv.sa, rv.pc
		c.later(func() error {
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
	// Another challenge of the binding may have committed meanwhile.
	if b.next != nil {
		c.dropSetLocked(b.next, "replaced by a new challenge")
	}
	if old := c.byFlow[netip.AddrPortFrom(rv.ue, rv.client.PortC)]; old != nil {
		c.dropSetLocked(old, "its port_uc is reused by a new Security-Client")
	}
	client, server := rv.client, rv.server
	s := &secSet{
		id: rv.sa.ID, state: setTemporary, b: b,
		ue: rv.ue, local: rv.local, transport: rv.transport,
		mech: rv.list[rv.idx], client: client, server: server,
		clientMechs: rv.clientMechs, serverMechs: rv.list,
		sa: rv.sa, pc: rv.pc,
	}
	s.pc.set = s
	c.sets[s.id] = s
	c.byFlow[s.flow()] = s
	b.next = s
	rv.ch.set = s
	c.log.Info("temporary SA set installed", "set", s.id, "impi", b.sub.IMPI, "alg", s.mech.Alg, "ealg", s.mech.EAlg,
		"spi_uc", client.SPIc, "spi_us", client.SPIs, "spi_pc", server.SPIc, "spi_ps", server.SPIs,
		"port_uc", client.PortC, "port_us", client.PortS, "port_pc", server.PortC, "port_ps", server.PortS)
	return s, nil
}

// openClientPort binds a new port_pc, different from avoid (the current
// set's) as TS 33.203 §7.4 requires, and from port_ps.
func (c *Core) openClientPort(avoid uint16) (*endpoint, error) {
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
		if p := ep.addr.Port(); p != avoid && p != c.server.addr.Port() {
			return ep, nil
		}
		held = append(held, ep) // keep it bound so the next try gets another port
	}
	return nil, errors.New("no free port different from the current port_pc")
}

// allocSPIsLocked picks spi_pc and spi_ps: random, above the reserved
// 1..255 (RFC 4303 §2.1), distinct from each other, from the UE's and from
// every SPI of the live sets and of those being installed.
func (c *Core) allocSPIsLocked(ue mt.Params) (uint32, uint32, error) {
	used := map[uint32]bool{ue.SPIc: true, ue.SPIs: true}
	for v := range c.spiHeld {
		used[v] = true
	}
	for _, s := range c.sets {
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

// promoteLocked makes the temporary set that carried a successful
// authentication the established one; the previous established set becomes
// old until the new one carries traffic (TS 33.203 §7.4).
func (c *Core) promoteLocked(b *binding, s *secSet) {
	if s == nil || s.state != setTemporary {
		return
	}
	if b.old != nil {
		c.dropSetLocked(b.old, "superseded twice")
	}
	if prev := b.cur; prev != nil {
		prev.state = setOld
		b.old = prev
		if prev.timer != nil {
			prev.timer.Stop()
		}
		if d := time.Until(prev.expires); d > 0 {
			prev.timer = c.after(d, func() { c.dropSetLocked(prev, "old SA set lifetime ended") })
		} else {
			c.dropSetLocked(prev, "old SA set lifetime ended")
		}
	}
	s.state = setEstablished
	b.cur, b.next = s, nil
	s.expires = b.expires.Add(mt.ExpiresMargin)
	c.log.Info("SA set established", "set", s.id, "impi", b.sub.IMPI)
}

// dropTemporaryLocked removes a temporary set after a failed or abandoned
// authentication; the established set, if any, stays in use.
func (c *Core) dropTemporaryLocked(s *secSet, why string) {
	if s.state != setTemporary {
		return
	}
	c.dropSetLocked(s, why)
}

// dropSetLocked removes one SA set from the P-CSCF's state at once, and
// queues the removal of its SAs, its port_pc and its TCP connections for
// when c.mu is released (unlock reports a failed removal).
func (c *Core) dropSetLocked(s *secSet, why string) {
	if s == nil || s.removed {
		return
	}
	s.removed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	delete(c.sets, s.id)
	if c.byFlow[s.flow()] == s {
		delete(c.byFlow, s.flow())
	}
	if b := s.b; b != nil {
		switch s {
		case b.cur:
			b.cur = nil
		case b.next:
			b.next = nil
		case b.old:
			b.old = nil
		}
		if b.chal != nil && b.chal.set == s {
			b.chal.set = nil
		}
	}
	c.log.Info("SA set removed", "set", s.id, "state", s.state.String(), "reason", why)
	ps, flow := c.server.addr.Port(), s.flow()
	c.later(func() error {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.cfg.IPsec.Remove(rctx, s.sa)
		cancel()
		c.stats.setsRemoved.Add(1)
		c.closeEndpoint(s.pc)
		c.tp.CloseConns(func(tc *sipnet.Conn) bool { return tc.Local().Port() == ps && tc.Remote() == flow })
		if err != nil {
			err = fmt.Errorf("imscore: remove SA set %d: %w", s.id, err)
			c.log.Warn("SA set removal failed", "set", s.id, "err", err)
		}
		return err
	})
}

// responseRoute says where the response to req goes. TCP: on the
// connection it came on. UDP over an SA set: from port_pc to the UE's
// port_us (TS 33.203 §7.1). Unprotected UDP: RFC 3261 §18.2.2 with RFC 3581
// — to the source address, at the source port when Via has rport, else at
// the Via sent-by port.
func (c *Core) responseRoute(in inbound, req *sip.Request, set *secSet) route {
	if in.conn != nil {
		return tcpRoute(in.conn)
	}
	if set != nil {
		r := set.toUE()
		if via := req.Via(); via != nil && via.Port != 0 && via.Port != int(set.client.PortS) {
			c.log.Warn("Via sent-by port differs from port_us: answering at port_us", "via_port", via.Port, "port_us", set.client.PortS)
		}
		return r
	}
	port := uint16(5060)
	via := req.Via()
	if via.Port > 0 && via.Port < 65536 {
		port = uint16(via.Port)
	}
	if via.Params.Has("rport") {
		port = in.remote.Port()
	}
	return udpRoute(in.ep, netip.AddrPortFrom(in.remote.Addr(), port))
}

// reply queues the final response to req along r (sent, and stored in the
// server transaction for retransmissions, once c.mu is released), and then
// runs after (under c.mu; the I/O after queues goes out after the
// response). It honours Faults.DelayResponses. c.mu must be held.
func (c *Core) reply(req *sip.Request, resp *sip.Response, r route, after func()) {
	finalize(resp)
	if d := c.cfg.Faults.responseDelay(); d > 0 {
		c.after(d, func() {
			c.respond(req, resp, r)
			if after != nil {
				after()
			}
		})
		return
	}
	c.respond(req, resp, r)
	if after != nil {
		after()
	}
}

// respond queues the final response to req, kept in req's server
// transaction for retransmissions. c.mu must be held.
func (c *Core) respond(req *sip.Request, resp *sip.Response, r route) {
	c.later(func() error {
		if err := c.tp.Respond(req, resp, r); err != nil {
			c.log.Warn("send failed", "route", r.String(), "err", err)
		}
		return nil
	})
}

// ---- helpers -----------------------------------------------------------

// newResponse builds a response per RFC 3261 §8.2.6 (sipgo adds the To tag
// and the RFC 3581 received/rport).
func newResponse(req *sip.Request, code int, reason string) *sip.Response {
	return sip.NewResponseFromRequest(req, code, reason, nil)
}

// parseSecurityHeaders parses every header named name (RFC 3329 allows
// several, each a comma list).
func parseSecurityHeaders(msg sip.Message, name string) ([]mt.Mechanism, error) {
	vals := headerValues(msg, name)
	if len(vals) == 0 {
		return nil, nil
	}
	ms, err := mt.ParseSecurity(vals...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ms, nil
}

// headerValues returns the values of every header named name (any case).
func headerValues(msg sip.Message, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, h := range msg.GetHeaders(n) {
			out = append(out, h.Value())
		}
	}
	return out
}

// hasOptionTag reports whether tag is in Supported, Require or Proxy-Require.
func hasOptionTag(msg sip.Message, tag string) bool {
	for _, v := range headerValues(msg, "Supported", "k", "Require", "Proxy-Require") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}

func formatSecurity(ms []mt.Mechanism) string { return mt.FormatSecurity(ms) }

// sameMechanisms compares two Security-* lists mechanism by mechanism,
// parameter by parameter (mt.Mechanism.Equal), so that spacing and
// parameter order do not matter.
func sameMechanisms(a, b []mt.Mechanism) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// sanitize makes text safe inside a quoted Warning text.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 {
			return '\''
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// isDeregistration reports whether a REGISTER removes its binding(s):
// Expires: 0, or every Contact with expires=0.
func isDeregistration(req *sip.Request) bool {
	exp, ok := requestedExpires(req)
	return ok && exp == 0
}

// requestedExpires is the expiry the REGISTER asks for: the Contact's
// expires parameter, else the Expires header (RFC 3261 §10.2.1.1).
func requestedExpires(req *sip.Request) (int64, bool) {
	if ct := req.Contact(); ct != nil {
		if v, ok := ct.Params.Get("expires"); ok {
			if n, ok := parseDeltaSeconds(v); ok {
				return n, true
			}
		}
	}
	if h := req.GetHeader("Expires"); h != nil {
		if n, ok := parseDeltaSeconds(h.Value()); ok {
			return n, true
		}
	}
	return 0, false
}

// maxDeltaSeconds caps delta-seconds values (RFC 3261 §25.1 allows any
// size; 2^32−1 keeps the arithmetic in time.Duration safe).
const maxDeltaSeconds = 1<<32 - 1

// parseDeltaSeconds parses a delta-seconds value, capped at maxDeltaSeconds.
func parseDeltaSeconds(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxDeltaSeconds {
		return maxDeltaSeconds, true // all digits: only too large
	}
	return int64(n), true
}
