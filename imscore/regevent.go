package imscore

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/reginfo"
)

// The reg event package (RFC 3680, TS 24.229 §5.4.2.1): the S-CSCF accepts
// a UE's SUBSCRIBE to its own registration state and NOTIFYs full
// application/reginfo+xml documents on every change. NOTIFYs go to the UE
// through the P-CSCF, the Path hop (pcscfPeer.forward), which sends them
// over the protected path: from port_pc of the UE's established SA set to
// its port_us (UDP), or on a TCP connection dialled from port_pc; their
// Via names port_ps, where a UDP response from the UE's port_uc arrives.
// The P-CSCF learns from its own view of the reg event (regEnded) which
// registrations the network ended, as a P-CSCF subscribed to the reg event
// does (TS 24.229 §5.2.3).
//
// Decisions:
//   - A UE may subscribe only to an IMPU of its own implicit set (403
//     otherwise), only once registered, only with Event: reg (489).
//   - The subscription lasts min(Expires, MaxExpires); default 3761 s.
//   - UE-initiated de-registration ends the UE's own subscriptions without a
//     NOTIFY (TS 24.229 §5.1.1.6: the UE considers them ended with the 200);
//     other subscriptions to the same subscriber are notified.
//   - Network-initiated de-registration (Deregister) sends contact state
//     terminated with event "deactivated" (the UE is expected to register
//     again, TS 24.229 §5.4.1.5) and ends the subscription with
//     reason=deactivated; Reject sends event "rejected" and reason=rejected.
//     The SAs go once the NOTIFY transactions completed.

const defaultSubscribeExpiry = 3761 // RFC 3680 §6.5 default

// subscription is one reg-event dialog.
type subscription struct {
	key      string // Call-ID + local tag
	impi     string
	impus    []string // the subscriber's implicit set, as the registration gave it
	aor      string
	callID   string
	localTag string
	local    sip.Uri         // the subscribed AOR: the NOTIFY's From
	remote   *sip.FromHeader // the subscriber: the NOTIFY's To
	target   sip.Uri         // the SUBSCRIBE's Contact
	b        *binding        // the subscriber's own contact: its SAs (at the P-CSCF) carry the NOTIFYs
	cseq     uint32
	version  uint32
	expires  time.Time
	timer    *time.Timer
	ended    bool
}

// transport is the one the subscriber's Contact asks for: TCP with
// transport=tcp, else UDP (RFC 3263 §4.1 for an IP address without NAPTR).
func (s *subscription) transport() string { return uriTransport(s.target) }

func (s *subscription) stop() {
	s.ended = true
	if s.timer != nil {
		s.timer.Stop()
	}
}

// contactChange is a contact to report in a NOTIFY that is no longer (or
// differently) in the registrar: terminated ones.
type contactChange struct {
	b     *binding
	state string // "terminated"
	event string // unregistered, expired, deactivated, rejected
}

func terminatedContacts(bs []*binding, event string) []contactChange {
	out := make([]contactChange, len(bs))
	for i, b := range bs {
		out[i] = contactChange{b: b, state: "terminated", event: event}
	}
	return out
}

// onSubscribeLocked handles a reg-event SUBSCRIBE from a registered UE.
func (s *scscf) onSubscribeLocked(req *sip.Request) *sip.Response {
	c := s.c
	if c.cfg.CKIKInChallenge && s.assertedLocked(req) == nil {
		return newResponse(req, sip.StatusForbidden, "Forbidden (not registered)")
	}
	if ev := eventPackage(req); ev != "reg" {
		resp := newResponse(req, 489, "Bad Event")
		resp.AppendHeader(sip.NewHeader("Allow-Events", "reg"))
		return resp
	}
	b := s.assertedLocked(req)
	if b == nil {
		return newResponse(req, sip.StatusForbidden, "Forbidden (not registered)")
	}
	aor := req.Recipient.String()
	if !b.sub.hasIMPU(aor) {
		aor = req.To().Address.String()
		if !b.sub.hasIMPU(aor) {
			return newResponse(req, sip.StatusForbidden, "Forbidden (not your registration)")
		}
	}
	exp := int64(defaultSubscribeExpiry)
	if h := req.GetHeader("Expires"); h != nil {
		n, ok := parseDeltaSeconds(h.Value())
		if !ok {
			return newResponse(req, sip.StatusBadRequest, "Bad Expires")
		}
		exp = n
	}
	granted := min(time.Duration(exp)*time.Second, c.cfg.MaxExpires)

	var x *subscription
	if tag, ok := req.To().Params.Get("tag"); ok {
		x = s.subs[req.CallID().Value()+"\x00"+tag]
		if x == nil || x.ended {
			return newResponse(req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist")
		}
	} else {
		x = &subscription{
			impi:     b.sub.IMPI,
			impus:    b.sub.IMPUs,
			aor:      aor,
			callID:   req.CallID().Value(),
			localTag: randToken(8),
			local:    *req.To().Address.Clone(),
			remote:   cloneFrom(req.From()),
		}
		x.key = x.callID + "\x00" + x.localTag
		s.subs[x.key] = x
	}
	if ct := req.Contact(); ct != nil {
		x.target = *ct.Address.Clone()
	} else if x.target.Host == "" {
		x.target = *req.From().Address.Clone()
	}
	x.b = b
	x.expires = time.Now().Add(granted)
	if x.timer != nil {
		x.timer.Stop()
	}
	if granted > 0 {
		x.timer = s.after(granted, func() {
			s.sendNotifyLocked(x, nil, "terminated;reason=timeout")
			s.removeSubscriptionLocked(x)
		})
	}
	c.stats.subscribes.Add(1)
	c.log.Info("reg-event subscription", "impi", x.impi, "aor", x.aor, "expires", granted)

	resp := newResponse(req, sip.StatusOK, "OK")
	if to := resp.To(); to != nil {
		to.Params.Remove("tag")
		to.Params.Add("tag", x.localTag)
	}
	resp.AppendHeader(sip.NewHeader("Expires", strconv.FormatInt(int64(granted/time.Second), 10)))
	resp.AppendHeader(&sip.ContactHeader{Address: s.notifierURI(b, strings.ToUpper(req.Transport()))})
	if granted == 0 {
		s.sendNotifyLocked(x, nil, "terminated;reason=timeout")
		s.removeSubscriptionLocked(x)
	} else {
		s.sendNotifyLocked(x, nil, "")
	}
	return resp
}

// notifierURI is the Contact of the reg-event dialog: the P-CSCF's address
// in the binding's Path (its protected server port), so that in-dialog
// requests come back protected; behind an external P-CSCF the core's own
// address.
func (s *scscf) notifierURI(b *binding, transport string) sip.Uri {
	hop, err := firstHop(b.path)
	if s.c.cfg.CKIKInChallenge || err != nil {
		hop = netip.AddrPortFrom(s.c.localFor(b.ue.Addr()), s.c.unprot.addr.Port())
	}
	u := sip.Uri{Scheme: "sip", User: "scscf", Host: hop.Addr().String(), Port: int(hop.Port()), UriParams: sip.NewParams()}
	if transport == "TCP" {
		u.UriParams.Add("transport", "tcp")
	}
	return u
}

func eventPackage(req *sip.Request) string {
	v := headerValues(req, "Event", "o")
	if len(v) == 0 {
		return ""
	}
	pkg, _, _ := strings.Cut(v[0], ";")
	return strings.ToLower(strings.TrimSpace(pkg))
}

func (s *scscf) removeSubscriptionLocked(x *subscription) {
	x.stop()
	if s.subs[x.key] == x {
		delete(s.subs, x.key)
	}
}

// endSubscriptionsOfLocked ends, without NOTIFY, the subscriptions of
// binding b.
func (s *scscf) endSubscriptionsOfLocked(b *binding) {
	for _, x := range s.subs {
		if x.b == b {
			s.removeSubscriptionLocked(x)
		}
	}
}

// notifyChangeLocked sends a full-state NOTIFY to every subscription to
// impi's registration state.
func (s *scscf) notifyChangeLocked(impi string, extra []contactChange) []<-chan error {
	var waits []<-chan error
	for _, x := range s.sortedSubsLocked(impi) {
		waits = append(waits, s.sendNotifyLocked(x, extra, ""))
	}
	return waits
}

func (s *scscf) sortedSubsLocked(impi string) []*subscription {
	var out []*subscription
	for _, x := range s.subs {
		if !x.ended && strings.EqualFold(x.impi, impi) {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b *subscription) int { return strings.Compare(a.key, b.key) })
	return out
}

// sendNotifyLocked builds a NOTIFY for x under the S-CSCF's lock and
// queues its hand-over to the P-CSCF (pcscfPeer.forward), which sends it
// once the lock is released (or, during a request, after the response);
// a goroutine Close waits for runs the rest of the transaction. subState
// overrides "active;expires=N". The channel yields the transaction's
// outcome.
func (s *scscf) sendNotifyLocked(x *subscription, extra []contactChange, subState string) <-chan error {
	c := s.c
	done := make(chan error, 1)
	if s.closed {
		done <- ErrClosed
		return done
	}
	x.cseq++
	body := s.reginfoLocked(x, extra)
	if subState == "" {
		left := max(int64(time.Until(x.expires)/time.Second), 0)
		subState = "active;expires=" + strconv.FormatInt(left, 10)
	}
	transport := x.transport()
	// The P-CSCF adds the Via (its own transaction stands for both hops of
	// the in-process wire).
	req := sip.NewRequest(sip.NOTIFY, *x.target.Clone())
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: *x.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", x.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{DisplayName: x.remote.DisplayName, Address: *x.remote.Address.Clone(), Params: x.remote.Params.Clone()}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(x.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: x.cseq, MethodName: sip.NOTIFY})
	if c.cfg.CKIKInChallenge {
		for _, p := range x.b.path {
			req.AppendHeader(sip.NewHeader("Route", p))
		}
	}
	req.AppendHeader(&sip.ContactHeader{Address: s.notifierURI(x.b, transport)})
	req.AppendHeader(sip.NewHeader("Event", "reg"))
	req.AppendHeader(sip.NewHeader("Subscription-State", subState))
	ct := sip.ContentTypeHeader(reginfo.ContentType)
	req.AppendHeader(&ct)
	req.SetBody(body)
	req.SetTransport(transport)

	epoch := s.epoch
	s.later(func() error {
		// Counted in notifyWG under the lock while open, so that Close
		// waits for it; a NOTIFY of a closed or restarted S-CSCF never
		// leaves (nor does one whose then the P-CSCF dropped with its
		// response: nothing waits for it).
		s.mu.Lock()
		if s.closed || s.epoch != epoch {
			s.mu.Unlock()
			done <- ErrClosed
			return nil
		}
		c.notifyWG.Add(1)
		s.mu.Unlock()
		// Counted before it leaves: whoever receives it sees it counted.
		c.stats.notifies.Add(1)
		tx, err := s.pcscf.forward(req)
		if err != nil {
			c.stats.notifies.Add(^uint64(0))
			c.stats.notifyFailures.Add(1)
			c.log.Info("cannot send NOTIFY", "impi", x.impi, "err", err)
			c.notifyWG.Done()
			done <- err
			return nil
		}
		go func() {
			defer c.notifyWG.Done()
			var resp *sip.Response
			in, err := tx.Wait(c.ctx)
			if err == nil {
				resp = in.Msg.(*sip.Response)
			}
			if err == nil && resp.StatusCode >= 300 {
				err = fmt.Errorf("NOTIFY answered %d %s", resp.StatusCode, resp.Reason)
				if resp.StatusCode == sip.StatusCallTransactionDoesNotExists || resp.StatusCode == sip.StatusForbidden {
					s.mu.Lock()
					s.removeSubscriptionLocked(x)
					s.unlockQuiet()
				}
			}
			if err != nil {
				c.stats.notifyFailures.Add(1)
				c.log.Info("NOTIFY failed", "impi", x.impi, "err", err)
			}
			done <- err
		}()
		return nil
	})
	return done
}

// uriTransport is the transport a request to u uses: TCP with
// transport=tcp, else UDP (RFC 3263 §4.1 for an IP address without NAPTR).
func uriTransport(u sip.Uri) string {
	if t, ok := u.UriParams.Get("transport"); ok && strings.EqualFold(t, "tcp") {
		return "TCP"
	}
	return "UDP"
}

// firstHop returns the address of the first URI of a Path header list; the
// lab core does not resolve names.
func firstHop(path []string) (netip.AddrPort, error) {
	if len(path) == 0 {
		return netip.AddrPort{}, fmt.Errorf("no Path to reach the P-CSCF")
	}
	first, _, _ := strings.Cut(path[0], ",")
	first = strings.TrimSpace(first)
	first = strings.TrimPrefix(first, "<")
	if i := strings.IndexByte(first, '>'); i >= 0 {
		first = first[:i]
	}
	var u sip.Uri
	if err := sip.ParseUri(first, &u); err != nil {
		return netip.AddrPort{}, fmt.Errorf("path %q: %w", first, err)
	}
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("path %q: the lab core needs an IP address: %w", first, err)
	}
	port := u.Port
	if port <= 0 || port > 65535 {
		port = 5060
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// ---- application/reginfo+xml (RFC 3680 §5.3) ----------------------------

// reginfoLocked renders the full registration state of s's subscriber:
// one <registration> per IMPU of the implicit set, each with every contact
// (TS 24.229 §5.4.2.1.2), plus the terminated contacts in extra.
func (s *scscf) reginfoLocked(x *subscription, extra []contactChange) []byte {
	var bs []*binding
	for _, b := range s.bindings {
		if strings.EqualFold(b.sub.IMPI, x.impi) && b.state == stateRegistered {
			bs = append(bs, b)
		}
	}
	slices.SortFunc(bs, func(a, b *binding) int { return strings.Compare(a.key, b.key) })
	var contacts []reginfo.Contact
	for _, b := range bs {
		left := max(int64(time.Until(b.expires)/time.Second), 0)
		contacts = append(contacts, reginfoContact(b, reginfo.ContactActive, reginfo.Event(b.event), uint64(left)))
	}
	for _, x := range extra {
		contacts = append(contacts, reginfoContact(x.b, reginfo.ContactState(x.state), reginfo.Event(x.event), 0))
	}
	doc := reginfo.Reginfo{Version: uint64(x.version), State: reginfo.StateFull}
	x.version++
	for i, impu := range x.impus {
		reg := reginfo.Registration{AOR: impu, ID: "reg" + strconv.Itoa(i+1), State: reginfo.RegTerminated, Contacts: contacts}
		if len(bs) > 0 {
			reg.State = reginfo.RegActive
		}
		doc.Registrations = append(doc.Registrations, reg)
	}
	out, err := doc.Marshal()
	if err != nil { // the document is built from validated state
		s.c.log.Error("reginfo marshal", "err", err)
		return nil
	}
	return out
}

// reginfoContact describes one binding; its Contact header parameters other
// than expires go into unknown-param (e.g. +sip.instance, RFC 3680 §5.2.2).
func reginfoContact(b *binding, state reginfo.ContactState, ev reginfo.Event, expires uint64) reginfo.Contact {
	ct := reginfo.Contact{
		ID: b.contactID, State: state, Event: ev,
		URI: b.contact.Address.String(), Expires: expires, HasExpires: true,
		DurationRegistered: uint64(max(time.Since(b.registered)/time.Second, 0)),
	}
	if b.registered.IsZero() {
		ct.DurationRegistered = 0
	}
	for _, k := range b.contact.Params.Keys() {
		if strings.EqualFold(k, "expires") || strings.EqualFold(k, "q") {
			continue
		}
		v, _ := b.contact.Params.Get(k)
		ct.UnknownParams = append(ct.UnknownParams, reginfo.Param{Name: k, Value: strings.Trim(v, `"`)})
	}
	return ct
}

// ---- network-initiated procedures ---------------------------------------

// Deregister is the network-initiated de-registration of TS 24.229
// §5.4.1.5: every binding of the subscriber owning impu is removed, each
// subscription gets a NOTIFY with the registration terminated and the
// contacts terminated with event "deactivated" (the UE is expected to
// register again), and the SA sets are removed once those NOTIFY
// transactions completed (at most Timer F).
func (c *Core) Deregister(impu string) error { return c.networkDeregister(impu, "deactivated") }

// Reject is Deregister with event "rejected": the UE shall not
// re-register (TS 24.229 §5.4.1.5).
func (c *Core) Reject(impu string) error { return c.networkDeregister(impu, "rejected") }

func (c *Core) networkDeregister(impu, event string) error { return c.s.networkDeregister(impu, event) }

func (s *scscf) networkDeregister(impu, event string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	bs := s.registeredOfLocked(impu)
	if len(bs) == 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotRegistered, impu)
	}
	impi := bs[0].sub.IMPI
	at := time.Now()
	for _, b := range bs {
		b.stopTimers()
		delete(s.bindings, b.key)
	}
	var waits []<-chan error
	subs := s.sortedSubsLocked(impi)
	for _, x := range subs {
		waits = append(waits, s.sendNotifyLocked(x, terminatedContacts(bs, event), "terminated;reason="+event))
		x.stop()
	}
	s.c.log.Info("network-initiated de-registration", "impi", impi, "event", event, "bindings", len(bs), "notifies", len(waits))
	epoch := s.epoch
	s.unlockQuiet() // hands the NOTIFYs to the P-CSCF

	for _, w := range waits {
		<-w
	}

	s.mu.Lock()
	for _, x := range subs {
		s.removeSubscriptionLocked(x)
	}
	stale := s.closed || s.epoch != epoch
	s.unlockQuiet()
	if stale {
		return nil
	}
	// The P-CSCF's reg event: the SAs go once the NOTIFYs completed.
	contacts := make([]sip.Uri, len(bs))
	for i, b := range bs {
		contacts[i] = *b.contact.Address.Clone()
	}
	return s.pcscf.regEnded(contacts, at)
}

// Reauthenticate asks the UE to re-authenticate (TS 24.229 §5.4.1.6): the
// registration's lifetime is shortened to ReauthExpires and every
// subscription gets a NOTIFY with contact event "shortened". It returns
// once those NOTIFY transactions completed.
func (c *Core) Reauthenticate(impu string) error { return c.s.reauthenticate(impu) }

func (s *scscf) reauthenticate(impu string) error {
	c := s.c
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	bs := s.registeredOfLocked(impu)
	if len(bs) == 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotRegistered, impu)
	}
	deadline := time.Now().Add(c.cfg.ReauthExpires)
	for _, b := range bs {
		if b.expires.After(deadline) {
			b.expires = deadline
			b.granted = c.cfg.ReauthExpires
			if b.expTimer != nil {
				b.expTimer.Stop()
			}
			b.expTimer = s.after(time.Until(deadline), func() { s.expireLocked(b) })
		}
		b.event = "shortened"
		// Network-initiated re-authentication (TS 24.229 §5.4.1.6): the
		// next REGISTER is challenged, not accepted on the old nonce.
		b.used = nil
	}
	waits := s.notifyChangeLocked(bs[0].sub.IMPI, nil)
	if len(waits) == 0 {
		c.log.Warn("re-authentication requested but the UE has no reg-event subscription to learn of it", "impu", impu)
	}
	s.unlockQuiet() // hands the NOTIFYs to the P-CSCF
	var first error
	for _, w := range waits {
		if err := <-w; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// registeredOfLocked returns the registered bindings of the subscriber
// that owns impu.
func (s *scscf) registeredOfLocked(impu string) []*binding {
	var out []*binding
	for _, b := range s.bindings {
		if b.state == stateRegistered && b.sub.hasIMPU(impu) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b *binding) int { return strings.Compare(a.key, b.key) })
	return out
}

func cloneFrom(f *sip.FromHeader) *sip.FromHeader {
	return &sip.FromHeader{DisplayName: f.DisplayName, Address: *f.Address.Clone(), Params: f.Params.Clone()}
}

func branchParams() sip.HeaderParams {
	p := sip.NewParams()
	p.Add("branch", sip.GenerateBranch())
	return p
}
