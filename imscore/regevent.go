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
// application/reginfo+xml documents on every change. NOTIFYs travel the
// protected path: from port_pc of the UE's established SA set to its
// port_us (UDP), or on a TCP connection dialled from port_pc; their Via
// names port_ps, where a UDP response from the UE's port_uc arrives.
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
	b        *binding        // whose SAs carry the NOTIFYs
	cseq     uint32
	version  uint32
	expires  time.Time
	timer    *time.Timer
	ended    bool
}

// transport is the one the subscriber's Contact asks for: TCP with
// transport=tcp, else UDP (RFC 3263 §4.1 for an IP address without NAPTR).
func (s *subscription) transport() string {
	if t, ok := s.target.UriParams.Get("transport"); ok && strings.EqualFold(t, "tcp") {
		return "TCP"
	}
	return "UDP"
}

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

// onSubscribe handles a reg-event SUBSCRIBE from the UE of binding b.
func (c *Core) onSubscribe(in inbound, req *sip.Request, b *binding, set *secSet, r route) {
	if ev := eventPackage(req); ev != "reg" {
		resp := newResponse(req, 489, "Bad Event")
		resp.AppendHeader(sip.NewHeader("Allow-Events", "reg"))
		c.reply(req, resp, r, nil)
		return
	}
	if b.state != stateRegistered || (set != nil && set.state == setTemporary) {
		c.reply(req, newResponse(req, sip.StatusForbidden, "Forbidden (not registered)"), r, nil)
		return
	}
	aor := req.Recipient.String()
	if !b.sub.hasIMPU(aor) {
		aor = req.To().Address.String()
		if !b.sub.hasIMPU(aor) {
			c.reply(req, newResponse(req, sip.StatusForbidden, "Forbidden (not your registration)"), r, nil)
			return
		}
	}
	exp := int64(defaultSubscribeExpiry)
	if h := req.GetHeader("Expires"); h != nil {
		n, ok := parseDeltaSeconds(h.Value())
		if !ok {
			c.reply(req, newResponse(req, sip.StatusBadRequest, "Bad Expires"), r, nil)
			return
		}
		exp = n
	}
	granted := min(time.Duration(exp)*time.Second, c.cfg.MaxExpires)

	var s *subscription
	if tag, ok := req.To().Params.Get("tag"); ok {
		s = c.subs[req.CallID().Value()+"\x00"+tag]
		if s == nil || s.ended {
			c.reply(req, newResponse(req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist"), r, nil)
			return
		}
	} else {
		s = &subscription{
			impi:     b.sub.IMPI,
			impus:    b.sub.IMPUs,
			aor:      aor,
			callID:   req.CallID().Value(),
			localTag: randToken(8),
			local:    *req.To().Address.Clone(),
			remote:   cloneFrom(req.From()),
		}
		s.key = s.callID + "\x00" + s.localTag
		c.subs[s.key] = s
	}
	if ct := req.Contact(); ct != nil {
		s.target = *ct.Address.Clone()
	} else if s.target.Host == "" {
		s.target = *req.From().Address.Clone()
	}
	s.b = b
	s.expires = time.Now().Add(granted)
	if s.timer != nil {
		s.timer.Stop()
	}
	if granted > 0 {
		s.timer = c.after(granted, func() {
			c.sendNotifyLocked(s, nil, "terminated;reason=timeout")
			c.removeSubscriptionLocked(s)
		})
	}
	c.stats.subscribes.Add(1)
	c.log.Info("reg-event subscription", "impi", s.impi, "aor", s.aor, "expires", granted)

	resp := newResponse(req, sip.StatusOK, "OK")
	if to := resp.To(); to != nil {
		to.Params.Remove("tag")
		to.Params.Add("tag", s.localTag)
	}
	resp.AppendHeader(sip.NewHeader("Expires", strconv.FormatInt(int64(granted/time.Second), 10)))
	resp.AppendHeader(&sip.ContactHeader{Address: c.notifierURI(b, in.transport)})
	c.reply(req, resp, r, func() {
		if granted == 0 {
			c.sendNotifyLocked(s, nil, "terminated;reason=timeout")
			c.removeSubscriptionLocked(s)
			return
		}
		c.sendNotifyLocked(s, nil, "")
	})
}

// notifierURI is the Contact of the reg-event dialog: the P-CSCF's
// protected server port, so that in-dialog requests come back protected.
func (c *Core) notifierURI(b *binding, transport string) sip.Uri {
	port := c.unprot.addr.Port()
	if c.server != nil {
		port = c.server.addr.Port()
	}
	local := c.localFor(b.ue.Addr())
	u := sip.Uri{Scheme: "sip", User: "scscf", Host: local.String(), Port: int(port), UriParams: sip.NewParams()}
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

func (c *Core) removeSubscriptionLocked(s *subscription) {
	s.stop()
	if c.subs[s.key] == s {
		delete(c.subs, s.key)
	}
}

// endSubscriptionsOfLocked ends, without NOTIFY, the subscriptions carried
// by binding b.
func (c *Core) endSubscriptionsOfLocked(b *binding) {
	for _, s := range c.subs {
		if s.b == b {
			c.removeSubscriptionLocked(s)
		}
	}
}

// notifyChangeLocked sends a full-state NOTIFY to every subscription to
// impi's registration state.
func (c *Core) notifyChangeLocked(impi string, extra []contactChange) []<-chan error {
	var waits []<-chan error
	for _, s := range c.sortedSubsLocked(impi) {
		waits = append(waits, c.sendNotifyLocked(s, extra, ""))
	}
	return waits
}

func (c *Core) sortedSubsLocked(impi string) []*subscription {
	var out []*subscription
	for _, s := range c.subs {
		if !s.ended && strings.EqualFold(s.impi, impi) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *subscription) int { return strings.Compare(a.key, b.key) })
	return out
}

// sendNotifyLocked builds a NOTIFY for s under c.mu and queues its
// client transaction: the first transmission (after a TCP dial, if one is
// needed) goes out when c.mu is released, in order with the responses
// queued before it, and a goroutine Close waits for runs the rest.
// subState overrides "active;expires=N". The channel yields the
// transaction's outcome.
func (c *Core) sendNotifyLocked(s *subscription, extra []contactChange, subState string) <-chan error {
	done := make(chan error, 1)
	if c.closed {
		done <- ErrClosed
		return done
	}
	np, err := c.notifyRouteLocked(s)
	if err != nil {
		c.stats.notifyFailures.Add(1)
		c.log.Info("cannot send NOTIFY", "impi", s.impi, "err", err)
		done <- err
		return done
	}
	s.cseq++
	body := c.reginfoLocked(s, extra)
	if subState == "" {
		left := max(int64(time.Until(s.expires)/time.Second), 0)
		subState = "active;expires=" + strconv.FormatInt(left, 10)
	}
	req := sip.NewRequest(sip.NOTIFY, *s.target.Clone())
	req.AppendHeader(&sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: np.transport,
		Host: np.via.Addr().String(), Port: int(np.via.Port()),
		Params: branchParams(),
	})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: *s.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", s.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{DisplayName: s.remote.DisplayName, Address: *s.remote.Address.Clone(), Params: s.remote.Params.Clone()}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(s.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.cseq, MethodName: sip.NOTIFY})
	if c.cfg.CKIKInChallenge {
		for _, p := range s.b.path {
			req.AppendHeader(sip.NewHeader("Route", p))
		}
	}
	req.AppendHeader(&sip.ContactHeader{Address: c.notifierURI(s.b, np.transport)})
	req.AppendHeader(sip.NewHeader("Event", "reg"))
	req.AppendHeader(sip.NewHeader("Subscription-State", subState))
	ct := sip.ContentTypeHeader(reginfo.ContentType)
	req.AppendHeader(&ct)
	req.SetBody(body)
	req.SetTransport(np.transport)
	finalize(req)

	c.notifyWG.Add(1) // under c.mu while open: Close waits for it
	c.later(func() error {
		r, err := c.notifyDial(np)
		if err != nil {
			c.notifyWG.Done()
			c.stats.notifyFailures.Add(1)
			c.log.Info("cannot send NOTIFY", "impi", s.impi, "err", err)
			done <- err
			return nil
		}
		r.Accept = c.acceptResponse
		// Counted before it leaves: whoever receives it sees it counted.
		c.stats.notifies.Add(1)
		tx, err := c.tp.Start(c.ctx, req, r)
		if err != nil {
			c.stats.notifies.Add(^uint64(0))
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
					c.mu.Lock()
					c.removeSubscriptionLocked(s)
					c.unlockQuiet()
				}
			}
			if err != nil {
				c.stats.notifyFailures.Add(1)
				c.log.Info("NOTIFY failed", "impi", s.impi, "err", err)
			}
			done <- err
		}()
		return nil
	})
	return done
}

// notifyPath is how a NOTIFY reaches the subscriber, decided under c.mu:
// a ready route, or a TCP connection still to dial from the port_pc of
// set (notifyDial, without the lock).
type notifyPath struct {
	r         route
	via       netip.AddrPort // the Via sent-by
	transport string         // the Via transport
	dial      *secSet
}

// notifyRouteLocked picks how a NOTIFY reaches the subscriber, and the Via
// sent-by to put in it.
func (c *Core) notifyRouteLocked(s *subscription) (notifyPath, error) {
	b := s.b
	if c.cfg.isAKA() && !c.cfg.CKIKInChallenge {
		set := b.cur
		if set == nil || set.removed {
			return notifyPath{}, fmt.Errorf("no established SA set for %s", b.sub.IMPI)
		}
		// Via carries port_ps: over UDP the UE answers from port_uc to
		// port_ps (TS 33.203 §7.1), as the P-CSCF answers it at port_us.
		np := notifyPath{via: netip.AddrPortFrom(set.local, set.server.PortS), transport: "UDP", r: set.toUE()}
		if s.transport() == "TCP" {
			np.transport, np.r = "TCP", route{}
			if set.tcpOut != nil {
				np.r = tcpRoute(set.tcpOut)
			} else {
				np.dial = set
			}
		}
		return np, nil
	}
	dst := b.ue
	if c.cfg.CKIKInChallenge {
		// Behind an external P-CSCF: to the first hop of the Path the
		// REGISTER carried (RFC 3327), with the Path as Route.
		hop, err := firstHop(b.path)
		if err != nil {
			return notifyPath{}, err
		}
		dst = hop
	}
	local := c.localFor(dst.Addr())
	via := netip.AddrPortFrom(local, c.unprot.addr.Port())
	if s.transport() == "TCP" {
		return notifyPath{}, fmt.Errorf("NOTIFY over TCP without SAs is not supported by the lab core")
	}
	return notifyPath{r: udpRoute(c.unprot, dst), via: via, transport: "UDP"}, nil
}

// notifyDial completes np: it dials the TCP connection from port_pc to
// the UE's port_us (TS 33.203 §7.1) when np needs one, and keeps it with
// the set. Call it without c.mu.
func (c *Core) notifyDial(np notifyPath) (route, error) {
	set := np.dial
	if set == nil {
		return np.r, nil
	}
	tc, err := c.dialFrom(set.pc, set.local, netip.AddrPortFrom(set.ue, set.client.PortS))
	if err != nil {
		return route{}, err
	}
	c.mu.Lock()
	removed := set.removed
	if !removed && set.tcpOut == nil {
		set.tcpOut = tc
	}
	c.unlockQuiet()
	if removed {
		tc.Abort()
		return route{}, fmt.Errorf("SA set %d removed while its TCP connection was dialled", set.id)
	}
	return tcpRoute(tc), nil
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
func (c *Core) reginfoLocked(s *subscription, extra []contactChange) []byte {
	sub := Subscriber{IMPUs: s.impus}
	var bs []*binding
	for _, b := range c.bindings {
		if strings.EqualFold(b.sub.IMPI, s.impi) && b.state == stateRegistered {
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
	doc := reginfo.Reginfo{Version: uint64(s.version), State: reginfo.StateFull}
	s.version++
	for i, impu := range sub.IMPUs {
		reg := reginfo.Registration{AOR: impu, ID: "reg" + strconv.Itoa(i+1), State: reginfo.RegTerminated, Contacts: contacts}
		if len(bs) > 0 {
			reg.State = reginfo.RegActive
		}
		doc.Registrations = append(doc.Registrations, reg)
	}
	out, err := doc.Marshal()
	if err != nil { // the document is built from validated state
		c.log.Error("reginfo marshal", "err", err)
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

func (c *Core) networkDeregister(impu, event string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	bs := c.registeredOfLocked(impu)
	if len(bs) == 0 {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotRegistered, impu)
	}
	impi := bs[0].sub.IMPI
	for _, b := range bs {
		b.stopTimers()
		delete(c.bindings, b.key)
	}
	var waits []<-chan error
	subs := c.sortedSubsLocked(impi)
	for _, s := range subs {
		waits = append(waits, c.sendNotifyLocked(s, terminatedContacts(bs, event), "terminated;reason="+event))
		s.stop()
	}
	c.log.Info("network-initiated de-registration", "impi", impi, "event", event, "bindings", len(bs), "notifies", len(waits))
	epoch := c.epoch
	c.unlockQuiet() // sends the NOTIFYs

	for _, w := range waits {
		<-w
	}

	c.mu.Lock()
	for _, s := range subs {
		c.removeSubscriptionLocked(s)
	}
	if c.closed || c.epoch != epoch {
		c.mu.Unlock()
		return nil
	}
	for _, b := range bs {
		for _, s := range []*secSet{b.next, b.cur, b.old} {
			c.dropSetLocked(s, "network-initiated de-registration")
		}
	}
	return c.unlock()
}

// Reauthenticate asks the UE to re-authenticate (TS 24.229 §5.4.1.6): the
// registration's lifetime is shortened to ReauthExpires and every
// subscription gets a NOTIFY with contact event "shortened". It returns
// once those NOTIFY transactions completed.
func (c *Core) Reauthenticate(impu string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	bs := c.registeredOfLocked(impu)
	if len(bs) == 0 {
		c.mu.Unlock()
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
			b.expTimer = c.after(time.Until(deadline), func() { c.expireLocked(b) })
		}
		b.event = "shortened"
	}
	waits := c.notifyChangeLocked(bs[0].sub.IMPI, nil)
	if len(waits) == 0 {
		c.log.Warn("re-authentication requested but the UE has no reg-event subscription to learn of it", "impu", impu)
	}
	c.unlockQuiet() // sends the NOTIFYs
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
func (c *Core) registeredOfLocked(impu string) []*binding {
	var out []*binding
	for _, b := range c.bindings {
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
