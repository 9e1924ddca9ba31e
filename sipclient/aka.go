package sipclient

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/digest"
	"github.com/imsue/imsue/isim"
)

// Glue between the registration and package digest (RFC 2617, RFC 3310
// AKAv1-MD5, RFC 4169 AKAv2-MD5).

// challenge is the WWW-Authenticate the UE answers.
type challenge struct {
	*digest.Challenge
	alg  digest.Variant
	qop  string // "", "auth" or "auth-int"
	rand isim.RAND
	autn isim.AUTN
}

func (ch *challenge) aka() bool { return ch.alg.AKA() }

// chooseQOP picks the quality of protection with digest's SelectQOP: auth
// when offered (what UEs use), else auth-int, else none when the challenge
// has no qop. The UE answers with the lowercase spelling of RFC 2617
// §3.2.1 (the only ones SelectQOP returns, in any case), whatever case the
// challenge used.
func chooseQOP(ch *digest.Challenge) (string, error) {
	q, err := ch.SelectQOP(digest.QOPAuth)
	if err != nil {
		return "", fmt.Errorf("%w: qop %q: none of auth, auth-int", ErrBadChallenge, strings.Join(ch.QOP, ","))
	}
	return strings.ToLower(q), nil
}

// readChallenge picks the WWW-Authenticate of a 401 the UE answers: the first
// Digest challenge with an algorithm it implements (and, with Config.AKAv2,
// only AKAv2-MD5).
func (c *Client) readChallenge(res *sip.Response) (*challenge, error) {
	vals := headerValues(res, "WWW-Authenticate")
	if len(vals) == 0 {
		return nil, fmt.Errorf("%w: 401 without WWW-Authenticate", ErrBadChallenge)
	}
	var firstErr error
	keep := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, v := range vals {
		d, err := digest.ParseChallenge(v)
		if err != nil {
			keep(fmt.Errorf("%w: %w", ErrBadChallenge, err))
			continue
		}
		ch := &challenge{Challenge: d}
		if ch.alg, err = d.Variant(); err != nil {
			keep(fmt.Errorf("%w: algorithm %q not implemented", ErrBadChallenge, d.Algorithm))
			continue
		}
		switch {
		case c.s.AKAv2 && ch.alg != digest.VariantAKAv2:
			keep(fmt.Errorf("%w: got %s", ErrAlgorithmDowngrade, ch.alg))
			continue
		case ch.alg == digest.VariantMD5 && c.s.Password == "":
			keep(ErrNoPassword)
			continue
		}
		if ch.qop, err = chooseQOP(d); err != nil {
			keep(err)
			continue
		}
		if ch.aka() {
			r, a, err := digest.AKANonce(d.Nonce)
			if err != nil {
				keep(fmt.Errorf("%w: nonce: %w", ErrBadChallenge, err))
				continue
			}
			ch.rand, ch.autn = r, a
		}
		return ch, nil
	}
	return nil, firstErr
}

// initialAuthorization is the Authorization of an unchallenged REGISTER
// (TS 24.229 §5.1.1.2.2): it tells the S-CSCF the IMPI. With AKAv2 it also
// names AKAv2-MD5, which an S-CSCF may take as the UE's preference.
func (c *Client) initialAuthorization() string {
	a := digest.Authorization{Username: c.id.IMPI, Realm: c.domain, URI: c.regURI}
	if c.s.AKAv2 {
		a.Algorithm = digest.AKAv2MD5
	}
	return a.String()
}

// digestState is what RFC 3310 needs to answer the last nonce again: its
// challenge, the password (RES, or the RFC 4169 password: a secret, never
// logged, cleared when the state goes) and nc, the number of requests sent
// with the nonce (RFC 2617 §3.2.2).
type digestState struct {
	ch       *challenge
	password []byte
	nc       uint32
}

// forget clears the password. A nil state is fine.
func (d *digestState) forget() {
	if d != nil {
		clear(d.password)
		d.password = nil
	}
}

// reuseAuthorization answers the last nonce for one more request: nc+1, a
// new cnonce, the response computed for this request (TS 24.229
// §5.1.1.4.1). Without qop (RFC 2069) there is no nc and the response
// repeats.
func (c *Client) reuseAuthorization() string {
	d := c.digest
	d.nc++
	cr := digest.Credentials{Username: c.id.IMPI, Password: d.password, Method: string(sip.REGISTER), URI: c.regURI}
	if d.ch.qop != "" {
		cr.QOP, cr.NC, cr.CNonce = d.ch.qop, d.nc, randHex("", 8)
	}
	a, err := d.ch.Answer(cr)
	if err != nil { // the challenge was answered once already: cannot fail
		return c.initialAuthorization()
	}
	return a.String()
}

// authorization answers a challenge with digest's Challenge.Answer.
// password is RES (AKAv1), the RFC 4169 password (AKAv2), the configured
// password (MD5), or empty with auts (sync failure, RFC 3310 §3.4: the
// response is computed with an empty password and auts carries
// base64(AUTS)).
func (c *Client) authorization(ch *challenge, password []byte, auts *isim.AUTS) (string, error) {
	cr := digest.Credentials{Username: c.id.IMPI, Password: password, Method: string(sip.REGISTER), URI: c.regURI}
	if ch.qop != "" {
		cr.QOP, cr.NC, cr.CNonce = ch.qop, 1, randHex("", 8)
	}
	a, err := ch.Answer(cr)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadChallenge, err)
	}
	if auts != nil {
		a.AUTS, a.HasAUTS = digest.EncodeAUTS(*auts), true
	}
	return a.String(), nil
}

// macFailureAuthorization answers a challenge whose AUTN did not verify:
// an empty response, no qop and no auts (TS 24.229 §5.1.1.5.3).
func (c *Client) macFailureAuthorization(ch *challenge) (string, error) {
	a, err := ch.Answer(digest.Credentials{Username: c.id.IMPI, Method: string(sip.REGISTER), URI: c.regURI})
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadChallenge, err)
	}
	a.Response = ""
	return a.String(), nil
}

// akaPassword is the Digest password from an AKA result.
func akaPassword(ch *challenge, r isim.Result) []byte {
	if ch.alg == digest.VariantAKAv2 {
		return digest.AKAv2Password(r.RES, r.IK, r.CK)
	}
	return r.RES
}

// akaOutcome classifies Authenticator errors.
func akaOutcome(err error) (sync *isim.SyncFailure, mac bool) {
	if errors.As(err, &sync) {
		return sync, false
	}
	return nil, errors.Is(err, isim.ErrMACFailure)
}
