package sipclient

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
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
	alg  string // digest.MD5, digest.AKAv1MD5 or digest.AKAv2MD5
	qop  string // "", "auth" or "auth-int"
	rand isim.RAND
	autn isim.AUTN
}

func (ch *challenge) aka() bool { return ch.alg != digest.MD5 }

// canonicalAlgorithm maps the algorithm parameter (compared
// case-insensitively; absent means MD5, RFC 2617 §3.2.1) to the constant the
// UE implements, or "" when it implements none.
func canonicalAlgorithm(a string) string {
	for _, known := range []string{digest.MD5, digest.AKAv1MD5, digest.AKAv2MD5} {
		if strings.EqualFold(a, known) {
			return known
		}
	}
	if a == "" {
		return digest.MD5
	}
	return ""
}

// chooseQOP picks the quality of protection: auth when offered (what UEs
// use), else auth-int, else none when the challenge has no qop.
func chooseQOP(offered []string) (string, error) {
	if len(offered) == 0 {
		return "", nil
	}
	for _, want := range []string{"auth", "auth-int"} {
		if slices.ContainsFunc(offered, func(q string) bool { return strings.EqualFold(strings.TrimSpace(q), want) }) {
			return want, nil
		}
	}
	return "", fmt.Errorf("%w: qop %q: none of auth, auth-int", ErrBadChallenge, strings.Join(offered, ","))
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
		ch := &challenge{Challenge: d, alg: canonicalAlgorithm(d.Algorithm)}
		switch {
		case ch.alg == "":
			keep(fmt.Errorf("%w: algorithm %q not implemented", ErrBadChallenge, d.Algorithm))
			continue
		case c.s.AKAv2 && ch.alg != digest.AKAv2MD5:
			keep(fmt.Errorf("%w: got %s", ErrAlgorithmDowngrade, ch.alg))
			continue
		case ch.alg == digest.MD5 && c.s.Password == "":
			keep(ErrNoPassword)
			continue
		}
		if ch.qop, err = chooseQOP(d.QOP); err != nil {
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

// answer computes the Authorization for a challenge. password is RES
// (AKAv1), the RFC 4169 password (AKAv2), the configured password (MD5), or
// empty with auts (sync failure, RFC 3310 §3.4).
func (c *Client) authorization(ch *challenge, password []byte, auts *isim.AUTS) string {
	a := digest.Authorization{
		Username: c.id.IMPI, Realm: ch.Realm, Nonce: ch.Nonce, URI: c.regURI,
		Algorithm: ch.Algorithm, Opaque: ch.Opaque, HasOpaque: ch.HasOpaque,
	}
	if ch.qop != "" {
		a.QOP, a.NC, a.CNonce = ch.qop, 1, randHex(8)
	}
	a.Response = digest.Response(digest.Credentials{
		Username: a.Username, Realm: a.Realm, Password: password, Method: string(sip.REGISTER),
		URI: a.URI, Nonce: a.Nonce, QOP: a.QOP, NC: a.NC, CNonce: a.CNonce,
	})
	if auts != nil {
		a.AUTS, a.HasAUTS = base64.StdEncoding.EncodeToString(auts[:]), true
	}
	return a.String()
}

// macFailureAuthorization answers a challenge whose AUTN did not verify:
// an empty response and no auts (TS 24.229 §5.1.1.5.3).
func (c *Client) macFailureAuthorization(ch *challenge) string {
	a := digest.Authorization{
		Username: c.id.IMPI, Realm: ch.Realm, Nonce: ch.Nonce, URI: c.regURI,
		Algorithm: ch.Algorithm, Opaque: ch.Opaque, HasOpaque: ch.HasOpaque,
	}
	return a.String()
}

// akaPassword is the Digest password from an AKA result.
func akaPassword(ch *challenge, r isim.Result) []byte {
	if ch.alg == digest.AKAv2MD5 {
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
