package imscore

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/digest"
	"github.com/imsue/imsue/mt"
)

// The S-CSCF role: registrar with Digest AKA (RFC 3310, RFC 4169) or plain
// digest (RFC 2617), driven by the HSS's vectors.
//
// Decisions where the specifications leave a choice:
//   - Every REGISTER that is not a de-registration over an established SA
//     set is challenged: initial registrations, re-registrations (so each one
//     negotiates a new SA set) and unprotected REGISTERs that carry a
//     response (TS 24.229 §5.4.1.2.1: integrity-protected="no" means
//     challenge again). A correct response counts only when it arrives over
//     the temporary SA set created with its challenge.
//   - A response="" without auts means the UE found AUTN's MAC wrong: 403,
//     the challenge is consumed and the registration state is not changed
//     (TS 24.229 §5.4.1.2.3). A wrong response, an AUTS whose MAC-S does not
//     verify, an unknown subscriber or an IMPU outside the subscriber's
//     implicit set: 403.
//   - auts with a valid MAC-S: the HSS resynchronises and a new 401 follows.
//   - An unknown or consumed nonce is answered with a new challenge
//     (stale=true for MD5).
//   - The granted expiry is min(requested, MaxExpires); a REGISTER without
//     any expiry gets 3600 s (RFC 3261 §10.2.1.1) capped the same way.
//   - The 200 carries the Contact with its expires, Expires, P-Associated-URI
//     (the implicit set), Service-Route <sip:orig@scscf.DOMAIN;lr> and the
//     P-CSCF's Path.

// regContext is one REGISTER as the P-CSCF hands it to the S-CSCF.
type regContext struct {
	in    inbound
	req   *sip.Request
	set   *secSet        // the SA set it arrived over; nil when unprotected
	offer []mt.Mechanism // Security-Client, when a challenge may follow
}

// regResult is the S-CSCF's answer plus what the P-CSCF must do with it.
type regResult struct {
	resp       *sip.Response
	b          *binding
	chal       *challenge // a new AKA challenge: install its temporary SA set
	success    bool       // authenticated (re-)registration: promote the temporary set
	dereg      []*binding // bindings ended: drop their SAs after the response
	authFailed bool       // drop the binding's temporary set
}

const defaultRegisterExpires = 3600

// register runs the S-CSCF's REGISTER procedure. c.mu is held.
func (c *Core) register(rc regContext) regResult {
	req := rc.req
	fail := func(code int, reason string) regResult {
		return regResult{resp: newResponse(req, code, reason)}
	}
	if code := c.cfg.Faults.takeReject(); code != 0 {
		c.log.Info("fault: rejecting REGISTER", "code", code)
		return fail(code, reasonFor(code))
	}

	var auth *digest.Authorization
	if vals := headerValues(req, "Authorization"); len(vals) > 0 {
		a, err := digest.ParseAuthorization(vals[0])
		if err != nil {
			c.log.Info("unparsable Authorization", "err", err)
			return fail(sip.StatusBadRequest, "Malformed Authorization")
		}
		auth = a
	}
	impu := req.To().Address.String()
	impi := ""
	if auth != nil {
		impi = auth.Username
	}
	sub, err := c.hss.authorize(impi, impu)
	if errors.Is(err, errUnknownSubscriber) {
		c.stats.authFailures.Add(1)
		c.log.Info("REGISTER for an unknown subscriber", "impi", impi, "impu", impu)
		return fail(sip.StatusForbidden, "Forbidden (unknown subscriber)")
	}
	if err != nil {
		c.stats.authFailures.Add(1)
		c.log.Info("REGISTER: IMPU outside the subscriber's implicit set", "impi", sub.IMPI, "impu", impu)
		return fail(sip.StatusForbidden, "Forbidden (public identity not of this subscriber)")
	}
	if rc.set != nil && !strings.EqualFold(rc.set.b.sub.IMPI, sub.IMPI) {
		return fail(sip.StatusForbidden, "Forbidden (security association belongs to another subscriber)")
	}

	contacts := req.GetHeaders("Contact")
	if len(contacts) == 0 {
		return fail(sip.StatusBadRequest, "Missing Contact")
	}
	contact, _ := contacts[0].(*sip.ContactHeader)
	if contact == nil {
		return fail(sip.StatusBadRequest, "Malformed Contact")
	}
	reqExp, hasExp := requestedExpires(req)
	if !hasExp {
		reqExp = defaultRegisterExpires
	}
	if contact.Address.Wildcard && reqExp != 0 {
		return fail(sip.StatusBadRequest, "Wildcard Contact without Expires: 0")
	}
	if reqExp != 0 && c.cfg.MinExpires > 0 && time.Duration(reqExp)*time.Second < c.cfg.MinExpires {
		resp := newResponse(req, sip.StatusIntervalToBrief, "Interval Too Brief")
		resp.AppendHeader(sip.NewHeader("Min-Expires", strconv.FormatInt(int64(c.cfg.MinExpires/time.Second), 10)))
		return regResult{resp: resp}
	}

	// A de-registration over the established set needs no new authentication
	// (the SA proves the UE, integrity-protected="yes").
	if reqExp == 0 && rc.set != nil && rc.set.state != setTemporary {
		return c.deregisterLocked(rc, sub, contact)
	}
	// Behind an external P-CSCF the core sees no SA: it trusts that P-CSCF,
	// as an S-CSCF trusts integrity-protected="yes" (TS 24.229 §5.4.1.4),
	// for a de-REGISTER of a registered contact. A challenge there would
	// make Kamailio 5.6 create a second SA set for the de-REGISTER that it
	// never deletes.
	if reqExp == 0 && c.cfg.CKIKInChallenge && !contact.Address.Wildcard {
		if b := c.bindings[bindingKey(sub.IMPI, contact.Address)]; b != nil && b.state == stateRegistered {
			return c.deregisterLocked(rc, sub, contact)
		}
	}

	var b *binding
	if contact.Address.Wildcard {
		b = c.findBindingLocked(sub.IMPI, rc)
	} else {
		key := bindingKey(sub.IMPI, contact.Address)
		b = c.bindings[key]
		if b == nil {
			b = &binding{key: key, sub: sub, state: statePending, contactID: randToken(6)}
			b.contact = contact.Clone()
			c.bindings[key] = b
		}
	}
	if b == nil {
		return fail(sip.StatusForbidden, "Forbidden (nothing to de-register)")
	}
	if rc.set != nil && rc.set.b != b {
		return fail(sip.StatusForbidden, "Forbidden (security association belongs to another contact)")
	}

	ch := b.chal
	protected := rc.set != nil || c.cfg.CKIKInChallenge
	switch {
	case auth == nil || auth.Nonce == "" || ch == nil || auth.Nonce != ch.dc.Nonce:
		// First REGISTER, or an answer to a challenge we do not hold.
		stale := auth != nil && auth.Nonce != "" && auth.Response != ""
		return c.challengeLocked(rc, b, sub, stale && !c.cfg.isAKA())
	case c.cfg.isAKA() && auth.HasAUTS:
		return c.resyncLocked(rc, b, sub, auth)
	case c.cfg.isAKA() && auth.Response == "":
		c.log.Info("UE reports an AUTN MAC failure (empty response, no auts)", "impi", sub.IMPI)
		return c.authFailLocked(req, b, "Forbidden (network authentication failed at the UE)")
	case c.cfg.isAKA() && !protected:
		// The P-CSCF would mark it integrity-protected="no": challenge again.
		c.log.Info("challenge answered without SA protection: new challenge", "impi", sub.IMPI)
		return c.challengeLocked(rc, b, sub, false)
	}
	if err := c.checkResponse(req, auth, ch, sub); err != nil {
		c.log.Info("authentication failed", "impi", sub.IMPI, "err", err)
		return c.authFailLocked(req, b, "Forbidden (authentication failed)")
	}
	if c.cfg.isAKA() && !c.cfg.CKIKInChallenge && rc.set != ch.set {
		c.log.Info("correct response over the wrong SA set", "impi", sub.IMPI)
		return c.authFailLocked(req, b, "Forbidden (response not sent over the SAs of its challenge)")
	}
	b.chal = nil
	if b.authTimer != nil {
		b.authTimer.Stop()
	}
	if reqExp == 0 {
		return c.deregisterLocked(rc, sub, contact)
	}
	return c.registeredLocked(rc, b, contact, reqExp)
}

// findBindingLocked returns the binding a wildcard de-registration refers
// to: the one of the set it came over, else any of the subscriber.
func (c *Core) findBindingLocked(impi string, rc regContext) *binding {
	if rc.set != nil {
		return rc.set.b
	}
	for _, b := range c.bindings {
		if strings.EqualFold(b.sub.IMPI, impi) {
			return b
		}
	}
	return nil
}

// challengeLocked issues a new challenge for b: an AKA vector from the HSS
// (or a random nonce for MD5) in a 401.
func (c *Core) challengeLocked(rc regContext, b *binding, sub Subscriber, stale bool) regResult {
	var vec vector
	var err error
	if c.cfg.isAKA() {
		vec, err = c.hss.vectors(sub.IMPI, nil)
	}
	return c.challengeWithLocked(rc, b, sub, stale, vec, err)
}

// challengeWithLocked issues the challenge for vec (AKA), or for the HSS's
// error verr.
func (c *Core) challengeWithLocked(rc regContext, b *binding, sub Subscriber, stale bool, vec vector, verr error) regResult {
	req := rc.req
	ch := &challenge{dc: digest.Challenge{
		Realm:     c.cfg.Domain,
		Algorithm: c.cfg.Algorithm,
		QOP:       c.cfg.qops(),
		Opaque:    randToken(12),
		HasOpaque: true,
		Stale:     stale,
	}}
	dc := &ch.dc
	if c.cfg.isAKA() {
		if err := verr; err != nil {
			c.log.Error("HSS: no vector", "impi", sub.IMPI, "err", err)
			b.chal = nil
			c.forgetIfPendingLocked(b)
			return regResult{resp: newResponse(req, sip.StatusInternalServerError, "Server Internal Error (HSS)")}
		}
		c.stats.vectors.Add(1)
		ch.vec = vec
		dc.Nonce = digest.EncodeAKANonce(vec.RAND, vec.AUTN, nil)
		if c.cfg.CKIKInChallenge {
			dc.CK, dc.IK = hex.EncodeToString(vec.CK[:]), hex.EncodeToString(vec.IK[:])
		}
	} else {
		dc.Nonce = randToken(24)
	}
	b.chal = ch
	if b.authTimer != nil {
		b.authTimer.Stop()
	}
	b.authTimer = c.after(c.cfg.AuthTimeout, func() { c.authTimeoutLocked(b, ch) })

	resp := newResponse(req, sip.StatusUnauthorized, "Unauthorized")
	www := dc.String()
	if c.cfg.Faults.take(&c.cfg.Faults.malformedWWWAuth) {
		www = `Digest realm="` + c.cfg.Domain + `", nonce="` + dc.Nonce[:len(dc.Nonce)/2] + `, algorithm=`
	}
	// The P-CSCF strips ck and ik before the 401 reaches the UE; with
	// CKIKInChallenge the core is no P-CSCF and leaves them for the real one.
	dc.CK, dc.IK = "", ""
	resp.AppendHeader(sip.NewHeader("WWW-Authenticate", www))
	return regResult{resp: resp, b: b, chal: ch}
}

// authTimeoutLocked ends a challenge that was never answered (the
// P-CSCF's reg-await-auth timer): its temporary SA set goes, and so does
// a binding that was never registered.
func (c *Core) authTimeoutLocked(b *binding, ch *challenge) {
	if b.chal != ch {
		return
	}
	c.log.Info("challenge not answered in time", "impi", b.sub.IMPI, "timeout", c.cfg.AuthTimeout)
	b.chal = nil
	if ch.set != nil {
		c.dropTemporaryLocked(ch.set, "reg-await-auth timer expired")
	}
	c.forgetIfPendingLocked(b)
}

func (c *Core) forgetIfPendingLocked(b *binding) {
	if b.state != statePending || c.bindings[b.key] != b {
		return
	}
	b.stopTimers()
	for _, s := range []*secSet{b.next, b.cur, b.old} {
		c.dropSetLocked(s, "binding never registered")
	}
	delete(c.bindings, b.key)
}

// resyncLocked handles a REGISTER with auts (TS 33.102 §6.3.5).
func (c *Core) resyncLocked(rc regContext, b *binding, sub Subscriber, auth *digest.Authorization) regResult {
	// RFC 3310 §3.4 carries AUTS base64-encoded; UEs send it with and
	// without padding, and digest.DecodeAUTS takes both.
	auts, err := digest.DecodeAUTS(auth.AUTS)
	if err != nil {
		c.log.Info("auts is not base64 of 14 bytes", "impi", sub.IMPI, "err", err)
		return c.authFailLocked(rc.req, b, "Forbidden (malformed auts)")
	}
	// One MAR carries the resynchronisation and asks for the new vector
	// (TS 29.228 §6.3.3).
	vec, err := c.hss.vectors(sub.IMPI, &resyncData{RAND: b.chal.vec.RAND, AUTS: auts})
	if errors.Is(err, errBadAUTS) || errors.Is(err, errUnknownSubscriber) {
		c.log.Info("resynchronisation refused", "impi", sub.IMPI, "err", err)
		return c.authFailLocked(rc.req, b, "Forbidden (resynchronisation failed)")
	}
	if err == nil {
		c.stats.resyncs.Add(1)
	}
	return c.challengeWithLocked(rc, b, sub, false, vec, err)
}

// authFailLocked answers 403 and forgets the challenge; the temporary set
// is dropped after the response leaves.
func (c *Core) authFailLocked(req *sip.Request, b *binding, reason string) regResult {
	c.stats.authFailures.Add(1)
	b.chal = nil
	if b.authTimer != nil {
		b.authTimer.Stop()
	}
	return regResult{resp: newResponse(req, sip.StatusForbidden, reason), b: b, authFailed: true}
}

// checkResponse verifies the digest response against the challenge
// (digest.Verify: realm, nonce, opaque, algorithm, qop, then the response
// in constant time).
func (c *Core) checkResponse(req *sip.Request, a *digest.Authorization, ch *challenge, sub Subscriber) error {
	if !strings.EqualFold(a.Username, sub.IMPI) {
		return fmt.Errorf("username %q is not the IMPI", a.Username)
	}
	var password []byte
	switch c.cfg.Algorithm {
	case digest.AKAv1MD5:
		password = ch.vec.XRES[:]
	case digest.AKAv2MD5:
		password = digest.AKAv2Password(ch.vec.XRES[:], ch.vec.IK, ch.vec.CK)
	default:
		password = []byte(sub.Password)
	}
	return digest.Verify(&ch.dc, a, string(req.Method), req.Body(), password)
}

// registeredLocked records a successful (re-)registration and builds the 200.
func (c *Core) registeredLocked(rc regContext, b *binding, contact *sip.ContactHeader, reqExp int64) regResult {
	granted := min(time.Duration(reqExp)*time.Second, c.cfg.MaxExpires)
	now := time.Now()
	first := b.state != stateRegistered
	b.state = stateRegistered
	b.granted = granted
	b.expires = now.Add(granted)
	b.contact = contact.Clone()
	b.transport = rc.in.transport
	b.registered = now
	if first {
		b.event = "registered"
	} else {
		b.event = "refreshed"
	}
	// The UE's address for requests to it: port_us over SAs, else the
	// Contact's port (default 5060) at the address the REGISTER came from.
	switch {
	case rc.set != nil:
		b.ue = netip.AddrPortFrom(rc.set.ue, rc.set.client.PortS)
	case contact.Address.Port > 0 && contact.Address.Port < 65536:
		b.ue = netip.AddrPortFrom(rc.in.remote.Addr(), uint16(contact.Address.Port))
	default:
		b.ue = netip.AddrPortFrom(rc.in.remote.Addr(), 5060)
	}
	b.flow = rc.in.remote
	b.path = []string{c.pathURI(rc)}
	if b.expTimer != nil {
		b.expTimer.Stop()
	}
	b.expTimer = c.after(granted, func() { c.expireLocked(b) })
	c.stats.registered.Add(1)
	c.log.Info("registered", "impi", b.sub.IMPI, "contact", b.contact.Address.String(), "expires", granted, "event", b.event)

	resp := newResponse(rc.req, sip.StatusOK, "OK")
	ct := b.contact.Clone()
	ct.Params = ct.Params.Clone()
	ct.Params.Remove("expires")
	ct.Params.Add("expires", strconv.Itoa(int(granted/time.Second)))
	resp.AppendHeader(ct)
	resp.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(granted/time.Second))))
	for _, p := range b.path {
		resp.AppendHeader(sip.NewHeader("Path", p))
	}
	resp.AppendHeader(sip.NewHeader("Service-Route", "<sip:orig@scscf."+c.cfg.Domain+";lr>"))
	resp.AppendHeader(sip.NewHeader("P-Associated-URI", associatedURIs(b.sub.IMPUs)))
	if c.cfg.isAKA() && !c.cfg.CKIKInChallenge {
		resp.AppendHeader(sip.NewHeader("Supported", "sec-agree"))
	}
	return regResult{resp: resp, b: b, success: true}
}

// pathURI is the Path the P-CSCF inserts (RFC 3327): its protected server
// port for AKA, its unprotected address otherwise. Behind an external
// P-CSCF the REGISTER's own Path is echoed instead.
func (c *Core) pathURI(rc regContext) string {
	if c.cfg.CKIKInChallenge {
		if v := headerValues(rc.req, "Path"); len(v) > 0 {
			return strings.Join(v, ", ")
		}
	}
	local := c.localFor(rc.in.remote.Addr())
	port := c.unprot.addr.Port()
	if rc.set != nil {
		port = rc.set.server.PortS
	}
	return "<sip:term@" + netip.AddrPortFrom(local, port).String() + ";lr>"
}

// deregisterLocked ends the binding(s) a de-REGISTER names and answers 200.
func (c *Core) deregisterLocked(rc regContext, sub Subscriber, contact *sip.ContactHeader) regResult {
	var ended []*binding
	if contact.Address.Wildcard {
		for _, b := range c.bindings {
			if strings.EqualFold(b.sub.IMPI, sub.IMPI) {
				ended = append(ended, b)
			}
		}
	} else if b := c.bindings[bindingKey(sub.IMPI, contact.Address)]; b != nil {
		ended = append(ended, b)
	}
	if rc.set != nil && len(ended) == 0 {
		ended = append(ended, rc.set.b)
	}
	for _, b := range ended {
		b.stopTimers()
		delete(c.bindings, b.key)
		c.stats.deregistered.Add(1)
		c.log.Info("de-registered by the UE", "impi", b.sub.IMPI, "contact", b.contact.Address.String())
	}
	resp := newResponse(rc.req, sip.StatusOK, "OK")
	if c.cfg.CKIKInChallenge {
		// The P-CSCF in front learns from the 200 which contacts went:
		// Kamailio's pcscf_save deletes a contact (and its SAs) only when
		// the 200 lists it with expires=0, as Kamailio's S-CSCF does.
		for _, b := range ended {
			ct := b.contact.Clone()
			ct.Params = ct.Params.Clone()
			ct.Params.Remove("expires")
			ct.Params.Add("expires", "0")
			resp.AppendHeader(ct)
		}
	}
	resp.AppendHeader(sip.NewHeader("P-Associated-URI", associatedURIs(sub.IMPUs)))
	return regResult{resp: resp, dereg: ended}
}

// finishRegister is the P-CSCF's side of the S-CSCF's answer: it installs
// the temporary set of a new challenge and adds Security-Server before the
// 401 leaves, sends the response, then promotes or drops sets. It is
// called under c.mu and releases it while the SA set is installed.
func (c *Core) finishRegister(rc regContext, res regResult, r route) {
	resp := res.resp
	if res.chal != nil && c.cfg.isAKA() && !c.cfg.CKIKInChallenge {
		set, err := c.newTemporarySet(rc, res.b, res.chal)
		if errors.Is(err, errSuperseded) {
			// A newer challenge, a restart or the end of the binding came
			// while the SAs were installed: this 401 would be useless.
			c.log.Info("challenge superseded while its SA set was installed", "impi", res.b.sub.IMPI)
			if !c.closed {
				c.reply(rc.req, newResponse(rc.req, sip.StatusInternalServerError, "Server Internal Error (challenge superseded)"), r, nil)
			}
			return
		}
		if err != nil {
			c.log.Error("cannot set up the temporary SA set", "impi", res.b.sub.IMPI, "err", err)
			if res.b.chal == res.chal {
				res.b.chal = nil
			}
			if errors.Is(err, mt.ErrNoAcceptableMechanism) {
				c.stats.secAgree.Add(1)
				resp = newResponse(rc.req, 494, "Security Agreement Required")
				resp.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(c.supportedMechanisms())))
			} else {
				resp = newResponse(rc.req, sip.StatusInternalServerError, "Server Internal Error (IPsec)")
			}
			c.forgetIfPendingLocked(res.b)
			c.reply(rc.req, resp, r, nil)
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
	if res.chal != nil {
		c.stats.challenges.Add(1)
	}
	twice := res.chal != nil && c.cfg.Faults.take(&c.cfg.Faults.retransmitChallenge)
	if res.success {
		// The set is established as the 200 leaves over it; the old one
		// stays until the new one carries traffic.
		c.promoteLocked(res.b, rc.set)
	}
	c.reply(rc.req, resp, r, func() {
		if twice {
			c.after(20*time.Millisecond, func() {
				c.later(func() error { _ = c.send(r, resp); return nil })
			})
		}
		switch {
		case res.success:
			c.notifyChangeLocked(res.b.sub.IMPI, nil)
		case len(res.dereg) > 0:
			for _, b := range res.dereg {
				c.endSubscriptionsOfLocked(b)
			}
			drop := func() {
				for _, b := range res.dereg {
					for _, s := range []*secSet{b.next, b.cur, b.old} {
						c.dropSetLocked(s, "de-registered")
					}
				}
			}
			if tc := r.Conn; tc != nil {
				// Over TCP the 200 is only safe once acknowledged: a
				// retransmission after the SAs are gone would leave in
				// clear text (Kamailio 5.6's de-registration bug). Wait for
				// the ACK, bounded; without it, reset the connection
				// while the SAs still protect the RST, then drop them.
				dropLater := c.guarded(drop)
				sent := make(chan struct{})
				c.later(func() error { close(sent); return nil }) // queued after the 200
				c.goLocked(func() {
					<-sent
					if !tc.Drained(time.Second) {
						tc.Abort()
					}
					dropLater()
				})
			} else {
				drop()
			}
			c.notifyChangeLocked(res.dereg[0].sub.IMPI, terminatedContacts(res.dereg, "unregistered"))
		case res.authFailed && res.b != nil:
			if res.b.next != nil {
				c.dropTemporaryLocked(res.b.next, "authentication failed")
			}
			c.forgetIfPendingLocked(res.b)
		}
	})
}

// expireLocked ends a binding whose registration was not refreshed.
func (c *Core) expireLocked(b *binding) {
	if c.bindings[b.key] != b {
		return
	}
	c.log.Info("registration expired", "impi", b.sub.IMPI, "contact", b.contact.Address.String())
	b.stopTimers()
	delete(c.bindings, b.key)
	// Subscriptions carried by b's SAs cannot outlive them: their last
	// NOTIFY ends them; others go on.
	for _, s := range c.sortedSubsLocked(b.sub.IMPI) {
		state := ""
		if s.b == b {
			state = "terminated;reason=noresource"
		}
		c.sendNotifyLocked(s, terminatedContacts([]*binding{b}, "expired"), state)
		if s.b == b {
			c.removeSubscriptionLocked(s)
		}
	}
	for _, s := range []*secSet{b.next, b.cur, b.old} {
		c.dropSetLocked(s, "registration expired")
	}
}

// onRegisteredRequest handles a non-REGISTER request from a UE (over set,
// or from its MD5 flow).
func (c *Core) onRegisteredRequest(in inbound, req *sip.Request, b *binding, set *secSet, r route) {
	switch req.Method {
	case sip.SUBSCRIBE:
		c.onSubscribe(in, req, b, set, r)
	case sip.OPTIONS:
		resp := newResponse(req, sip.StatusOK, "OK")
		resp.AppendHeader(sip.NewHeader("Allow", "REGISTER, SUBSCRIBE, NOTIFY, OPTIONS"))
		c.reply(req, resp, r, nil)
	case sip.NOTIFY, sip.MESSAGE, sip.INVITE, sip.PUBLISH, sip.INFO, sip.UPDATE, sip.BYE, sip.CANCEL, sip.PRACK, sip.REFER:
		c.reply(req, newResponse(req, sip.StatusNotImplemented, "Not Implemented in the lab core"), r, nil)
	default:
		c.reply(req, newResponse(req, sip.StatusNotImplemented, "Not Implemented"), r, nil)
	}
}

// onBareSCSCF serves every request on Addr when the core sits behind an
// external P-CSCF (CKIKInChallenge).
func (c *Core) onBareSCSCF(in inbound, req *sip.Request) {
	r := c.responseRoute(in, req, nil)
	if req.Method != sip.REGISTER {
		var b *binding
		for _, x := range c.bindings {
			if x.state == stateRegistered && x.sub.hasIMPU(req.From().Address.String()) {
				b = x
				break
			}
		}
		if b == nil {
			c.reply(req, newResponse(req, sip.StatusForbidden, "Forbidden (not registered)"), r, nil)
			return
		}
		c.onRegisteredRequest(in, req, b, nil, r)
		return
	}
	c.stats.regUnprot.Add(1)
	rc := regContext{in: in, req: req}
	c.finishRegister(rc, c.register(rc), r)
}

func (s Subscriber) hasIMPU(uri string) bool {
	cu := canonURI(uri)
	for _, u := range s.IMPUs {
		if canonURI(u) == cu {
			return true
		}
	}
	return false
}

// associatedURIs formats P-Associated-URI (RFC 7315 §4.1).
func associatedURIs(impus []string) string {
	parts := make([]string, len(impus))
	for i, u := range impus {
		parts[i] = "<" + u + ">"
	}
	return strings.Join(parts, ", ")
}

// canonURI normalises a SIP URI for identity comparison: scheme and host
// case-insensitive, user part as is, no parameters; other URIs lower-cased.
func canonURI(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return strings.ToLower(s)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "sip" && scheme != "sips" {
		return strings.ToLower(s)
	}
	out := scheme + ":"
	if u.User != "" {
		out += u.User + "@"
	}
	out += strings.ToLower(u.Host)
	if u.Port != 0 {
		out += ":" + strconv.Itoa(u.Port)
	}
	return out
}

// randToken returns n random bytes, base64url without padding.
func randToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func reasonFor(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	}
	return "Rejected by fault injection"
}
