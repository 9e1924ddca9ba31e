package sipclient

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/reginfo"
	"github.com/imsue/imsue/sipnet"
)

// The reg-event subscription (RFC 3680, TS 24.229 §5.1.1.3): after the
// registration the UE subscribes to its own registration state and acts on
// what the S-CSCF notifies.

// subscription is the reg-event dialog.
type subscription struct {
	callID, fromTag, toTag string
	cseq                   uint32
	target                 sip.Uri  // Request-URI: the default IMPU, then the 2xx Contact
	route                  []string // Route values: P-CSCF protected port + Service-Route
	expires                time.Duration
	at                     time.Time // when the last 2xx arrived
	active                 bool
	version                uint64 // of the last reginfo document applied
	haveVersion            bool
}

// notifyEvent is a NOTIFY of the subscription, answered 200 already.
type notifyEvent struct {
	in         *sipnet.Inbound
	body       []byte
	terminated bool   // Subscription-State: terminated
	reason     string // its reason parameter, lower case
}

// subscriptionExpires is what the UE asks for (TS 24.229 §5.1.1.3).
const subscriptionExpires = 600000 * time.Second

func (c *Client) setSubscription(s *subscription) {
	c.sub = s
	c.mu.Lock()
	c.subCallID = ""
	if s != nil {
		c.subCallID = s.callID
	}
	c.mu.Unlock()
}

// ensureSubscribed subscribes unless disabled or already subscribed.
func (c *Client) ensureSubscribed(ctx context.Context) {
	if c.s.NoRegEvent || c.reg == nil || c.subRefused || (c.sub != nil && c.sub.active) {
		return
	}
	c.subscribe(ctx)
}

// subscribe sends the initial or refreshing SUBSCRIBE. A failure is logged
// and leaves no active subscription; the next registration refresh tries
// again. Like every non-REGISTER request it goes over the SAs with the
// P-CSCF's protected port and the Service-Route as route set, and without
// Security-Verify or sec-agree (TS 24.229 §5.1.2A.1). Its transaction
// never outlasts the next registration refresh: Run waits for it, and a
// P-CSCF that leaves a SUBSCRIBE unanswered must not hold up the refresh
// for Timer F.
func (c *Client) subscribe(ctx context.Context) {
	if !c.refreshAt.IsZero() && time.Until(c.refreshAt) < c.s.timers.T1*64 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, c.refreshAt)
		defer cancel()
	}
	s := c.sub
	if s == nil {
		target, err := parseURI(c.reg.IMPU)
		if err != nil {
			c.s.log.Warn("reg-event: default IMPU unusable", "err", err)
			return
		}
		s = &subscription{callID: newCallID(), fromTag: newTag(), target: target,
			route: c.preloadedRoute(), expires: subscriptionExpires}
		c.setSubscription(s)
	}
	rt := c.unprotectedRoute()
	if cur := c.current(); cur != nil {
		rt = c.protectedRoute(cur)
	}
	req := c.buildSubscribe(s, rt.Network)
	in, err := c.transact(ctx, req, rt)
	if err != nil {
		c.s.log.Warn("reg-event SUBSCRIBE failed", "err", err)
		c.setSubscription(nil)
		return
	}
	res := in.Msg.(*sip.Response)
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		c.s.log.Warn("reg-event SUBSCRIBE rejected", "status", res.StatusCode, "reason", res.Reason)
		c.setSubscription(nil)
		return
	}
	if to := res.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok {
			s.toTag = tag
		}
	}
	if s.expires = subscriptionExpires; len(headerValues(res, "Expires")) > 0 {
		if n, err := strconv.ParseUint(strings.TrimSpace(headerValues(res, "Expires")[0]), 10, 32); err == nil {
			s.expires = time.Duration(n) * time.Second
		}
	}
	// RFC 3261 §12.1.2: the dialog's route set and remote target.
	if rr := headerValues(res, "Record-Route"); len(rr) > 0 {
		entries := splitList(rr...)
		slices.Reverse(entries)
		s.route = entries
	}
	if ct := res.Contact(); ct != nil && !ct.Address.Wildcard {
		s.target = ct.Address
	}
	s.active, s.at = true, time.Now()
	if s.expires == 0 {
		s.active = false
	}
	c.s.log.Info("reg-event subscribed", "expires", s.expires)
}

// preloadedRoute is the route set of requests outside a dialog
// (TS 24.229 §5.1.2A.1): the P-CSCF with its protected server port, then
// the Service-Route of the registration.
func (c *Client) preloadedRoute() []string {
	port := c.s.pcscf.Port()
	if cur := c.current(); cur != nil {
		port = cur.pcscf.PortS
	}
	r := []string{"<sip:" + netip.AddrPortFrom(c.s.pcscf.Addr(), port).String() + ";lr>"}
	if c.reg != nil {
		r = append(r, c.reg.ServiceRoute...)
	}
	return r
}

func (c *Client) buildSubscribe(s *subscription, network string) *sip.Request {
	req := sip.NewRequest(sip.SUBSCRIBE, s.target)
	req.AppendHeader(c.via(network))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, r := range s.route {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	impu := c.impu
	if u, err := parseURI(c.reg.IMPU); err == nil {
		impu = u
	}
	from := &sip.FromHeader{Address: impu, Params: sip.NewParams()}
	from.Params.Add("tag", s.fromTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: impu, Params: sip.NewParams()}
	if s.toTag != "" {
		to.Params.Add("tag", s.toTag)
	}
	req.AppendHeader(to)
	callID := sip.CallIDHeader(s.callID)
	req.AppendHeader(&callID)
	s.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(&sip.ContactHeader{Address: c.contactURI()})
	req.AppendHeader(sip.NewHeader("Event", "reg"))
	req.AppendHeader(sip.NewHeader("Accept", reginfo.ContentType))
	req.AppendHeader(sip.NewHeader("Expires", seconds(subscriptionExpires)))
	req.AppendHeader(sip.NewHeader("User-Agent", c.s.userAgent))
	c.addHeaders(req)
	c.noBody(req)
	return req
}

// acceptNotify decides, on the socket goroutine, whether a NOTIFY belongs
// to the subscription (Call-ID and Event: reg); it returns the event for
// Run, or nil for a 481.
func (c *Client) acceptNotify(in *sipnet.Inbound, req *sip.Request) *notifyEvent {
	c.mu.Lock()
	callID := c.subCallID
	c.mu.Unlock()
	if callID == "" || req.CallID() == nil || string(*req.CallID()) != callID {
		return nil
	}
	ev := headerValues(req, "Event")
	if len(ev) == 0 {
		ev = headerValues(req, "o") // compact form (RFC 6665 §8.2.1)
	}
	if len(ev) == 0 || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ev[0], ";", 2)[0]), "reg") {
		return nil
	}
	ne := &notifyEvent{in: in, body: req.Body()}
	if ss := headerValues(req, "Subscription-State"); len(ss) > 0 {
		state, params, _ := strings.Cut(ss[0], ";")
		ne.terminated = strings.EqualFold(strings.TrimSpace(state), "terminated")
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(p, "="); ok && strings.EqualFold(strings.TrimSpace(k), "reason") {
				ne.reason = strings.ToLower(strings.TrimSpace(v))
			}
		}
	}
	return ne
}

// onNotify acts on a reg-event NOTIFY (reginfo.Decide gives the rules).
func (c *Client) onNotify(ctx context.Context, ev *notifyEvent) error {
	// Traffic on the new set: the old one can go (TS 33.203 §7.4).
	if cur := c.current(); cur != nil && c.carried(cur, ev.in) {
		c.applyLogged(ctx, c.sets.Traffic(time.Now(), cur.set.ID))
	}
	s := c.sub
	if s == nil || c.reg == nil {
		return nil
	}
	if ev.terminated {
		s.active = false
		c.setSubscription(nil)
		switch ev.reason {
		case "deactivated", "timeout":
			// RFC 6665 §4.1.3: subscribe again at once (after this NOTIFY's
			// body has been acted on: it may end the registration).
			defer func() {
				if c.reg != nil && c.sub == nil {
					c.s.log.Info("reg-event subscription terminated; subscribing again", "reason", ev.reason)
					c.ensureSubscribed(ctx)
				}
			}()
		case "rejected", "noresource", "invariant":
			// Not to be retried (RFC 6665 §4.1.3): not even at the next refresh.
			c.subRefused = true
			c.s.log.Warn("reg-event subscription refused for good", "reason", ev.reason)
		}
		// Otherwise (probation, giveup, none): the next refresh subscribes again.
	}
	if len(ev.body) == 0 {
		return nil
	}
	doc, err := reginfo.Parse(ev.body)
	if err != nil {
		c.s.log.Warn("reg-event NOTIFY body unusable", "err", err)
		return nil
	}
	switch doc.Freshness(s.version, s.haveVersion) {
	case reginfo.Stale:
		return nil
	case reginfo.Gap:
		// A NOTIFY was lost: the refresh SUBSCRIBE brings full state.
		defer func() {
			if c.sub == s {
				c.subscribe(ctx)
			}
		}()
	}
	s.version, s.haveVersion = doc.Version, true

	d := doc.Decide("", uriString(c.contactURI()))
	switch d.Action {
	case reginfo.ActionNone:
		return nil
	case reginfo.ActionReregister:
		if d.Initial {
			c.s.log.Info("reg-event: contact removed by the network; registering again from scratch", "event", d.Event, "retry_after", d.RetryAfter)
			if d.RetryAfter > 0 {
				t := time.NewTimer(d.RetryAfter)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return c.fromScratch(ctx)
		}
		if d.HasExpires {
			// Shortened: refresh by the new expiry, with the usual margin.
			at := time.Now().Add(refreshDelay(d.Expires, c.s.minRefresh))
			if at.Before(c.refreshAt) {
				c.refreshAt = at
			}
			c.s.log.Info("reg-event: registration shortened", "expires", d.Expires)
			return nil
		}
		c.s.log.Info("reg-event: re-authentication requested")
		return c.refresh(ctx)
	case reginfo.ActionTerminated:
		c.s.log.Warn("reg-event: registration terminated by the network", "event", d.Event)
		err := c.dropSecurity(ctx)
		c.reg = nil
		c.setSubscription(nil)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w (reg-event contact event %q)", ErrTerminated, d.Event)
	}
	return nil
}
