// Package digest implements HTTP Digest as SIP uses it (RFC 2617, RFC 3261
// §22) with the AKA variants of RFC 3310 (AKAv1-MD5) and RFC 4169
// (AKAv2-MD5): challenge parsing, nonce decoding, response computation, and
// the Authorization header, for both the UE and the lab S-CSCF.
//
// This file pins the exported API; bodies marked TODO(digest) are filled in by
// the digest work.
package digest

import "errors"

// Algorithm names as they appear in the algorithm parameter.
const (
	MD5      = "MD5"
	AKAv1MD5 = "AKAv1-MD5"
	AKAv2MD5 = "AKAv2-MD5"
)

// ErrMalformed wraps every parse error; the message names the parameter.
var ErrMalformed = errors.New("digest: malformed header")

// ErrUnsupported: an algorithm or qop the client cannot answer.
var ErrUnsupported = errors.New("digest: unsupported")

var errTODO = errors.New("digest: not implemented yet")

// Challenge is a parsed WWW-Authenticate (or Proxy-Authenticate) value.
type Challenge struct {
	Realm     string
	Nonce     string
	Algorithm string   // as received; "" means MD5
	QOP       []string // from qop="auth,auth-int"; empty when absent
	Opaque    string
	HasOpaque bool
	Stale     bool
	// CK and IK are the hex ck/ik parameters an S-CSCF adds for the P-CSCF
	// (stripped before the UE sees the 401); empty when absent.
	CK, IK string
}

// ParseChallenge parses a WWW-Authenticate value ("Digest k=v, ...").
func ParseChallenge(value string) (*Challenge, error) { return nil, errTODO } // TODO(digest)

// String formats the challenge as a header value (quoting per RFC 2617).
func (c *Challenge) String() string { return "" } // TODO(digest)

// AKANonce splits an AKA nonce: base64(RAND ‖ AUTN ‖ server data).
func AKANonce(nonce string) (rand, autn [16]byte, err error) { return rand, autn, errTODO } // TODO(digest)

// EncodeAKANonce is the network side: base64(RAND ‖ AUTN ‖ extra).
func EncodeAKANonce(rand, autn [16]byte, extra []byte) string { return "" } // TODO(digest)

// AKAv2Password is base64(HMAC-MD5(key = RES ‖ IK ‖ CK, "http-digest-akav2-password")).
func AKAv2Password(res []byte, ik, ck [16]byte) []byte { return nil } // TODO(digest)

// Credentials are the inputs of one response computation.
type Credentials struct {
	Username string
	Realm    string
	Password []byte // AKAv1: RES bytes; AKAv2: AKAv2Password; MD5: the password; empty for AUTS/MAC failure
	Method   string
	URI      string
	Nonce    string
	QOP      string // "", "auth" or "auth-int"
	NC       uint32
	CNonce   string
	Body     []byte // for auth-int
}

// Response computes the RFC 2617 request-digest (lowercase hex).
func Response(c Credentials) string { return "" } // TODO(digest)

// Authorization is a parsed or to-be-formatted Authorization value.
type Authorization struct {
	Username, Realm, Nonce, URI, Response, Algorithm string
	CNonce, QOP, Opaque                              string
	NC                                               uint32
	HasOpaque                                        bool
	AUTS                                             string // base64, sync failure only
	HasAUTS                                          bool
}

// String formats the value ("Digest username=..., ..."); nc is 8 hex digits.
func (a *Authorization) String() string { return "" } // TODO(digest)

// ParseAuthorization parses an Authorization value (for the lab S-CSCF).
func ParseAuthorization(value string) (*Authorization, error) { return nil, errTODO } // TODO(digest)
