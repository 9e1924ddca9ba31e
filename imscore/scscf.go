package imscore

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/digest"
	"github.com/imsue/imsue/sipnet"
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
//     Path the REGISTER carried (RFC 3327).
//   - "Protected" is what the P-CSCF says in the integrity-protected
//     parameter of Authorization (TS 24.229 §5.4.1.2.1): "yes" (over an
//     established SA set) lets a de-REGISTER through without a challenge;
//     a challenge response counts only with "ip-assoc-pending" (over the
//     temporary set of its challenge; the P-CSCF has no other temporary
//     set for the contact); "no" or none is challenged again. Behind an
//     external P-CSCF (CKIKInChallenge) every REGISTER counts as protected:
//     that P-CSCF protects the UE's path.
//   - Every AKA 401 carries ck and ik for the P-CSCF (TS 33.203 §6.1.1,
//     message SM4: the S-CSCF sends the keys to the P-CSCF with the
//     challenge); the P-CSCF strips them.

// scscf is the S-CSCF: registrar, authenticator and reg-event notifier,
// with its own lock. It knows nothing of SA sets: what the P-CSCF tells it
// arrives in the SIP messages (Path, integrity-protected,
// P-Asserted-Identity), and it reaches the UE only through the P-CSCF
// (pcscfPeer) and the HSS only through hssClient.
type scscf struct {
	roleLock
	c        *Core // configuration, log, counters and the core's own address (CKIKInChallenge)
	hss      hssClient
	pcscf    pcscfPeer
	bindings map[string]*binding      // by bindingKey
	subs     map[string]*subscription // reg-event subscriptions by dialog
}

// bindState is the S-CSCF's state of one contact binding.
type bindState uint8

const (
	statePending    bindState = iota + 1 // challenged, never registered yet
	stateRegistered                      // registered (possibly with a re-authentication in progress)
)

func (s bindState) String() string {
	switch s {
	case statePending:
		return "pending"
	case stateRegistered:
		return "registered"
	}
	return "unknown"
}

// binding is one registered (or being registered) contact of a subscriber
// in the S-CSCF.
type binding struct {
	key        string
	sub        Subscriber // identities only are used
	contact    *sip.ContactHeader
	ue         netip.AddrPort // the UE's IP and the Contact's port
	transport  string
	state      bindState
	expires    time.Time
	granted    time.Duration
	event      string // the last reginfo contact event (registered, refreshed, shortened)
	contactID  string
	chal       *challenge
	used       *usedNonce // the last challenge answered, to be answered again
	path       []string
	expTimer   *time.Timer
	authTimer  *time.Timer
	registered time.Time
}

func (b *binding) stopTimers() {
	if b.expTimer != nil {
		b.expTimer.Stop()
	}
	if b.authTimer != nil {
		b.authTimer.Stop()
	}
}

// usedNonce is a challenge the UE answered correctly, and the highest nc
// it used with it (RFC 2617 §3.2.2: the count of requests sent with the
// nonce).
type usedNonce struct {
	ch challenge
	nc uint32
}

// challenge is one outstanding digest challenge of the S-CSCF.
type challenge struct {
	dc  digest.Challenge // as sent (without ck and ik)
	vec vector           // AKA only
}

// bindingKey identifies a binding: the private identity and the contact's
// host and port.
func bindingKey(impi string, contact sip.Uri) string {
	return strings.ToLower(impi) + "\x00" + contactKey(contact)
}

// contactKey is a contact's host and port, lower-cased.
func contactKey(contact sip.Uri) string {
	return strings.ToLower(contact.Host) + ":" + fmt.Sprint(contact.Port)
}

const defaultRegisterExpires = 3600

// request is the S-CSCF's entry point (Mw): every request the P-CSCF
// forwards. It takes the S-CSCF's lock; the NOTIFYs it decides on go into
// the answer's then.
//
// The HSS is asked without the lock: the identities before it is taken
// (UAR), a vector (MAR) after the decision to challenge, the lock released
// meanwhile (vectorArrivedLocked).
func (s *scscf) request(req *sip.Request) mwAnswer {
	var reg regRequest
	if req.Method == sip.REGISTER {
		var resp *sip.Response
		if reg, resp = s.registerPrelude(req); resp != nil {
			return mwAnswer{resp: resp}
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return mwAnswer{resp: newResponse(req, sip.StatusServiceUnavailable, "Service Unavailable")}
	}
	var resp *sip.Response
	if req.Method == sip.REGISTER {
		var vr *vectorRequest
		resp, vr = s.registerLocked(req, reg)
		if vr != nil {
			// What this request queued stays its own while the lock is
			// released for the MAR.
			q, epoch := s.ioq, s.epoch
			s.ioq = nil
			s.mu.Unlock()
			vec, err := s.hss.vectors(vr.sub.IMPI, vr.resync)
			s.mu.Lock()
			s.ioq = append(q, s.ioq...)
			resp = s.vectorArrivedLocked(req, vr, epoch, vec, err)
		}
	} else {
		resp = s.onRequestLocked(req)
	}
	q := s.ioq
	s.ioq = nil
	s.mu.Unlock()
	var then func()
	if len(q) > 0 {
		then = func() {
			for _, f := range q {
				_ = f()
			}
		}
	}
	return mwAnswer{resp: resp, then: then}
}

// abandon forgets the challenge whose 401 the P-CSCF could not deliver
// (it could not set up the SA set), as the reg-await-auth timer would
// later: a lab shortcut, so that no pending binding lingers.
func (s *scscf) abandon(nonce string) {
	s.mu.Lock()
	defer s.unlockQuiet()
	for _, b := range s.bindings {
		if b.chal != nil && b.chal.dc.Nonce == nonce {
			b.chal = nil
			if b.authTimer != nil {
				b.authTimer.Stop()
			}
			s.forgetIfPendingLocked(b)
		}
	}
}

// regRequest is what the S-CSCF takes from a REGISTER before its lock:
// the Authorization, the integrity-protected value and the subscriber
// (UAR).
type regRequest struct {
	auth *digest.Authorization
	ip   string
	sub  Subscriber
}

// vectorRequest is a MAR the S-CSCF decided on under its lock and sends
// after releasing it.
type vectorRequest struct {
	b      *binding
	sub    Subscriber
	stale  bool
	resync *resyncData
}

// registerPrelude is the part of the REGISTER procedure that needs no
// registrar state: the Reject fault, the Authorization and the HSS's
// User-Authorization answer. It returns the response when that ends the
// procedure.
func (s *scscf) registerPrelude(req *sip.Request) (regRequest, *sip.Response) {
	c := s.c
	fail := func(code int, reason string) (regRequest, *sip.Response) {
		return regRequest{}, newResponse(req, code, reason)
	}
	if code := c.cfg.Faults.takeReject(); code != 0 {
		c.log.Info("fault: rejecting REGISTER", "code", code)
		return fail(code, reasonFor(code))
	}

	var auth *digest.Authorization
	ip := ipNo
	if vals := headerValues(req, "Authorization"); len(vals) > 0 {
		a, err := digest.ParseAuthorization(vals[0])
		if err != nil {
			c.log.Info("unparsable Authorization", "err", err)
			return fail(sip.StatusBadRequest, "Malformed Authorization")
		}
		auth = a
		if v := integrityProtected(vals[0]); v != "" {
			ip = v
		}
	}
	if c.cfg.CKIKInChallenge {
		// The external P-CSCF in front protects the UE's path.
		ip = ipYes
	}
	impu := req.To().Address.String()
	impi := ""
	if auth != nil {
		impi = auth.Username
	}
	sub, err := s.hss.authorize(impi, impu)
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
	return regRequest{auth: auth, ip: ip, sub: sub}, nil
}

// registerLocked runs the S-CSCF's REGISTER procedure on the registrar.
// When a challenge needs a vector it returns the MAR to send instead of a
// response.
func (s *scscf) registerLocked(req *sip.Request, rr regRequest) (*sip.Response, *vectorRequest) {
	c := s.c
	fail := func(code int, reason string) (*sip.Response, *vectorRequest) {
		return newResponse(req, code, reason), nil
	}
	auth, ip, sub := rr.auth, rr.ip, rr.sub

	contacts := sipnet.HeadersNamed(req, "Contact")
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
		return resp, nil
	}

	// Trusting integrity-protected="yes" (TrustIntegrityProtected): a
	// de-registration over the established set needs no authentication.
	if reqExp == 0 && ip == ipYes && c.cfg.isAKA() && !c.cfg.CKIKInChallenge && c.cfg.TrustIntegrityProtected {
		return s.deregisterLocked(req, sub, contact), nil
	}
	// Verifying every REGISTER (the default, as ims_auth): the last nonce
	// answered again counts with the next nc and a correct response.
	if !c.cfg.TrustIntegrityProtected && !contact.Address.Wildcard {
		if b := s.bindings[bindingKey(sub.IMPI, contact.Address)]; b != nil && b.used != nil && auth != nil && auth.Nonce == b.used.ch.dc.Nonce {
			return s.reusedNonceLocked(req, b, sub, auth, ip, contact, reqExp)
		}
	}
	// Behind an external P-CSCF the core sees no SA: it trusts that P-CSCF,
	// as an S-CSCF trusts integrity-protected="yes" (TS 24.229 §5.4.1.4),
	// for a de-REGISTER of a registered contact. A challenge there would
	// make Kamailio 5.6 create a second SA set for the de-REGISTER that it
	// never deletes.
	if reqExp == 0 && c.cfg.CKIKInChallenge && !contact.Address.Wildcard {
		if b := s.bindings[bindingKey(sub.IMPI, contact.Address)]; b != nil && b.state == stateRegistered {
			return s.deregisterLocked(req, sub, contact), nil
		}
	}

	var b *binding
	if contact.Address.Wildcard {
		b = s.findBindingLocked(sub.IMPI)
	} else {
		key := bindingKey(sub.IMPI, contact.Address)
		b = s.bindings[key]
		if b == nil {
			b = &binding{key: key, sub: sub, state: statePending, contactID: randToken(6)}
			b.contact = contact.Clone()
			s.bindings[key] = b
		}
	}
	if b == nil {
		return fail(sip.StatusForbidden, "Forbidden (nothing to de-register)")
	}

	ch := b.chal
	protected := ip == ipYes || ip == ipPending
	switch {
	case auth == nil || auth.Nonce == "" || ch == nil || auth.Nonce != ch.dc.Nonce:
		// First REGISTER, or an answer to a challenge we do not hold.
		stale := auth != nil && auth.Nonce != "" && auth.Response != ""
		return s.challengeLocked(req, b, sub, stale && !c.cfg.isAKA())
	case c.cfg.isAKA() && auth.HasAUTS:
		return s.resyncLocked(req, b, sub, auth)
	case c.cfg.isAKA() && auth.Response == "":
		c.log.Info("UE reports an AUTN MAC failure (empty response, no auts)", "impi", sub.IMPI)
		return s.authFailLocked(req, b, "Forbidden (network authentication failed at the UE)"), nil
	case c.cfg.isAKA() && !protected:
		// integrity-protected="no": challenge again.
		c.log.Info("challenge answered without SA protection: new challenge", "impi", sub.IMPI)
		return s.challengeLocked(req, b, sub, false)
	}
	if err := s.checkResponse(req, auth, ch, sub); err != nil {
		c.log.Info("authentication failed", "impi", sub.IMPI, "err", err)
		return s.authFailLocked(req, b, "Forbidden (authentication failed)"), nil
	}
	if c.cfg.isAKA() && !c.cfg.CKIKInChallenge && ip != ipPending {
		c.log.Info("correct response over the wrong SA set", "impi", sub.IMPI)
		return s.authFailLocked(req, b, "Forbidden (response not sent over the SAs of its challenge)"), nil
	}
	if c.cfg.Faults.takeRechallenge() {
		c.log.Info("fault: challenging a correct response again", "impi", sub.IMPI)
		return s.challengeLocked(req, b, sub, false)
	}
	b.used = &usedNonce{ch: *ch, nc: auth.NC}
	b.chal = nil
	if b.authTimer != nil {
		b.authTimer.Stop()
	}
	if reqExp == 0 {
		return s.deregisterLocked(req, sub, contact), nil
	}
	return s.registeredLocked(req, b, contact, reqExp), nil
}

// reusedNonceLocked checks a REGISTER that answers the binding's last
// nonce again (TS 24.229 §5.4.1.2.1, RFC 2617 §3.2.2): over the SAs,
// with an nc above the last one and a correct response. A repeated or
// lower nc is a replay (403); no SA protection, a challenge. A correct one
// de-registers, or refreshes the registration without a new challenge
// (unless ChallengeRefreshes).
func (s *scscf) reusedNonceLocked(req *sip.Request, b *binding, sub Subscriber, auth *digest.Authorization, ip string, contact *sip.ContactHeader, reqExp int64) (*sip.Response, *vectorRequest) {
	c := s.c
	u := b.used
	if c.cfg.isAKA() && ip != ipYes {
		c.log.Info("last nonce answered without SA protection: new challenge", "impi", sub.IMPI)
		return s.challengeLocked(req, b, sub, false)
	}
	if auth.QOP != "" && auth.NC <= u.nc {
		c.stats.authFailures.Add(1)
		c.log.Info("nonce replayed", "impi", sub.IMPI, "nc", auth.NC, "last_nc", u.nc)
		return newResponse(req, sip.StatusForbidden, fmt.Sprintf("Forbidden (nc %08x not greater than the last one, %08x)", auth.NC, u.nc)), nil
	}
	ch := u.ch
	if err := s.checkResponse(req, auth, &ch, sub); err != nil {
		c.stats.authFailures.Add(1)
		c.log.Info("authentication with the last nonce failed", "impi", sub.IMPI, "err", err)
		return newResponse(req, sip.StatusForbidden, "Forbidden (authentication failed)"), nil
	}
	u.nc = auth.NC
	if reqExp == 0 {
		return s.deregisterLocked(req, sub, contact), nil
	}
	if c.cfg.ChallengeRefreshes {
		return s.challengeLocked(req, b, sub, false)
	}
	return s.registeredLocked(req, b, contact, reqExp), nil
}

// findBindingLocked returns a binding of the subscriber, for a wildcard
// de-registration.
func (s *scscf) findBindingLocked(impi string) *binding {
	var out *binding
	for _, b := range s.bindings {
		if strings.EqualFold(b.sub.IMPI, impi) && (out == nil || b.key < out.key) {
			out = b
		}
	}
	return out
}

// challengeLocked issues a new challenge for b: a random nonce for MD5 in
// a 401, or for AKA the MAR for the vector (vectorArrivedLocked issues the
// challenge).
func (s *scscf) challengeLocked(req *sip.Request, b *binding, sub Subscriber, stale bool) (*sip.Response, *vectorRequest) {
	if s.c.cfg.isAKA() {
		return nil, &vectorRequest{b: b, sub: sub, stale: stale}
	}
	return s.challengeWithLocked(req, b, sub, stale, vector{}, nil), nil
}

// vectorArrivedLocked issues the challenge for the HSS's answer to vr,
// sent while the lock was released: the binding may have ended meanwhile
// (then the challenge goes to the binding of the contact now, new if
// need be), or the S-CSCF closed or restarted (then 500).
func (s *scscf) vectorArrivedLocked(req *sip.Request, vr *vectorRequest, epoch uint64, vec vector, err error) *sip.Response {
	c := s.c
	if s.closed || s.epoch != epoch {
		return newResponse(req, sip.StatusInternalServerError, "Server Internal Error (restarted)")
	}
	b := vr.b
	if s.bindings[b.key] != b {
		if cur := s.bindings[b.key]; cur != nil {
			b = cur
		} else {
			b = &binding{key: b.key, sub: b.sub, state: statePending, contactID: randToken(6), contact: b.contact.Clone()}
			s.bindings[b.key] = b
		}
	}
	if vr.resync != nil {
		if errors.Is(err, errBadAUTS) || errors.Is(err, errUnknownSubscriber) {
			c.log.Info("resynchronisation refused", "impi", vr.sub.IMPI, "err", err)
			return s.authFailLocked(req, b, "Forbidden (resynchronisation failed)")
		}
		if err == nil {
			c.stats.resyncs.Add(1)
		}
	}
	return s.challengeWithLocked(req, b, vr.sub, vr.stale, vec, err)
}

// challengeWithLocked issues the challenge for vec (AKA), or answers the
// HSS's error verr.
func (s *scscf) challengeWithLocked(req *sip.Request, b *binding, sub Subscriber, stale bool, vec vector, verr error) *sip.Response {
	c := s.c
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
			s.forgetIfPendingLocked(b)
			return newResponse(req, sip.StatusInternalServerError, "Server Internal Error (HSS)")
		}
		c.stats.vectors.Add(1)
		ch.vec = vec
		dc.Nonce = digest.EncodeAKANonce(vec.RAND, vec.AUTN, nil)
		// For the P-CSCF (TS 33.203 §6.1.1, SM4), which strips them.
		dc.CK, dc.IK = hex.EncodeToString(vec.CK[:]), hex.EncodeToString(vec.IK[:])
	} else {
		dc.Nonce = randToken(24)
	}
	b.chal = ch
	if b.authTimer != nil {
		b.authTimer.Stop()
	}
	b.authTimer = s.after(c.cfg.AuthTimeout, func() { s.authTimeoutLocked(b, ch) })

	resp := newResponse(req, sip.StatusUnauthorized, "Unauthorized")
	www := dc.String()
	if c.cfg.CKIKInChallenge && c.cfg.Faults.take(&c.cfg.Faults.malformedWWWAuth) {
		// No P-CSCF of ours relays this 401: the fault is applied here.
		www = malformedWWWAuth(c.cfg.Domain, dc.Nonce)
	}
	dc.CK, dc.IK = "", ""
	resp.AppendHeader(sip.NewHeader("WWW-Authenticate", www))
	return resp
}

// malformedWWWAuth is the WWW-Authenticate of Faults.MalformedWWWAuthenticate.
func malformedWWWAuth(domain, nonce string) string {
	return `Digest realm="` + domain + `", nonce="` + nonce[:len(nonce)/2] + `, algorithm=`
}

// authTimeoutLocked ends a challenge that was never answered (the
// S-CSCF's reg-await-auth timer, TS 24.229 §5.4.1.2.1): a binding that
// was never registered goes.
func (s *scscf) authTimeoutLocked(b *binding, ch *challenge) {
	if b.chal != ch {
		return
	}
	s.c.log.Info("challenge not answered in time", "impi", b.sub.IMPI, "timeout", s.c.cfg.AuthTimeout)
	b.chal = nil
	s.forgetIfPendingLocked(b)
}

func (s *scscf) forgetIfPendingLocked(b *binding) {
	if b.state != statePending || s.bindings[b.key] != b {
		return
	}
	b.stopTimers()
	delete(s.bindings, b.key)
}

// resyncLocked handles a REGISTER with auts (TS 33.102 §6.3.5).
func (s *scscf) resyncLocked(req *sip.Request, b *binding, sub Subscriber, auth *digest.Authorization) (*sip.Response, *vectorRequest) {
	c := s.c
	// RFC 3310 §3.4 carries AUTS base64-encoded; UEs send it with and
	// without padding, and digest.DecodeAUTS takes both.
	auts, err := digest.DecodeAUTS(auth.AUTS)
	if err != nil {
		c.log.Info("auts is not base64 of 14 bytes", "impi", sub.IMPI, "err", err)
		return s.authFailLocked(req, b, "Forbidden (malformed auts)"), nil
	}
	// One MAR carries the resynchronisation and asks for the new vector
	// (TS 29.228 §6.3.3).
	return nil, &vectorRequest{b: b, sub: sub, resync: &resyncData{RAND: b.chal.vec.RAND, AUTS: auts}}
}

// authFailLocked answers 403 and forgets the challenge, and the binding
// when it was never registered.
func (s *scscf) authFailLocked(req *sip.Request, b *binding, reason string) *sip.Response {
	s.c.stats.authFailures.Add(1)
	b.chal = nil
	if b.authTimer != nil {
		b.authTimer.Stop()
	}
	s.forgetIfPendingLocked(b)
	return newResponse(req, sip.StatusForbidden, reason)
}

// checkResponse verifies the digest response against the challenge
// (digest.Verify: realm, nonce, opaque, algorithm, qop, then the response
// in constant time).
func (s *scscf) checkResponse(req *sip.Request, a *digest.Authorization, ch *challenge, sub Subscriber) error {
	if !strings.EqualFold(a.Username, sub.IMPI) {
		return fmt.Errorf("username %q is not the IMPI", a.Username)
	}
	var password []byte
	switch s.c.cfg.Algorithm {
	case digest.AKAv1MD5:
		password = ch.vec.XRES[:]
	case digest.AKAv2MD5:
		password = digest.AKAv2Password(ch.vec.XRES[:], ch.vec.IK, ch.vec.CK)
	default:
		password = []byte(sub.Password)
	}
	return digest.Verify(&ch.dc, a, string(req.Method), req.Body(), password)
}

// registeredLocked records a successful (re-)registration and builds the
// 200; the NOTIFYs of the change follow it.
func (s *scscf) registeredLocked(req *sip.Request, b *binding, contact *sip.ContactHeader, reqExp int64) *sip.Response {
	c := s.c
	granted := min(time.Duration(reqExp)*time.Second, c.cfg.MaxExpires)
	now := time.Now()
	first := b.state != stateRegistered
	b.state = stateRegistered
	b.granted = granted
	b.expires = now.Add(granted)
	b.contact = contact.Clone()
	b.transport = strings.ToUpper(req.Transport())
	b.registered = now
	if first {
		b.event = "registered"
	} else {
		b.event = "refreshed"
	}
	// The UE's address: the IP the REGISTER came from and the Contact's
	// port (default 5060), port_us over SAs.
	src, _ := netip.ParseAddrPort(req.Source())
	port := uint16(5060)
	if contact.Address.Port > 0 && contact.Address.Port < 65536 {
		port = uint16(contact.Address.Port)
	}
	b.ue = netip.AddrPortFrom(src.Addr(), port)
	b.path = nil
	if v := headerValues(req, "Path"); len(v) > 0 {
		b.path = []string{strings.Join(v, ", ")}
	}
	if b.expTimer != nil {
		b.expTimer.Stop()
	}
	b.expTimer = s.after(granted, func() { s.expireLocked(b) })
	c.stats.registered.Add(1)
	c.log.Info("registered", "impi", b.sub.IMPI, "contact", b.contact.Address.String(), "expires", granted, "event", b.event)

	resp := newResponse(req, sip.StatusOK, "OK")
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
	s.notifyChangeLocked(b.sub.IMPI, nil)
	return resp
}

// deregisterLocked ends the binding(s) a de-REGISTER names and answers
// 200. The UE's own subscriptions end with it; the others are notified
// after the 200.
func (s *scscf) deregisterLocked(req *sip.Request, sub Subscriber, contact *sip.ContactHeader) *sip.Response {
	c := s.c
	var ended []*binding
	if contact.Address.Wildcard {
		for _, b := range s.bindings {
			if strings.EqualFold(b.sub.IMPI, sub.IMPI) {
				ended = append(ended, b)
			}
		}
		slices.SortFunc(ended, func(a, b *binding) int { return strings.Compare(a.key, b.key) })
	} else if b := s.bindings[bindingKey(sub.IMPI, contact.Address)]; b != nil {
		ended = append(ended, b)
	}
	for _, b := range ended {
		b.stopTimers()
		delete(s.bindings, b.key)
		c.stats.deregistered.Add(1)
		c.log.Info("de-registered by the UE", "impi", b.sub.IMPI, "contact", b.contact.Address.String())
	}
	resp := newResponse(req, sip.StatusOK, "OK")
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
	if len(ended) > 0 {
		for _, b := range ended {
			s.endSubscriptionsOfLocked(b)
		}
		s.notifyChangeLocked(ended[0].sub.IMPI, terminatedContacts(ended, "unregistered"))
	}
	return resp
}

// expireLocked ends a binding whose registration was not refreshed; the
// P-CSCF learns it from the reg event (regEnded) after the NOTIFYs left.
func (s *scscf) expireLocked(b *binding) {
	c := s.c
	if s.bindings[b.key] != b {
		return
	}
	c.log.Info("registration expired", "impi", b.sub.IMPI, "contact", b.contact.Address.String())
	b.stopTimers()
	delete(s.bindings, b.key)
	// Subscriptions carried by b's SAs cannot outlive them: their last
	// NOTIFY ends them; others go on.
	for _, x := range s.sortedSubsLocked(b.sub.IMPI) {
		state := ""
		if x.b == b {
			state = "terminated;reason=noresource"
		}
		s.sendNotifyLocked(x, terminatedContacts([]*binding{b}, "expired"), state)
		if x.b == b {
			s.removeSubscriptionLocked(x)
		}
	}
	contact, at := *b.contact.Address.Clone(), time.Now()
	s.later(func() error { return s.pcscf.regEnded([]sip.Uri{contact}, at) })
}

// onRequestLocked handles a non-REGISTER request from a UE. The P-CSCF
// asserts the registered identity it came from in P-Asserted-Identity
// (RFC 3325, TS 24.229 §5.2.6.3); behind an external P-CSCF the From is
// taken instead.
func (s *scscf) onRequestLocked(req *sip.Request) *sip.Response {
	switch req.Method {
	case sip.SUBSCRIBE:
		return s.onSubscribeLocked(req)
	case sip.OPTIONS:
		if s.c.cfg.CKIKInChallenge && s.assertedLocked(req) == nil {
			return newResponse(req, sip.StatusForbidden, "Forbidden (not registered)")
		}
		resp := newResponse(req, sip.StatusOK, "OK")
		resp.AppendHeader(sip.NewHeader("Allow", "REGISTER, SUBSCRIBE, NOTIFY, OPTIONS"))
		return resp
	case sip.NOTIFY, sip.MESSAGE, sip.INVITE, sip.PUBLISH, sip.INFO, sip.UPDATE, sip.BYE, sip.CANCEL, sip.PRACK, sip.REFER:
		if s.c.cfg.CKIKInChallenge && s.assertedLocked(req) == nil {
			return newResponse(req, sip.StatusForbidden, "Forbidden (not registered)")
		}
		return newResponse(req, sip.StatusNotImplemented, "Not Implemented in the lab core")
	default:
		if s.c.cfg.CKIKInChallenge && s.assertedLocked(req) == nil {
			return newResponse(req, sip.StatusForbidden, "Forbidden (not registered)")
		}
		return newResponse(req, sip.StatusNotImplemented, "Not Implemented")
	}
}

// assertedLocked returns the registered binding a request comes from: of
// the subscriber whose IMPU the P-CSCF asserted (the From behind an
// external P-CSCF), preferring the one whose contact is the request's
// Contact.
func (s *scscf) assertedLocked(req *sip.Request) *binding {
	var id string
	if v := headerValues(req, "P-Asserted-Identity"); len(v) > 0 {
		id = v[0]
	} else if s.c.cfg.CKIKInChallenge {
		id = req.From().Address.String()
	} else {
		return nil
	}
	want := ""
	if ct := req.Contact(); ct != nil {
		want = contactKey(ct.Address)
	}
	var out *binding
	for _, b := range s.bindings {
		if b.state != stateRegistered || !b.sub.hasIMPU(id) {
			continue
		}
		switch {
		case out == nil:
			out = b
		case (contactKey(b.contact.Address) == want) != (contactKey(out.contact.Address) == want):
			if contactKey(b.contact.Address) == want {
				out = b
			}
		case b.key < out.key:
			out = b
		}
	}
	return out
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
