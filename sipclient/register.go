package sipclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/mt"
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
	return c.doRegister(ctx, c.expires)
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
	if c.reg == nil && c.current() == nil {
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

// unprotectedRoute: from the unprotected port to the P-CSCF's. Its
// responses must come from the P-CSCF's address.
func (c *Client) unprotectedRoute() sipnet.Route {
	r := c.route(c.s.network, c.unprotPort, c.s.pcscf)
	pcscf := c.s.pcscf.Addr()
	r.Accept = func(in *sipnet.Inbound) bool { return in.Remote.Addr() == pcscf }
	return r
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
		c.callID, c.digest, c.authed = newCallID(), nil, false // a new registration: a new Call-ID
	}
	// The first REGISTER: unprotected, or over the current SAs with their
	// Security-Verify and the last Authorization (TS 24.229 §5.1.1.4.1).
	first := c.unprotectedRoute()
	var verify []string
	// Over the current SAs the REGISTER answers the last nonce again, with
	// the next nc and a new cnonce (TS 24.229 §5.1.1.4.1, RFC 2617
	// §3.2.2): a repeated nc is a replay to the S-CSCF.
	nextAuthz := c.initialAuthorization
	if cur := c.current(); cur != nil {
		first, verify = c.protectedRoute(cur), cur.verify
		if c.digest != nil {
			nextAuthz = c.reuseAuthorization
		}
	}
	authz := nextAuthz()
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
	resynced, retried423, redirected, rechallenged := false, false, false, false
	var challenges []string // WWW-Authenticate of 401s to the protected REGISTER
	for {
		switch {
		case (res.StatusCode == sip.StatusMovedTemporarily || res.StatusCode == sip.StatusUseProxy) && !redirected && c.current() == nil:
			// 302/305: the P-CSCF names another (RFC 3261 §21.3.3,
			// §21.3.5); followed once, for the initial REGISTER only.
			to, err := redirectTarget(ctx, res)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", statusError("REGISTER", res), err)
			}
			c.s.log.Info("P-CSCF redirects", "status", res.StatusCode, "to", to)
			redirected, c.s.pcscf = true, to
			first = c.unprotectedRoute()
			c.dropOffer(o)
			if o, err = c.newOffer(); err != nil {
				return nil, err
			}
			if res, _, err = send(ctx, authz, o.value, verify, first); err != nil {
				return nil, err
			}
			continue
		case res.StatusCode >= 200 && res.StatusCode < 300:
			// Accepted without a (new) challenge: the current set, if any,
			// goes on protecting the registration, for the time granted. A
			// registration never authenticated is accepted only when asked.
			if !c.authed && expires > 0 && !c.s.AllowUnauthenticated {
				return nil, fmt.Errorf("REGISTER answered %d without a challenge: %w", res.StatusCode, ErrUnauthenticated)
			}
			tm.Total = time.Since(start)
			granted, err := c.granted(res, expires)
			if err != nil {
				return nil, err
			}
			if cur := c.current(); cur != nil && expires > 0 {
				if err := c.extend(ctx, cur, granted); err != nil {
					return nil, err
				}
			}
			return c.registered(res, expires, granted, tm), nil
		case res.StatusCode == sip.StatusIntervalToBrief && !retried423:
			me, ok := minExpires(res)
			if !ok || me <= expires {
				return nil, statusError("REGISTER", res)
			}
			retried423, expires = true, me
			c.expires = me // refreshes ask for it too, not for the refused expiry
			c.dropOffer(o)
			if o, err = c.newOffer(); err != nil {
				return nil, err
			}
			authz = nextAuthz() // a new request: the next nc
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
			granted, err := c.granted(res, expires)
			if err != nil {
				return nil, err
			}
			c.authed = true
			return c.registered(res, expires, granted, tm), nil
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
		if sync, mac := akaOutcome(err); rechallenged && (sync != nil || mac) {
			// The second challenge of the procedure failed at the ISIM: end.
			c.applyLogged(ctx, c.sets.Abort(time.Now()))
			if mac {
				return nil, fmt.Errorf("REGISTER re-challenge: %w", isim.ErrMACFailure)
			}
			return nil, fmt.Errorf("REGISTER re-challenge: %w", sync)
		} else if sync != nil {
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
		ns, err := c.install(ctx, o, mech, verifyNew, r.CK, r.IK, mt.Challenge{CallID: c.callID, CSeq: res.CSeq().SeqNo, Nonce: ch.Nonce})
		// Kept to answer this nonce again (nc 2, 3, …) until the next
		// challenge; everything else of the AKA result goes now.
		next := &digestState{ch: ch, password: bytes.Clone(password), nc: 1}
		clear(password)
		clear(r.RES)
		r.CK, r.IK = [16]byte{}, [16]byte{}
		tm.SAInstall = time.Since(t0)
		if err != nil {
			next.forget()
			return nil, err
		}
		client, mechs := o.value, o.mechs
		o = nil // the set owns port_uc and the SPIs now

		t0 = time.Now()
		res2, in2, err := send(ctx, authz, client, verifyNew, c.protectedRoute(ns))
		tm.Protected = time.Since(t0)
		if err != nil {
			next.forget()
			c.applyLogged(ctx, c.sets.Abort(time.Now()))
			return nil, err
		}
		if res2.StatusCode == sip.StatusUnauthorized && !rechallenged {
			// A new challenge on the protected REGISTER (the S-CSCF's
			// reg-await-auth ran out while a card asked for its PIN, say)
			// restarts authentication: the P-CSCF has made a new temporary
			// set for the same Security-Client, which replaces this one
			// (TS 24.229 §5.1.1.5.1). Once per procedure.
			rechallenged = true
			challenges = append(challenges, string(sipnet.Redact([]byte(strings.Join(headerValues(res2, "WWW-Authenticate"), ", ")))))
			next.forget()
			c.s.log.Info("the protected REGISTER was challenged again: authenticating again")
			o = &offer{params: ns.ue, mechs: mechs, value: client, adopted: true}
			first, verify = c.protectedRoute(ns), verifyNew
			res = res2
			continue
		}
		if res2.StatusCode < 200 || res2.StatusCode >= 300 {
			// Failed authentication drops the new set; an old one stays.
			next.forget()
			c.applyLogged(ctx, c.sets.Abort(time.Now()))
			e := statusError("REGISTER", res2)
			if res2.StatusCode == sip.StatusUnauthorized && len(challenges) > 0 {
				e.Challenges = append(challenges, string(sipnet.Redact([]byte(strings.Join(headerValues(res2, "WWW-Authenticate"), ", ")))))
				e.Err = ErrRechallenged
			}
			return nil, e
		}
		tm.Total = time.Since(start)
		granted, err := c.granted(res2, expires)
		if err != nil {
			next.forget()
			c.applyLogged(ctx, c.sets.Abort(time.Now()))
			return nil, err
		}
		if err := c.establish(ctx, ns, in2, granted); err != nil {
			return nil, err
		}
		c.authed = true
		c.digest.forget()
		c.digest = next
		return c.registered(res2, expires, granted, tm), nil
	}
}

// establish makes ns, the pending set, the one in use after its 200 OK
// granted expires (TS 33.203 §7.4). The set it replaces goes at once if the
// 200 came over ns (traffic on the new set), else when the next message
// does, or when the next challenge brings a newer set.
//
// Its SAs' kernel lifetime grows from reg-await-auth to the registration's
// (Backend.Extend); if that fails the set would expire under the
// registration, so the error ends the procedure.
func (c *Client) establish(ctx context.Context, ns *saState, in *sipnet.Inbound, granted time.Duration) error {
	c.respPort.Store(uint32(ns.ue.PortC))
	if granted <= 0 {
		return nil // a de-registration: the caller clears every set next
	}
	now := time.Now()
	acts, err := c.sets.Registered(now, ns.set.ID, granted)
	if err != nil {
		return fmt.Errorf("SA set lifecycle: %w", err)
	}
	if c.carried(ns, in) {
		acts = append(acts, c.sets.Traffic(now, ns.set.ID)...)
	}
	return c.apply(ctx, acts)
}

// extend records a 200 OK over the current set that brought no new set: its
// lifetime follows the expiry granted.
func (c *Client) extend(ctx context.Context, cur *saState, granted time.Duration) error {
	acts, err := c.sets.Registered(time.Now(), cur.set.ID, granted)
	if err != nil {
		return fmt.Errorf("SA set lifecycle: %w", err)
	}
	return c.apply(ctx, acts)
}

// dropSecurity removes every SA set and forgets the registration's dialog
// state, so that the next Register starts from scratch.
func (c *Client) dropSecurity(ctx context.Context) error {
	err := c.apply(ctx, c.sets.Clear())
	c.respPort.Store(0)
	c.callID, c.authed, c.subRefused = "", false, false
	c.digest.forget()
	c.digest = nil
	return err
}

// granted is the lifetime the 200 OK grants the UE's own binding. For a
// registration (asked > 0), a 200 that lists no binding of the UE or
// grants it 0 s did not register it (ErrNotBound). A de-registration's 200
// lists what is left: the UE's absence is its success.
func (c *Client) granted(res *sip.Response, asked time.Duration) (time.Duration, error) {
	d, bound := ownBinding(res, c.local, c.portUS, asked)
	switch {
	case asked == 0:
		return 0, nil
	case !bound:
		return 0, fmt.Errorf("REGISTER: %w: no Contact for %s among the bindings listed", ErrNotBound, uriString(c.contactURI()))
	case d <= 0:
		return 0, fmt.Errorf("REGISTER: %w: the binding of %s is granted 0 s", ErrNotBound, uriString(c.contactURI()))
	}
	return d, nil
}

// registered records the 200 OK of a registration that granted the UE's
// binding granted (0 for a de-registration).
func (c *Client) registered(res *sip.Response, asked, granted time.Duration, tm Timings) *Registration {
	now := time.Now()
	reg := &Registration{
		IMPI:            c.id.IMPI,
		IMPU:            c.impu.String(),
		Contact:         uriString(c.contactURI()),
		At:              now,
		Timings:         tm,
		Expires:         granted,
		Unauthenticated: !c.authed,
	}
	reg.PubGRUU, reg.TempGRUU = gruus(res, c.local, c.portUS)
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
	if cur := c.current(); cur != nil {
		reg.Security = cur.security()
	}
	c.reg = reg
	c.refreshAt = now.Add(refreshDelay(reg.Expires, c.s.minRefresh))
	// Checked first: the attributes are boxed (allocated) even when the
	// handler discards them, as Config.Logger nil does.
	if c.s.log.Enabled(context.Background(), slog.LevelInfo) {
		if asked == 0 {
			c.s.log.Info("de-registered", "impu", reg.IMPU)
		} else {
			c.s.log.Info("registered", "impu", reg.IMPU, "expires", reg.Expires, "refresh_in", refreshDelay(reg.Expires, c.s.minRefresh))
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
	req.AppendHeader(c.contact(expires))
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
	if c.s.Instance != "" {
		req.AppendHeader(sip.NewHeader("Supported", "path, gruu")) // RFC 5627 §4.1 needs the instance
	} else {
		req.AppendHeader(sip.NewHeader("Supported", "path"))
	}
	if c.s.PANI != "" {
		req.AppendHeader(sip.NewHeader("P-Access-Network-Info", c.s.PANI))
	}
	req.AppendHeader(sip.NewHeader("User-Agent", c.s.userAgent))
	c.addHeaders(req)
	c.noBody(req)
	return req
}

// contact is the REGISTER's Contact (TS 24.229 §5.1.1.2.1, GSMA IR.92
// §2.2.1): the UE's address and port_us, its +sip.instance, the ICSIs in
// +g.3gpp.icsi-ref (each URN's colons percent-encoded, RFC 3840 §9 string
// value), +g.3gpp.smsip when asked, and expires=0 for a de-registration.
// Without +sip.instance, initial filter criteria keyed on the ICSI never
// fire at the S-CSCF.
func (c *Client) contact(expires time.Duration) *sip.ContactHeader {
	h := &sip.ContactHeader{Address: c.contactURI(), Params: sip.NewParams()}
	if expires == 0 {
		h.Params.Add("expires", "0")
	}
	if c.s.Instance != "" {
		h.Params.Add("+sip.instance", `"<`+c.s.Instance+`>"`)
	}
	if len(c.s.icsi) > 0 {
		enc := make([]string, len(c.s.icsi))
		for i, u := range c.s.icsi {
			enc[i] = strings.ReplaceAll(u, ":", "%3A")
		}
		h.Params.Add("+g.3gpp.icsi-ref", `"`+strings.Join(enc, ",")+`"`)
	}
	if c.s.SMSIP {
		h.Params.Add("+g.3gpp.smsip", "")
	}
	return h
}

// noBody gives a request built here its Content-Length: 0. sipgo's
// SetBody(nil) first looks for one to replace, lowercasing every header's
// name on the way (an allocation each); only Config.Headers can have added
// one, so without them it is appended directly (sipnet.SetContentLength).
func (c *Client) noBody(req *sip.Request) {
	if len(c.s.extra) > 0 {
		req.SetBody(nil)
		return
	}
	sipnet.SetContentLength(req)
}

// addHeaders applies Config.Headers: each replaces the UE's header of the
// same name, in any case.
func (c *Client) addHeaders(req *sip.Request) {
	for _, h := range c.s.extra {
		setHeader(req, h[0], h[1])
	}
}
