package imscore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/digest"
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
//   - A protected REGISTER whose Authorization username is not the one
//     its SA set was set up for, or whose Contact is another contact's,
//     gets 403 from the P-CSCF (TS 33.203 §7.1 binds an SA to the
//     identities it was set up for).
//   - The P-CSCF relays a 401 only with the SA set installed; when it
//     cannot set one up it answers 494 or 500 instead and tells the S-CSCF
//     to forget the challenge (scscfPeer.abandon), a shortcut of the lab
//     core for what the S-CSCF's reg-await-auth timer would do later.
//   - The P-CSCF installs its SAs without kernel lifetimes (Kamailio does the
//     same) and enforces them itself: a temporary set lives AuthTimeout, an
//     established one until its registration ends, an old one until the new
//     set carries a request or its own lifetime (registration expiry + 30 s)
//     ends. Lifetimes in the kernel cannot be extended once installed.

// pcscf is the P-CSCF: sec-agree, the SA sets and the UEs' registrations
// as far as a P-CSCF knows them, with its own lock. With CKIKInChallenge it
// is a transparent front of the bare S-CSCF: it relays every request on
// Addr as it is and sends the NOTIFYs to the Path's first hop.
type pcscf struct {
	roleLock
	c       *Core
	scscf   scscfPeer
	sets    map[uint64]*secSet         // every installed SA set
	byFlow  map[netip.AddrPort]*secSet // (UE IP, port_uc) → the set protected requests arrive over
	spiHeld map[uint32]bool            // SPIs of SA sets being installed outside the lock
	ues     map[string]*pcontact       // by contactKey
}

// pcontact is one UE contact as the P-CSCF knows it, with the SA sets it
// keeps for it.
type pcontact struct {
	key        string   // contactKey of the Contact
	impi       string   // the Authorization username (else the To URI) of its REGISTERs
	impus      []string // P-Associated-URI of the last 200: the first is asserted
	registered bool
	ue         netip.AddrPort // the UE's IP and the Contact's port: requests to it without SAs
	flow       netip.AddrPort // MD5: where the registration came from (its flow)
	expires    time.Time      // the registration's, from the 200
	cur        *secSet        // established: carries the UE's traffic
	next       *secSet        // temporary: from the last 401, awaiting the protected REGISTER
	old        *secSet        // the previous established set, until the new one carries traffic
	authTimer  *time.Timer    // reg-await-auth of next
	expTimer   *time.Timer    // the established set's lifetime (registration expiry + 30 s)
}

func (u *pcontact) stopTimers() {
	if u.authTimer != nil {
		u.authTimer.Stop()
	}
	if u.expTimer != nil {
		u.expTimer.Stop()
	}
}

func newPCSCF(c *Core) *pcscf {
	return &pcscf{
		roleLock: roleLock{wg: &c.wg},
		c:        c,
		sets:     map[uint64]*secSet{},
		byFlow:   map[netip.AddrPort]*secSet{},
		spiHeld:  map[uint32]bool{},
		ues:      map[string]*pcontact{},
	}
}

// regContext is one REGISTER on its way through the P-CSCF.
type regContext struct {
	in    inbound
	req   *sip.Request   // as received
	fwd   *sip.Request   // as handed to the S-CSCF
	set   *secSet        // the SA set it arrived over; nil when unprotected
	offer []mt.Mechanism // Security-Client, when a challenge may follow
	r     route          // where the response goes
}

// onUnprotected handles a request on the unprotected port.
func (p *pcscf) onUnprotected(in inbound, req *sip.Request) {
	c := p.c
	// Admission first, then the server transaction (which may resend a
	// response, so outside the lock), then the request under the lock.
	p.mu.Lock()
	closed, admit := p.closed, c.cfg.CKIKInChallenge || req.Method == sip.REGISTER || p.md5FlowLocked(in) != nil
	p.mu.Unlock()
	switch {
	case closed:
		return
	case !admit:
		c.discard(in, req, "unprotected request other than REGISTER")
		return
	case c.retransmission(req):
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	r := p.responseRoute(in, req, nil)
	if c.cfg.CKIKInChallenge {
		// A transparent front: the external P-CSCF has added what a
		// P-CSCF adds.
		if req.Method == sip.REGISTER {
			c.stats.regUnprot.Add(1)
		}
		p.mu.Unlock()
		p.relay(req, p.copyFor(in, req), r, req.Method == sip.REGISTER)
		return
	}
	if req.Method != sip.REGISTER {
		u := p.md5FlowLocked(in)
		if u == nil {
			p.unlockQuiet()
			c.discard(in, req, "unprotected request other than REGISTER")
			return
		}
		fwd := p.copyFor(in, req)
		assertIdentity(fwd, u)
		p.mu.Unlock()
		p.relay(req, fwd, r, false)
		return
	}
	c.stats.regUnprot.Add(1)
	rc := regContext{in: in, req: req, r: r}
	if c.cfg.isAKA() {
		offer, bad := p.checkSecurityClient(req, nil)
		if bad != nil {
			p.reply(req, bad, r, nil)
			p.unlockQuiet()
			return
		}
		rc.offer = offer
	}
	rc.fwd = p.registerCopy(rc, ipNo)
	p.mu.Unlock()
	p.relayRegister(rc)
}

// md5FlowLocked returns the registered MD5 contact whose flow in came
// from: with SIP digest there are no SAs and the P-CSCF recognises a UE by
// the address its registration came from.
func (p *pcscf) md5FlowLocked(in inbound) *pcontact {
	if p.c.cfg.isAKA() {
		return nil
	}
	for _, u := range p.ues {
		if u.registered && u.flow == in.remote {
			return u
		}
	}
	return nil
}

// onProtected handles a request on port_ps: it must come from the port_uc
// of a live SA set.
func (p *pcscf) onProtected(in inbound, req *sip.Request) {
	c := p.c
	const noSA = "port_ps: no security association from this address and port"
	p.mu.Lock()
	closed, set := p.closed, p.byFlow[in.remote]
	noSet := set == nil || set.removed // read under the lock: a drop writes it
	p.mu.Unlock()
	switch {
	case closed:
		return
	case noSet:
		c.discard(in, req, noSA)
		return
	case c.retransmission(req):
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if p.byFlow[in.remote] != set || set.removed {
		// Removed while the server transaction opened.
		p.unlockQuiet()
		c.discard(in, req, noSA)
		return
	}
	u := set.b
	if set.state == setEstablished && u.old != nil {
		// The new set carries traffic: the old one is no longer needed
		// (TS 33.203 §7.4).
		p.dropSetLocked(u.old, "the new SA set carries traffic")
	}
	r := p.responseRoute(in, req, set)
	if req.Method == sip.REGISTER {
		c.stats.regProt.Add(1)
		rc, ok := p.onProtectedRegisterLocked(in, req, set, r)
		p.unlockQuiet()
		if ok {
			p.relayRegister(rc)
		}
		return
	}
	fwd := p.copyFor(in, req)
	if set.state != setTemporary && u.registered {
		assertIdentity(fwd, u)
	}
	p.unlockQuiet()
	p.relay(req, fwd, r, false)
}

// onProtectedRegisterLocked checks sec-agree on a REGISTER that arrived
// over set, and that the set is the REGISTER's (TS 33.203 §7.1: an SA is
// bound to the identities it was set up for). ok says whether it goes on
// to the S-CSCF; else the answer is queued.
func (p *pcscf) onProtectedRegisterLocked(in inbound, req *sip.Request, set *secSet, r route) (regContext, bool) {
	verify, err := parseSecurityHeaders(req, "Security-Verify")
	switch {
	case err != nil:
		p.secAgreeFail(req, r, set, sip.StatusBadRequest, "Malformed Security-Verify", err.Error())
		return regContext{}, false
	case len(verify) == 0:
		p.secAgreeFail(req, r, set, 494, "Security Agreement Required", "protected REGISTER without Security-Verify")
		return regContext{}, false
	case !sameMechanisms(verify, set.serverMechs):
		p.secAgreeFail(req, r, set, 494, "Security Agreement Required", "Security-Verify differs from the Security-Server sent")
		return regContext{}, false
	}
	rc := regContext{in: in, req: req, set: set, r: r}
	if set.state == setTemporary {
		client, err := parseSecurityHeaders(req, "Security-Client")
		switch {
		case err != nil:
			p.secAgreeFail(req, r, set, sip.StatusBadRequest, "Malformed Security-Client", err.Error())
			return regContext{}, false
		case !sameMechanisms(client, set.clientMechs):
			p.secAgreeFail(req, r, set, 494, "Security Agreement Required", "Security-Client differs from the one of the initial REGISTER")
			return regContext{}, false
		}
		// Should the S-CSCF challenge it again, the new temporary set is
		// made for this same Security-Client (TS 24.229 §5.2.2.1).
		rc.offer = client
	} else if !isDeregistration(req) {
		offer, bad := p.checkSecurityClient(req, set)
		if bad != nil {
			p.reply(req, bad, r, nil)
			return regContext{}, false
		}
		rc.offer = offer
	}
	if impi := authUsername(req); impi != "" && set.b.impi != "" && !strings.EqualFold(impi, set.b.impi) {
		p.reply(req, newResponse(req, sip.StatusForbidden, "Forbidden (security association belongs to another subscriber)"), r, nil)
		return regContext{}, false
	}
	if ct := req.Contact(); ct != nil && !ct.Address.Wildcard && contactKey(ct.Address) != set.b.key {
		p.reply(req, newResponse(req, sip.StatusForbidden, "Forbidden (security association belongs to another contact)"), r, nil)
		return regContext{}, false
	}
	ip := ipYes
	if set.state == setTemporary {
		ip = ipPending
	}
	rc.fwd = p.registerCopy(rc, ip)
	return rc, true
}

// secAgreeFail rejects a protected REGISTER for a sec-agree violation and
// drops the temporary set it came over, if it did.
func (p *pcscf) secAgreeFail(req *sip.Request, r route, set *secSet, code int, reason, detail string) {
	c := p.c
	c.stats.secAgree.Add(1)
	c.log.Info("sec-agree violation", "call_id", req.CallID().Value(), "detail", detail)
	resp := newResponse(req, code, reason)
	resp.AppendHeader(sip.NewHeader("Warning", `399 `+hostOf(set.local)+` "`+detail+`"`))
	if code == 494 {
		resp.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(p.supportedMechanisms())))
	}
	p.reply(req, resp, r, func() {
		if set.state == setTemporary {
			p.dropSetLocked(set, "sec-agree violation")
		}
	})
}

// copyFor is the copy of req the P-CSCF hands on: with its source and
// transport, and without a P-Asserted-Identity of the UE's own (RFC 3325
// §5: only the P-CSCF asserts).
func (p *pcscf) copyFor(in inbound, req *sip.Request) *sip.Request {
	fwd := mwCopy(req)
	fwd.SetSource(in.remote.String())
	fwd.SetTransport(in.transport)
	if !p.c.cfg.CKIKInChallenge {
		removeHeader(fwd, "P-Asserted-Identity")
	}
	return fwd
}

// assertIdentity adds P-Asserted-Identity: the contact's default IMPU
// (TS 24.229 §5.2.6.3.4).
func assertIdentity(fwd *sip.Request, u *pcontact) {
	if len(u.impus) > 0 {
		fwd.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+u.impus[0]+">"))
	}
}

// registerCopy is the REGISTER as the P-CSCF hands it to the S-CSCF
// (TS 24.229 §5.2.2.1): its Path first (RFC 3327: the protected server
// port over SAs, else the unprotected address), and integrity-protected
// in Authorization, the UE's own value replaced.
func (p *pcscf) registerCopy(rc regContext, ip string) *sip.Request {
	c := p.c
	fwd := p.copyFor(rc.in, rc.req)
	port := c.unprot.addr.Port()
	if rc.set != nil {
		port = rc.set.server.PortS
	}
	path := "<sip:term@" + netip.AddrPortFrom(c.localFor(rc.in.remote.Addr()), port).String() + ";lr>"
	theirs := headerValues(fwd, "Path")
	removeHeader(fwd, "Path")
	fwd.AppendHeader(sip.NewHeader("Path", path))
	for _, v := range theirs {
		fwd.AppendHeader(sip.NewHeader("Path", v))
	}
	if vals := headerValues(fwd, "Authorization"); len(vals) > 0 {
		if a, err := digest.ParseAuthorization(vals[0]); err == nil {
			removeHeader(fwd, "Authorization")
			fwd.AppendHeader(sip.NewHeader("Authorization", a.String()+`, integrity-protected="`+ip+`"`))
		} // else the S-CSCF answers 400
	}
	return fwd
}

// authUsername is the username of the REGISTER's Authorization, or "".
func authUsername(req *sip.Request) string {
	if vals := headerValues(req, "Authorization"); len(vals) > 0 {
		if a, err := digest.ParseAuthorization(vals[0]); err == nil {
			return a.Username
		}
	}
	return ""
}

// relay hands a request to the S-CSCF and its answer back to the UE
// (call it without the lock).
func (p *pcscf) relay(req, fwd *sip.Request, r route, register bool) {
	ans := p.scscf.request(fwd)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	twice := false
	if register && ans.resp.StatusCode == sip.StatusUnauthorized {
		p.c.stats.challenges.Add(1)
		twice = p.c.cfg.Faults.take(&p.c.cfg.Faults.retransmitChallenge)
	}
	resp := ans.resp
	p.reply(req, resp, r, func() {
		if twice {
			p.after(20*time.Millisecond, func() {
				p.later(func() error { _ = p.c.send(r, resp); return nil })
			})
		}
		p.thenLocked(ans)
	})
	p.unlockQuiet()
}

// thenLocked queues the S-CSCF's requests that follow its response.
func (p *pcscf) thenLocked(ans mwAnswer) {
	if ans.then != nil {
		p.later(func() error { ans.then(); return nil })
	}
}

// relayRegister hands a REGISTER to the S-CSCF and handles the answer as a
// P-CSCF does (TS 24.229 §5.2.2): a 401 gets the temporary SA set and
// Security-Server, a 200 promotes it or, for a de-registration, drops the
// UE's sets after it left, a 403 drops the temporary set.
func (p *pcscf) relayRegister(rc regContext) {
	c := p.c
	ans := p.scscf.request(rc.fwd)
	resp := ans.resp
	p.mu.Lock()
	defer p.unlockQuiet()
	if p.closed {
		return
	}
	switch {
	case resp.StatusCode == sip.StatusUnauthorized:
		p.challengedLocked(rc, ans)
	case resp.StatusCode >= 200 && resp.StatusCode < 300 && isDeregistration(rc.req):
		p.deregisteredLocked(rc, ans)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		u := p.contactOfLocked(rc)
		if u == nil {
			p.reply(rc.req, resp, rc.r, func() { p.thenLocked(ans) })
			return
		}
		u.registered = true
		u.impus = splitAssociated(headerValues(resp, "P-Associated-URI"))
		u.ue = ueAddr(rc)
		u.flow = rc.in.remote
		u.expires = time.Now().Add(grantedOf(resp))
		if rc.set != nil {
			// The set is established as the 200 leaves over it; the old
			// one stays until the new one carries traffic.
			p.promoteLocked(u, rc.set)
		}
		if c.cfg.isAKA() {
			resp.AppendHeader(sip.NewHeader("Supported", "sec-agree"))
		}
		p.reply(rc.req, resp, rc.r, func() { p.thenLocked(ans) })
	case resp.StatusCode == sip.StatusForbidden:
		u := p.contactOfLocked(rc)
		p.reply(rc.req, resp, rc.r, func() {
			if u != nil && p.ues[u.key] == u {
				if u.next != nil {
					p.dropSetLocked(u.next, "authentication failed")
				}
				p.forgetIfUnregisteredLocked(u)
			}
			p.thenLocked(ans)
		})
	default:
		p.reply(rc.req, resp, rc.r, func() { p.thenLocked(ans) })
	}
}

// contactOfLocked returns the contact record of a REGISTER: the one of the
// set it came over, else the one of its Contact.
func (p *pcscf) contactOfLocked(rc regContext) *pcontact {
	if rc.set != nil && !rc.set.removed {
		return rc.set.b
	}
	if ct := rc.req.Contact(); ct != nil && !ct.Address.Wildcard {
		if u := p.ues[contactKey(ct.Address)]; u != nil {
			return u
		}
		if !p.c.cfg.isAKA() {
			u := &pcontact{key: contactKey(ct.Address), impi: identityOf(rc.req)}
			p.ues[u.key] = u
			return u
		}
	}
	return nil
}

// identityOf is the private identity a REGISTER names: the Authorization
// username, else the To URI.
func identityOf(req *sip.Request) string {
	if v := authUsername(req); v != "" {
		return v
	}
	return canonURI(req.To().Address.String())
}

// ueAddr is where requests to the UE go: its IP and the Contact's port
// (default 5060), port_us over SAs.
func ueAddr(rc regContext) netip.AddrPort {
	if rc.set != nil {
		return netip.AddrPortFrom(rc.set.ue, rc.set.client.PortS)
	}
	port := uint16(5060)
	if ct := rc.req.Contact(); ct != nil && ct.Address.Port > 0 && ct.Address.Port < 65536 {
		port = uint16(ct.Address.Port)
	}
	return netip.AddrPortFrom(rc.in.remote.Addr(), port)
}

// grantedOf is the expiry a 200 to a REGISTER grants: its Contact's
// expires, else Expires.
func grantedOf(resp *sip.Response) time.Duration {
	if ct := resp.Contact(); ct != nil {
		if v, ok := ct.Params.Get("expires"); ok {
			if n, ok := parseDeltaSeconds(v); ok {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := resp.GetHeader("Expires"); h != nil {
		if n, ok := parseDeltaSeconds(h.Value()); ok {
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// splitAssociated splits P-Associated-URI values into URIs.
func splitAssociated(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			part = strings.TrimPrefix(part, "<")
			if i := strings.IndexByte(part, '>'); i >= 0 {
				part = part[:i]
			}
			if part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// challengedLocked handles a 401: with AKA it takes ck and ik out of it,
// installs the temporary SA set before the 401 leaves, so that the UE's
// first protected message can be handled (TS 33.203 §7.2), and adds
// Security-Server. It releases the lock while the set is installed.
func (p *pcscf) challengedLocked(rc regContext, ans mwAnswer) {
	c := p.c
	resp := ans.resp
	www := headerValues(resp, "WWW-Authenticate")
	var dc *digest.Challenge
	if len(www) > 0 {
		dc, _ = digest.ParseChallenge(www[0])
	}
	if dc == nil {
		// Nothing to take ck and ik from: relay as it is.
		c.stats.challenges.Add(1)
		p.reply(rc.req, resp, rc.r, func() { p.thenLocked(ans) })
		return
	}
	ck, errCK := hex.DecodeString(dc.CK)
	ik, errIK := hex.DecodeString(dc.IK)
	dc.CK, dc.IK = "", "" // the UE never sees them
	value := dc.String()
	if c.cfg.Faults.take(&c.cfg.Faults.malformedWWWAuth) {
		value = malformedWWWAuth(c.cfg.Domain, dc.Nonce)
	}
	removeHeader(resp, "WWW-Authenticate")
	resp.AppendHeader(sip.NewHeader("WWW-Authenticate", value))
	if c.cfg.isAKA() {
		if errCK != nil || errIK != nil || len(ck) != 16 || len(ik) != 16 {
			c.log.Error("401 from the S-CSCF without ck and ik")
			p.later(func() error { p.scscf.abandon(dc.Nonce); return nil })
			p.reply(rc.req, newResponse(rc.req, sip.StatusInternalServerError, "Server Internal Error (no keys)"), rc.r, nil)
			return
		}
		var keys [2][16]byte
		copy(keys[0][:], ck)
		copy(keys[1][:], ik)
		set, err := p.newTemporarySet(rc, keys[0], keys[1], dc.Nonce)
		if errors.Is(err, errSuperseded) {
			// A newer challenge, a restart or the end of the contact came
			// while the SAs were installed: this 401 would be useless.
			c.log.Info("challenge superseded while its SA set was installed", "contact", rc.req.Contact().Address.String())
			if !p.closed {
				p.reply(rc.req, newResponse(rc.req, sip.StatusInternalServerError, "Server Internal Error (challenge superseded)"), rc.r, nil)
			}
			return
		}
		if err != nil {
			c.log.Error("cannot set up the temporary SA set", "contact", rc.req.Contact().Address.String(), "err", err)
			p.later(func() error { p.scscf.abandon(dc.Nonce); return nil }) // before the answer leaves
			var out *sip.Response
			if errors.Is(err, mt.ErrNoAcceptableMechanism) {
				c.stats.secAgree.Add(1)
				out = newResponse(rc.req, 494, "Security Agreement Required")
				out.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(p.supportedMechanisms())))
			} else {
				out = newResponse(rc.req, sip.StatusInternalServerError, "Server Internal Error (IPsec)")
			}
			if u := p.ues[contactKey(rc.req.Contact().Address)]; u != nil {
				p.forgetIfUnregisteredLocked(u)
			}
			p.reply(rc.req, out, rc.r, nil)
			return
		}
		switch v, override := c.cfg.Faults.takeSecurityServer(); {
		case override:
			resp.AppendHeader(sip.NewHeader("Security-Server", v))
		case c.cfg.Faults.take(&c.cfg.Faults.omitSecServer):
		case c.cfg.Faults.take(&c.cfg.Faults.malformedSecServer):
			resp.AppendHeader(sip.NewHeader("Security-Server", "ipsec-3gpp;alg=;spi-c=x;port-s=99999,,;"))
		default:
			resp.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(set.serverMechs)))
		}
		resp.AppendHeader(sip.NewHeader("Supported", "sec-agree"))
	}
	c.stats.challenges.Add(1)
	twice := c.cfg.Faults.take(&c.cfg.Faults.retransmitChallenge)
	r := rc.r
	p.reply(rc.req, resp, r, func() {
		if twice {
			p.after(20*time.Millisecond, func() {
				p.later(func() error { _ = c.send(r, resp); return nil })
			})
		}
		p.thenLocked(ans)
	})
}

// deregisteredLocked relays the 200 to a de-REGISTER and drops the SA
// sets of the contacts it ended once it left.
func (p *pcscf) deregisteredLocked(rc regContext, ans mwAnswer) {
	var ended []*pcontact
	if ct := rc.req.Contact(); ct != nil && ct.Address.Wildcard {
		impi := identityOf(rc.req)
		for _, u := range p.ues {
			if strings.EqualFold(u.impi, impi) {
				ended = append(ended, u)
			}
		}
	} else if ct != nil {
		if u := p.ues[contactKey(ct.Address)]; u != nil {
			ended = append(ended, u)
		}
	}
	if len(ended) == 0 && rc.set != nil && !rc.set.removed {
		ended = append(ended, rc.set.b)
	}
	at := time.Now()
	drop := func() {
		for _, u := range ended {
			p.endLocked(u, at, "de-registered")
		}
	}
	r := rc.r
	p.reply(rc.req, ans.resp, r, func() {
		p.thenLocked(ans)
		if len(ended) == 0 {
			return
		}
		if tc := r.Conn; tc != nil {
			// Over TCP the 200 is only safe once acknowledged: a
			// retransmission after the SAs are gone would leave in clear
			// text (Kamailio 5.6's de-registration bug). Wait for the ACK,
			// bounded; without it, reset the connection while the SAs
			// still protect the RST, then drop them.
			dropLater := p.guarded(drop)
			sent := make(chan struct{})
			p.later(func() error { close(sent); return nil }) // queued after the 200
			p.goLocked(func() {
				<-sent
				if !tc.Drained(time.Second) {
					tc.Abort()
				}
				dropLater()
			})
			return
		}
		p.later(func() error {
			p.mu.Lock()
			if !p.closed {
				drop()
			}
			return p.unlock()
		})
	})
}

// forgetLocked drops a contact and its SA sets.
func (p *pcscf) forgetLocked(u *pcontact, why string) {
	if p.ues[u.key] != u {
		return
	}
	u.stopTimers()
	for _, s := range []*secSet{u.next, u.cur, u.old} {
		p.dropSetLocked(s, why)
	}
	delete(p.ues, u.key)
}

// forgetIfUnregisteredLocked forgets a contact that never registered.
func (p *pcscf) forgetIfUnregisteredLocked(u *pcontact) {
	if !u.registered {
		p.forgetLocked(u, "contact never registered")
	}
}

// regEnded implements pcscfPeer.
func (p *pcscf) regEnded(contacts []sip.Uri, at time.Time) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	for _, ct := range contacts {
		if u := p.ues[contactKey(ct)]; u != nil {
			p.endLocked(u, at, "registration ended by the network")
		}
	}
	return p.unlock()
}

// endLocked ends the registration of u as of at: its SA sets from before
// then go, and so does u unless the UE has begun registering again since.
func (p *pcscf) endLocked(u *pcontact, at time.Time, why string) {
	if p.ues[u.key] != u {
		return
	}
	for _, s := range []*secSet{u.next, u.cur, u.old} {
		if s != nil && !s.created.After(at) {
			p.dropSetLocked(s, why)
		}
	}
	if u.cur == nil && u.next == nil && u.old == nil {
		p.forgetLocked(u, why)
	} else {
		u.registered = u.cur != nil
	}
}

// forward implements pcscfPeer: the S-CSCF's request goes to the UE over
// its established SA set, from port_pc (UDP) or on a TCP connection
// dialled from port_pc, with port_ps in the Via so that the UE answers
// from port_uc to port_ps (TS 33.203 §7.1); without SAs from the
// unprotected port. Behind an external P-CSCF, to the Route's first hop.
func (p *pcscf) forward(req *sip.Request) (*sipnet.ClientTx, error) {
	c := p.c
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	np, err := p.forwardRouteLocked(req)
	p.unlockQuiet()
	if err != nil {
		return nil, err
	}
	r, err := p.forwardDial(np)
	if err != nil {
		return nil, err
	}
	req.PrependHeader(&sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: np.transport,
		Host: np.via.Addr().String(), Port: int(np.via.Port()),
		Params: branchParams(),
	})
	req.SetTransport(np.transport)
	finalize(req)
	r.Accept = p.acceptResponse
	return c.tp.Start(c.ctx, req, r)
}

// forwardPath is how a request to the UE leaves, decided under the lock:
// a ready route, or a TCP connection still to dial from the port_pc of
// dial (forwardDial, without the lock).
type forwardPath struct {
	r         route
	via       netip.AddrPort // the Via sent-by
	transport string         // the Via transport
	dial      *secSet
}

func (p *pcscf) forwardRouteLocked(req *sip.Request) (forwardPath, error) {
	c := p.c
	transport := uriTransport(req.Recipient)
	var dst netip.AddrPort
	switch {
	case c.cfg.CKIKInChallenge:
		// Behind an external P-CSCF: to the first hop of the Path the
		// REGISTER carried (RFC 3327), which the S-CSCF put in Route.
		hop, err := firstHop(headerValues(req, "Route"))
		if err != nil {
			return forwardPath{}, err
		}
		dst = hop
	default:
		u := p.ues[contactKey(req.Recipient)]
		if c.cfg.isAKA() {
			var set *secSet
			if u != nil {
				set = u.cur
			}
			if set == nil || set.removed {
				who := req.Recipient.String()
				if u != nil {
					who = u.impi
				}
				return forwardPath{}, fmt.Errorf("no established SA set for %s", who)
			}
			np := forwardPath{via: netip.AddrPortFrom(set.local, set.server.PortS), transport: "UDP", r: set.toUE()}
			if transport == "TCP" {
				np.transport, np.r = "TCP", route{}
				if set.tcpOut != nil {
					np.r = tcpRoute(set.tcpOut)
				} else {
					np.dial = set
				}
			}
			return np, nil
		}
		if u == nil || !u.registered {
			return forwardPath{}, fmt.Errorf("no registration for %s", req.Recipient.String())
		}
		dst = u.ue
	}
	via := netip.AddrPortFrom(c.localFor(dst.Addr()), c.unprot.addr.Port())
	if transport == "TCP" {
		return forwardPath{}, fmt.Errorf("NOTIFY over TCP without SAs is not supported by the lab core")
	}
	return forwardPath{r: udpRoute(c.unprot, dst), via: via, transport: "UDP"}, nil
}

// forwardDial completes np: it dials the TCP connection from port_pc to
// the UE's port_us (TS 33.203 §7.1) when np needs one, and keeps it with
// the set. Call it without the lock.
func (p *pcscf) forwardDial(np forwardPath) (route, error) {
	set := np.dial
	if set == nil {
		return np.r, nil
	}
	tc, err := p.c.dialFrom(set.pc, set.local, netip.AddrPortFrom(set.ue, set.client.PortS))
	if err != nil {
		return route{}, err
	}
	p.mu.Lock()
	removed := set.removed
	if !removed && set.tcpOut == nil {
		set.tcpOut = tc
	}
	p.unlockQuiet()
	if removed {
		tc.Abort()
		return route{}, fmt.Errorf("SA set %d removed while its TCP connection was dialled", set.id)
	}
	return tcpRoute(tc), nil
}

// acceptResponse is the Accept of the P-CSCF's client transactions: a
// response counts only when it arrived over an SA set (protectedResponse).
func (p *pcscf) acceptResponse(in *sipnet.Inbound) bool {
	c := p.c
	if ep := c.endpointOf(in); ep != nil && p.protectedResponse(c.inbound(in, ep)) {
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
func (p *pcscf) protectedResponse(in inbound) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch in.ep.role {
	case roleServer:
		s := p.byFlow[in.remote]
		return s != nil && !s.removed
	case roleClient:
		s := in.ep.set
		return s != nil && !s.removed && in.remote == netip.AddrPortFrom(s.ue, s.client.PortS)
	}
	return !p.c.cfg.isAKA() || p.c.cfg.CKIKInChallenge
}

// resetLocked drops every contact and SA set; the SA sets are removed when
// the lock is released (unlock reports the errors).
func (p *pcscf) resetLocked(why string) {
	for _, u := range p.ues {
		u.stopTimers()
	}
	ids := make([]uint64, 0, len(p.sets))
	for id := range p.sets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p.dropSetLocked(p.sets[id], why)
	}
	clear(p.ues)
}

// responseRoute says where the response to req goes. TCP: on the
// connection it came on. UDP over an SA set: from port_pc to the UE's
// port_us (TS 33.203 §7.1). Unprotected UDP: RFC 3261 §18.2.2 with RFC 3581
// — to the source address, at the source port when Via has rport, else at
// the Via sent-by port.
func (p *pcscf) responseRoute(in inbound, req *sip.Request, set *secSet) route {
	c := p.c
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
// server transaction for retransmissions, once the lock is released), and
// then runs after (under the lock; the I/O after queues goes out after the
// response). It honours Faults.DelayResponses. The lock must be held.
func (p *pcscf) reply(req *sip.Request, resp *sip.Response, r route, after func()) {
	finalize(resp)
	if d := p.c.cfg.Faults.responseDelay(); d > 0 {
		p.after(d, func() {
			p.respond(req, resp, r)
			if after != nil {
				after()
			}
		})
		return
	}
	p.respond(req, resp, r)
	if after != nil {
		after()
	}
}

// respond queues the final response to req, kept in req's server
// transaction for retransmissions. The lock must be held.
func (p *pcscf) respond(req *sip.Request, resp *sip.Response, r route) {
	c := p.c
	p.later(func() error {
		if err := c.tp.Respond(req, resp, r); err != nil {
			c.log.Warn("send failed", "route", r.String(), "err", err)
		}
		return nil
	})
}
