// Package digest implements HTTP Digest as SIP uses it (RFC 2617, RFC 3261
// §22) with the AKA variants of RFC 3310 (AKAv1-MD5) and RFC 4169
// (AKAv2-MD5): challenge parsing, nonce decoding, response computation, and
// the Authorization header, for both the UE and the lab S-CSCF.
//
// The UE side of one IMS AKA round is:
//
//	ch, err := digest.ParseChallenge(wwwAuthenticate)
//	v, err := ch.Variant()                     // AKAv1 or AKAv2 (or MD5)
//	rand, autn, err := digest.AKANonce(ch.Nonce)
//	res, ck, ik := <isim.Authenticator.Authenticate(rand, autn)>
//	password := res                            // AKAv1; AKAv2: digest.AKAv2Password(res, ik, ck)
//	qop, err := ch.SelectQOP(digest.QOPAuth)
//	a, err := ch.Answer(digest.Credentials{Username: impi, Method: "REGISTER",
//		URI: "sip:" + domain, Password: password, QOP: qop, NC: 1, CNonce: digest.NewCNonce()})
//	req.AppendHeader("Authorization", a.String())
//
// The S-CSCF side builds a Challenge (EncodeAKANonce for the nonce), formats it
// with String, and checks the answer with ParseAuthorization and Verify.
//
// Only MD5 digests are implemented, without "-sess": that is what IMS AKA
// uses. SHA-256 (RFC 7616, RFC 8760) and the -sess variants are reported as
// ErrUnsupported.
package digest

import (
	"errors"
	"fmt"
	"strings"
)

// Algorithm names as they appear in the algorithm parameter.
const (
	MD5      = "MD5"
	AKAv1MD5 = "AKAv1-MD5"
	AKAv2MD5 = "AKAv2-MD5"
)

// Quality-of-protection values (RFC 2617 §3.2.1).
const (
	QOPAuth    = "auth"
	QOPAuthInt = "auth-int"
)

// ErrMalformed wraps every parse error; the message names the parameter.
var ErrMalformed = errors.New("digest: malformed header")

// ErrUnsupported: an algorithm or qop the client cannot answer.
var ErrUnsupported = errors.New("digest: unsupported")

// ErrMismatch reports that an Authorization does not answer the challenge it
// claims to answer, or that its response is wrong: the S-CSCF's 403.
var ErrMismatch = errors.New("digest: authorization does not match")

// Variant is the algorithm family of a challenge: what the password is made
// of. The digest computation itself is MD5 for all three.
type Variant uint8

// The variants this package answers.
const (
	VariantMD5   Variant = iota + 1 // RFC 2617: a shared password
	VariantAKAv1                    // RFC 3310: password = RES octets
	VariantAKAv2                    // RFC 4169: password = AKAv2Password(RES, IK, CK)
)

// String returns the algorithm parameter value for v.
func (v Variant) String() string {
	switch v {
	case VariantMD5:
		return MD5
	case VariantAKAv1:
		return AKAv1MD5
	case VariantAKAv2:
		return AKAv2MD5
	}
	return fmt.Sprintf("Variant(%d)", uint8(v))
}

// AKA reports whether v runs AKA (needs RAND and AUTN from the nonce).
func (v Variant) AKA() bool { return v == VariantAKAv1 || v == VariantAKAv2 }

// ParseVariant maps an algorithm parameter value to its Variant. The
// comparison is case-insensitive (RFC 2617 tokens; some cores send
// "akav1-md5"); an absent algorithm ("") means MD5 (RFC 2617 §3.2.1).
func ParseVariant(algorithm string) (Variant, error) {
	switch {
	case algorithm == "", strings.EqualFold(algorithm, MD5):
		return VariantMD5, nil
	case strings.EqualFold(algorithm, AKAv1MD5):
		return VariantAKAv1, nil
	case strings.EqualFold(algorithm, AKAv2MD5):
		return VariantAKAv2, nil
	}
	return 0, fmt.Errorf("%w: algorithm %q", ErrUnsupported, algorithm)
}

// supportedQOP reports whether qop is one Response can compute: "" (none),
// auth or auth-int, compared case-insensitively.
func supportedQOP(qop string) bool {
	return qop == "" || strings.EqualFold(qop, QOPAuth) || strings.EqualFold(qop, QOPAuthInt)
}
