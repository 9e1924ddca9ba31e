// Package cards talks to a real UICC (or the virtual one in cards/vcard)
// holding an ISIM or a USIM, and offers it as an isim.Authenticator.
//
// The session runs over an apdu.Transport: PC/SC in cards/pcsc (built with
// -tags pcsc, since it needs cgo and libpcsclite), the virtual UICC in
// process, or a scripted double in tests. Open reads EF.DIR and selects the
// ISIM (or, failing that, the USIM); Identity reads the ISIM's EF.IMPI,
// EF.DOMAIN and EF.IMPU, or derives the identities from the USIM's IMSI (TS
// 23.003 §13); Authenticate runs AUTHENTICATE in the 3G/IMS AKA context.
//
// A Card is for one goroutine at a time, like every isim.Authenticator.
package cards

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/cards/uicc"
	"github.com/imsue/imsue/isim"
)

// Card is an open UICC session with one application selected.
type Card struct {
	t     apdu.Transport
	conn  *apdu.Conn
	cla   byte
	iccid string
	apps  []uicc.Application
	app   uicc.Application  // ISIM, else USIM: answers AUTHENTICATE
	usim  *uicc.Application // the USIM, when the card has one
	ident *isim.Identity
	auth  [34]byte
}

var _ isim.Authenticator = (*Card)(nil)

// Options tune Open.
type Options struct {
	// PreferUSIM selects the USIM even when the card has an ISIM, so that
	// identities come from the IMSI and AUTHENTICATE runs in the USIM.
	PreferUSIM bool
}

// Open starts a session: it selects the MF, reads EF.ICCID and EF.DIR, and
// selects the ISIM by its AID, or the USIM when there is no ISIM. Nothing
// here needs the PIN. Close closes t when it is an io.Closer.
func Open(ctx context.Context, t apdu.Transport, p apdu.Protocol, opt Options) (*Card, error) {
	c := &Card{t: t, conn: apdu.NewConn(t, p), cla: 0x00}
	if err := c.selectFID(ctx, "select MF", uicc.FIDMF); err != nil {
		return nil, err
	}
	// The ICCID is informational: a card that refuses it is still usable.
	if b, err := c.readTransparent(ctx, "EF.ICCID", uicc.FIDICCID); err == nil {
		c.iccid, _ = uicc.DecodeICCID(b)
	} else if !isStatus(err) {
		return nil, err
	}
	if err := c.selectFID(ctx, "select MF", uicc.FIDMF); err != nil {
		return nil, err
	}
	// Without a readable EF.DIR, chooseApp tries the AID prefixes.
	recs, err := c.readLinear(ctx, "EF.DIR", uicc.FIDDIR)
	if err != nil && !isStatus(err) {
		return nil, err
	}
	for _, r := range recs {
		app, ok, err := uicc.ParseDIRRecord(r)
		if err != nil {
			return nil, &Error{Op: "read EF.DIR", Err: err}
		}
		if ok {
			c.apps = append(c.apps, app)
		}
	}
	if err := c.chooseApp(ctx, opt); err != nil {
		return nil, err
	}
	return c, nil
}

// chooseApp selects the ISIM, else the USIM. Without 3GPP entries in
// EF.DIR (or without EF.DIR) the 7-byte AID prefixes are tried: most UICCs
// accept a partial AID.
func (c *Card) chooseApp(ctx context.Context, opt Options) error {
	var isimApp, usimApp *uicc.Application
	for i := range c.apps {
		switch k := c.apps[i].Kind(); {
		case k == uicc.AppISIM && isimApp == nil:
			isimApp = &c.apps[i]
		case k == uicc.AppUSIM && usimApp == nil:
			usimApp = &c.apps[i]
		}
	}
	if isimApp == nil && usimApp == nil {
		isimApp = &uicc.Application{AID: uicc.ISIMPrefix}
		usimApp = &uicc.Application{AID: uicc.USIMPrefix}
	}
	c.usim = usimApp
	var try []*uicc.Application
	if isimApp != nil && !opt.PreferUSIM {
		try = append(try, isimApp)
	}
	if usimApp != nil {
		try = append(try, usimApp)
	}
	var sw apdu.SW
	for _, a := range try {
		err := c.selectAID(ctx, a.AID)
		if err == nil {
			c.app = *a
			return nil
		}
		var e *Error
		if !isStatus(err) || !errors.As(err, &e) {
			return err
		}
		sw = e.SW
	}
	return &Error{Op: "select ISIM or USIM", SW: sw, Err: ErrNoApplication}
}

// Applications returns the applications EF.DIR lists.
func (c *Card) Applications() []uicc.Application { return c.apps }

// Selected returns the application that answers AUTHENTICATE.
func (c *Card) Selected() uicc.Application { return c.app }

// ICCID returns the card's ICCID, or "" when it could not be read.
func (c *Card) ICCID() string { return c.iccid }

// Close ends the session and closes the transport when it is an io.Closer.
func (c *Card) Close() error {
	if cl, ok := c.t.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// Identity returns the subscriber's identities: from the ISIM's EF.IMPI,
// EF.DOMAIN and EF.IMPU when the ISIM is selected and those files are
// filled, otherwise derived from the USIM's IMSI and the MNC length in its
// EF.AD (TS 23.003 §13). The ISIM EFs usually need the PIN.
func (c *Card) Identity(ctx context.Context) (isim.Identity, error) {
	if c.ident != nil {
		return cloneIdentity(*c.ident), nil
	}
	var id isim.Identity
	if c.app.Kind() == uicc.AppISIM {
		var err error
		if id, err = c.readISIMIdentity(ctx); err != nil {
			return isim.Identity{}, err
		}
	}
	if id.IMPI == "" || id.Domain == "" || len(id.IMPUs) == 0 {
		if c.usim == nil {
			if c.app.Kind() == uicc.AppISIM {
				return isim.Identity{}, &Error{Op: "read ISIM identities", Err: errors.New("EF.IMPI, EF.DOMAIN or EF.IMPU is empty and the card has no USIM")}
			}
			return isim.Identity{}, &Error{Op: "read identities", Err: ErrNoApplication}
		}
		derived, err := c.readIMSIIdentity(ctx)
		if err != nil {
			return isim.Identity{}, err
		}
		// What the ISIM has wins; the IMSI fills the gaps (TS 23.003 §13).
		if id.IMPI == "" {
			id.IMPI = derived.IMPI
		}
		if id.Domain == "" {
			id.Domain = derived.Domain
		}
		if len(id.IMPUs) == 0 {
			id.IMPUs = derived.IMPUs
		}
		id.IMSI = derived.IMSI
	}
	c.ident = &id
	return cloneIdentity(id), nil
}

func cloneIdentity(id isim.Identity) isim.Identity {
	id.IMPUs = append([]string(nil), id.IMPUs...)
	return id
}

func (c *Card) readISIMIdentity(ctx context.Context) (isim.Identity, error) {
	var id isim.Identity
	b, err := c.readTransparent(ctx, "EF.IMPI", uicc.FIDIMPI)
	if err != nil {
		return id, err
	}
	if id.IMPI, err = uicc.ParseString("EF.IMPI", b); err != nil {
		return id, &Error{Op: "read EF.IMPI", Err: err}
	}
	if b, err = c.readTransparent(ctx, "EF.DOMAIN", uicc.FIDDOMAIN); err != nil {
		return id, err
	}
	if id.Domain, err = uicc.ParseString("EF.DOMAIN", b); err != nil {
		return id, &Error{Op: "read EF.DOMAIN", Err: err}
	}
	recs, err := c.readLinear(ctx, "EF.IMPU", uicc.FIDIMPU)
	if err != nil {
		return id, err
	}
	for _, r := range recs {
		s, err := uicc.ParseString("EF.IMPU", r)
		if err != nil {
			return id, &Error{Op: "read EF.IMPU", Err: err}
		}
		if s != "" {
			id.IMPUs = append(id.IMPUs, s)
		}
	}
	return id, nil
}

// readIMSIIdentity selects the USIM, reads EF.IMSI and EF.AD, derives the
// identities, and selects the authenticating application again.
func (c *Card) readIMSIIdentity(ctx context.Context) (isim.Identity, error) {
	imsi, ad, err := c.readIMSI(ctx)
	if err != nil {
		return isim.Identity{}, err
	}
	if ad.MNCLength == 0 {
		return isim.Identity{}, &Error{Op: "read EF.AD", Err: errors.New("no MNC length: cannot split the IMSI")}
	}
	id, err := isim.IdentityFromIMSI(imsi, ad.MNCLength)
	if err != nil {
		return isim.Identity{}, &Error{Op: "derive identities from the IMSI", Err: err}
	}
	return id, nil
}

func (c *Card) readIMSI(ctx context.Context) (string, uicc.AD, error) {
	if !bytes.Equal(c.app.AID, c.usim.AID) {
		if err := c.selectAID(ctx, c.usim.AID); err != nil {
			return "", uicc.AD{}, err
		}
		defer func() {
			// Back to the ISIM for AUTHENTICATE; a failure shows there.
			_ = c.selectAID(context.WithoutCancel(ctx), c.app.AID)
		}()
	}
	b, err := c.readTransparent(ctx, "EF.IMSI", uicc.FIDIMSI)
	if err != nil {
		return "", uicc.AD{}, err
	}
	imsi, err := uicc.DecodeIMSI(b)
	if err != nil {
		return "", uicc.AD{}, &Error{Op: "read EF.IMSI", Err: err}
	}
	if b, err = c.readTransparent(ctx, "EF.AD", uicc.FIDAD); err != nil {
		return "", uicc.AD{}, err
	}
	ad, err := uicc.ParseAD(b)
	if err != nil {
		return "", uicc.AD{}, &Error{Op: "read EF.AD", Err: err}
	}
	return imsi, ad, nil
}

// Authenticate runs AUTHENTICATE (00 88 00 81) in the selected application:
// DB → RES, CK, IK (a USIM's Kc is ignored); DC → *isim.SyncFailure with
// AUTS; status 9862 → isim.ErrMACFailure; any other status → *Error naming
// it. The card keeps the SQN state: nothing is stored on this side.
func (c *Card) Authenticate(ctx context.Context, rand isim.RAND, autn isim.AUTN) (isim.Result, error) {
	const op = "AUTHENTICATE"
	if err := ctx.Err(); err != nil {
		return isim.Result{}, ctxErr(op, err)
	}
	r, err := c.conn.Transmit(uicc.AuthenticateCommand(c.cla, rand, autn, &c.auth))
	if err != nil {
		return isim.Result{}, &Error{Op: op, Err: exchangeErr(err)}
	}
	switch {
	case r.SW == apdu.SWAuthMACFailure:
		return isim.Result{}, isim.ErrMACFailure
	case !r.SW.OK():
		return isim.Result{}, &Error{Op: op, SW: r.SW}
	}
	ar, err := uicc.ParseAuthenticateResponse(r.Data)
	if err != nil {
		return isim.Result{}, &Error{Op: op, Err: err}
	}
	if ar.Sync != nil {
		return isim.Result{}, ar.Sync
	}
	return ar.Result, nil
}

// ctxErr reports that ctx ended before op: not a card failure.
func ctxErr(op string, err error) error {
	return fmt.Errorf("card: %s: %w", op, err)
}
