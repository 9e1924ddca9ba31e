package sipclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/sipnet"
)

// ErrNotRegistered is returned by Run and Deregister without a registration.
var ErrNotRegistered = errors.New("sipclient: not registered")

// Register performs a registration (TS 24.229 §5.1.1.2): the initial one
// from the unprotected port, or, when the Client holds an SA set, a
// re-registration over it. It returns when the 200 OK arrived or the
// procedure failed; a failure leaves no SA set of its own behind.
//
// Errors: *TimeoutError or *TransportError (ErrNoAnswer) when the P-CSCF
// does not answer; *RejectedError for a final rejection (403, 404, ...);
// isim.ErrMACFailure after the MAC-failure REGISTER was sent once;
// ErrResyncFailed; mt sec-agree errors (ErrNoSecurityServer among them);
// *IPsecError; ErrBadChallenge, ErrAlgorithmDowngrade, ErrNoPassword.
func (c *Client) Register(ctx context.Context) (*Registration, error) {
	c.op.Lock()
	defer c.op.Unlock()
	ctx, cancel := c.scope(ctx)
	defer cancel()
	return c.doRegister(ctx, c.s.expires)
}

// Deregister sends REGISTER with Expires: 0 over the SAs (answering a
// challenge if the network sends one), waits at most Config.DeregTimeout for
// the final response, then removes every SA set whatever happened
// (TS 24.229 §5.1.1.6). confirmed reports a 2xx. When not confirmed, err
// says why (*TimeoutError: a Kamailio P-CSCF deletes its SAs before
// forwarding the 200, which then never reaches the UE); an *IPsecError means
// an SA set could not be removed.
func (c *Client) Deregister(ctx context.Context) (confirmed bool, err error) {
	c.op.Lock()
	defer c.op.Unlock()
	if c.reg == nil && c.cur == nil {
		return false, ErrNotRegistered
	}
	dctx, cancel := context.WithTimeout(ctx, c.s.deregWait)
	dctx, cancel2 := c.scope(dctx)
	_, err = c.doRegister(dctx, 0)
	if err != nil && errors.Is(dctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = &TimeoutError{Method: "REGISTER (de-registration)", After: c.s.deregWait}
	}
	cancel2()
	cancel()
	confirmed = err == nil
	if rerr := c.dropSecurity(ctx); rerr != nil {
		return confirmed, rerr
	}
	c.reg = nil
	c.setSubscription(nil)
	return confirmed, err
}

// scope returns ctx, also cancelled (with cause ErrClosed) by Close.
func (c *Client) scope(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.life, func() { cancel(context.Cause(c.life)) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// unprotectedRoute: from the unprotected port to the P-CSCF's.
func (c *Client) unprotectedRoute() sipnet.Route {
	return c.route(c.s.network, c.unprotPort, c.s.pcscf)
}

// doRegister is one registration procedure with the given expiry (0 is a
// de-registration). The caller holds c.op.
func (c *Client) doRegister(ctx context.Context, expires time.Duration) (*Registration, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	start := time.Now()
	var tm Timings
	if c.callID == "" {
		c.callID, c.lastAuthz = newCallID(), "" // a new registration: a new Call-ID
	}
	// Keep at most one old and one new set (TS 33.203 §7.4): a set still
	// waiting for traffic on its successor goes before a newer one comes.
	if c.old != nil {
		c.removeLogged(ctx, c.old)
		c.old = nil
	}

	// The first REGISTER: unprotected, or over the current SAs with their
	// Security-Verify and the last Authorization (TS 24.229 §5.1.1.4.1).
	first := c.unprotectedRoute()
	var verify []string
	authz := c.initialAuthorization()
	if c.cur != nil {
		first, verify = c.protectedRoute(c.cur), c.cur.verify
		if c.lastAuthz != "" {
			authz = c.lastAuthz
		}
	}
	o, err := c.newOffer()
	if err != nil {
		return nil, err
	}
	defer func() { c.dropOffer(o) }() // o is nil once a set adopted it

	send := func(ctx context.Context, authz, client string, verify []string, rt sipnet.Route) (*sip.Response, *sipnet.Inbound, error) {
		req := c.buildRegister(expires, authz, client, verify, rt.Network)
		in, err := c.transact(ctx, req, rt)
		if err != nil {
			return nil, nil, err
		}
		return in.Msg.(*sip.Response), in, nil
	}
	res, _, err := send(ctx, authz, o.value, verify, first)
	if err != nil {
		return nil, err
	}
	resynced, retried423 := false, false
	for {
		switch {
		case res.StatusCode >= 200 && res.StatusCode < 300:
			// Accepted without a (new) challenge: the current set, if any,
			// goes on protecting the registration.
			tm.Total = time.Since(start)
			return c.registered(res, expires, tm), nil
		case res.StatusCode == sip.StatusIntervalToBrief && !retried423:
			me, ok := minExpires(res)
			if !ok || me <= expires {
				return nil, statusError("REGISTER", res)
			}
			retried423, expires = true, me
			c.dropOffer(o)
			if o, err = c.newOffer(); err != nil {
				return nil, err
			}
			if res, _, err = send(ctx, authz, o.value, verify, first); err != nil {
				return nil, err
			}
			continue
		case res.StatusCode != sip.StatusUnauthorized:
			return nil, statusError("REGISTER", res)
		}
		if tm.Challenge == 0 {
			tm.Challenge = time.Since(start)
		}
		ch, err := c.readChallenge(res)
		if err != nil {
			return nil, err
		}
		if !ch.aka() {
			// Plain MD5 Digest: no AKA keys, hence no SAs and no sec-agree.
			a, err := c.authorization(ch, []byte(c.s.Password), nil)
			if err != nil {
				return nil, err
			}
			if res, _, err = send(ctx, a, "", nil, first); err != nil {
				return nil, err
			}
			if res.StatusCode < 200 || res.StatusCode >= 300 {
				return nil, statusError("REGISTER", res)
			}
			tm.Total = time.Since(start)
			return c.registered(res, expires, tm), nil
		}
		// Sec-agree before AKA: a Security-Server the UE cannot accept ends
		// the procedure without spending an SQN.
		mech, verifyNew, err := c.agree(o, res)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		r, err := c.s.Auth.Authenticate(ctx, ch.rand, ch.autn)
		tm.AKA += time.Since(t0)
		if sync, mac := akaOutcome(err); sync != nil {
			if resynced {
				return nil, fmt.Errorf("%w: the ISIM refused the SQN of the challenge that followed the resynchronisation (%w)", ErrResyncFailed, sync)
			}
			resynced = true
			c.s.log.Info("SQN out of range: sending AUTS for resynchronisation")
			// A new Security-Client, over the existing SAs if any, and no
			// temporary SAs (TS 24.229 §5.1.1.5.3).
			c.dropOffer(o)
			if o, err = c.newOffer(); err != nil {
				return nil, err
			}
			a, err := c.authorization(ch, nil, &sync.AUTS)
			if err != nil {
				return nil, err
			}
			if res, _, err = send(ctx, a, o.value, verify, first); err != nil {
				return nil, err
			}
			continue
		} else if mac {
			c.s.log.Warn("AUTN MAC failure: the network is not authenticated; telling it once")
			c.dropOffer(o)
			if o, err = c.newOffer(); err == nil {
				if a, err := c.macFailureAuthorization(ch); err == nil {
					// Its answer changes nothing: the UE does not try again.
					wctx, cancel := context.WithTimeout(ctx, c.s.deregWait)
					_, _, _ = send(wctx, a, o.value, verify, first)
					cancel()
				}
			}
			return nil, fmt.Errorf("REGISTER challenge: %w", isim.ErrMACFailure)
		} else if err != nil {
			return nil, fmt.Errorf("AKA: %w", err)
		}

		password := akaPassword(ch, r)
		authz, err = c.authorization(ch, password, nil)
		if err != nil {
			clear(password)
			clear(r.RES)
			r.CK, r.IK = [16]byte{}, [16]byte{}
			return nil, err
		}
		t0 = time.Now()
		ns, err := c.install(ctx, o, mech, verifyNew, r.CK, r.IK)
		clear(password)
		clear(r.RES)
		r.CK, r.IK = [16]byte{}, [16]byte{}
		tm.SAInstall = time.Since(t0)
		if err != nil {
			return nil, err
		}
		client := o.value
		o = nil // the set owns port_uc and the SPIs now

		t0 = time.Now()
		res2, in2, err := send(ctx, authz, client, verifyNew, c.protectedRoute(ns))
		tm.Protected = time.Since(t0)
		if err != nil {
			c.removeLogged(ctx, ns)
			return nil, err
		}
		if res2.StatusCode < 200 || res2.StatusCode >= 300 {
			// Failed authentication drops the new set; an old one stays.
			c.removeLogged(ctx, ns)
			return nil, statusError("REGISTER", res2)
		}
		tm.Total = time.Since(start)
		c.establish(ctx, ns, in2)
		c.lastAuthz = authz
		return c.registered(res2, expires, tm), nil
	}
}

// establish makes ns the set in use after its 200 OK. The set it replaces
// goes at once if the 200 came over ns (traffic on the new set, TS 33.203
// §7.4), else when the next message does, or before the next registration.
func (c *Client) establish(ctx context.Context, ns *saState, in *sipnet.Inbound) {
	ns.established = true
	prev := c.cur
	c.cur = ns
	c.respPort.Store(uint32(ns.ue.PortC))
	if prev == nil {
		return
	}
	if c.carried(ns, in) {
		c.removeLogged(ctx, prev)
		return
	}
	c.old = prev
}

func (c *Client) removeLogged(ctx context.Context, s *saState) {
	if err := c.remove(ctx, s); err != nil {
		c.s.log.Warn("removing an SA set failed", "err", err)
	}
}

// dropSecurity removes every SA set and forgets the registration's dialog
// state, so that the next Register starts from scratch.
func (c *Client) dropSecurity(ctx context.Context) error {
	var errs []error
	for _, s := range []*saState{c.old, c.cur} {
		if err := c.remove(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	c.cur, c.old = nil, nil
	c.respPort.Store(0)
	c.callID, c.lastAuthz = "", ""
	return errors.Join(errs...)
}

// registered records the 200 OK of a registration.
func (c *Client) registered(res *sip.Response, asked time.Duration, tm Timings) *Registration {
	now := time.Now()
	reg := &Registration{
		IMPI:    c.id.IMPI,
		IMPU:    c.impu.String(),
		Contact: uriString(c.contactURI()),
		At:      now,
		Timings: tm,
		Expires: grantedExpires(res, c.local, c.portUS, asked),
	}
	for _, e := range splitList(headerValues(res, "P-Associated-URI")...) {
		reg.AssociatedURIs = append(reg.AssociatedURIs, uriOf(e))
	}
	reg.ServiceRoute = splitList(headerValues(res, "Service-Route")...)
	if prev := c.reg; prev != nil {
		// A re-registration's 200 may omit what did not change.
		if len(reg.AssociatedURIs) == 0 {
			reg.AssociatedURIs = prev.AssociatedURIs
		}
		if len(reg.ServiceRoute) == 0 {
			reg.ServiceRoute = prev.ServiceRoute
		}
	}
	if len(reg.AssociatedURIs) > 0 {
		reg.IMPU = reg.AssociatedURIs[0]
	}
	if c.cur != nil {
		reg.Security = c.cur.security()
	}
	c.reg = reg
	c.refreshAt = now.Add(refreshDelay(reg.Expires))
	// Checked first: the attributes are boxed (allocated) even when the
	// handler discards them, as Config.Logger nil does.
	if c.s.log.Enabled(context.Background(), slog.LevelInfo) {
		if asked == 0 {
			c.s.log.Info("de-registered", "impu", reg.IMPU)
		} else {
			c.s.log.Info("registered", "impu", reg.IMPU, "expires", reg.Expires, "refresh_in", refreshDelay(reg.Expires))
		}
	}
	r := *reg
	return &r
}

func (s *saState) security() *Security {
	return &Security{
		SetID: s.set.ID, Alg: s.mech.Alg, EAlg: s.mech.EAlg, Mode: s.mech.Mode,
		SPIuc: s.ue.SPIc, SPIus: s.ue.SPIs, SPIpc: s.pcscf.SPIc, SPIps: s.pcscf.SPIs,
		PortUC: s.ue.PortC, PortUS: s.ue.PortS, PortPC: s.pcscf.PortC, PortPS: s.pcscf.PortS,
	}
}

// minExpires reads Min-Expires from a 423 (RFC 3261 §10.2.8).
func minExpires(res *sip.Response) (time.Duration, bool) {
	vs := headerValues(res, "Min-Expires")
	if len(vs) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(vs[0]), 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// contactURI is the UE's contact: its address and port_us.
func (c *Client) contactURI() sip.Uri {
	u := sip.Uri{Scheme: "sip", Host: c.local.String(), Port: int(c.portUS)}
	if c.impu.Scheme == "sip" || c.impu.Scheme == "sips" {
		u.User = c.impu.User
	}
	if c.s.network == "tcp" {
		u.UriParams = sip.HeaderParams{{K: "transport", V: "tcp"}}
	}
	return u
}

// via is a new top Via: the UE's address and port_us as sent-by, for UDP
// and TCP alike (TS 24.229 §5.1.1.2.1), and a new branch.
func (c *Client) via(network string) *sip.ViaHeader {
	v := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: viaTransport(network),
		Host: c.local.String(), Port: int(c.portUS), Params: sip.NewParams(),
	}
	v.Params.Add("branch", newBranch())
	return v
}

// viaTransport is the Via transport token of network; the constants save
// strings.ToUpper's copy on every request.
func viaTransport(network string) string {
	switch network {
	case "udp":
		return "UDP"
	case "tcp":
		return "TCP"
	}
	return strings.ToUpper(network)
}

// buildRegister builds a REGISTER of the current registration (same
// Call-ID, next CSeq). client is the Security-Client value; empty means no
// sec-agree at all (plain MD5 cores).
func (c *Client) buildRegister(expires time.Duration, authz, client string, verify []string, network string) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: c.domain})
	req.AppendHeader(c.via(network))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: c.impu, Params: sip.NewParams()}
	from.Params.Add("tag", newTag())
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: c.impu, Params: sip.NewParams()})
	callID := sip.CallIDHeader(c.callID)
	req.AppendHeader(&callID)
	c.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: c.cseq, MethodName: sip.REGISTER})
	// No +sip.instance: the UE does neither GRUU nor outbound, and the
	// REGISTER must stay small (see Config.MaxUDPSize).
	contact := &sip.ContactHeader{Address: c.contactURI(), Params: sip.NewParams()}
	if expires == 0 {
		contact.Params.Add("expires", "0")
	}
	req.AppendHeader(contact)
	req.AppendHeader(sip.NewHeader("Expires", seconds(expires)))
	req.AppendHeader(sip.NewHeader("Authorization", authz))
	if client != "" {
		req.AppendHeader(sip.NewHeader("Security-Client", client))
		for _, v := range verify {
			req.AppendHeader(sip.NewHeader("Security-Verify", v))
		}
		req.AppendHeader(sip.NewHeader("Require", "sec-agree"))
		req.AppendHeader(sip.NewHeader("Proxy-Require", "sec-agree"))
	}
	req.AppendHeader(sip.NewHeader("Supported", "path"))
	req.AppendHeader(sip.NewHeader("User-Agent", c.s.userAgent))
	c.addHeaders(req)
	c.noBody(req)
	return req
}

// noBody gives a request built here its Content-Length: 0. sipgo's
// SetBody(nil) first looks for one to replace, lowercasing every header's
// name on the way (an allocation each); only Config.Headers can have added
// one, so without them it is appended directly.
func (c *Client) noBody(req *sip.Request) {
	if len(c.s.extra) > 0 {
		req.SetBody(nil)
		return
	}
	cl := sip.ContentLengthHeader(0)
	req.AppendHeader(&cl)
}

// addHeaders applies Config.Headers: each replaces the UE's header of the
// same name, in any case.
func (c *Client) addHeaders(req *sip.Request) {
	for _, h := range c.s.extra {
		setHeader(req, h[0], h[1])
	}
}
