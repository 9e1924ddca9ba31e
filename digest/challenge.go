package digest

import (
	"fmt"
	"log/slog"
	"strings"
)

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
	//
	// They are key material: String writes them (it is the header the
	// S-CSCF sends), LogValue does not.
	CK, IK string
}

// ParseChallenge parses a WWW-Authenticate value ("Digest k=v, ...").
//
// The scheme and parameter names are case-insensitive; values may be quoted
// (with backslash escapes) or bare; parameters may come in any order.
// Parameters this package does not know (domain, integrity-key, ...) are
// ignored. realm and nonce are required. A scheme other than Digest is
// ErrUnsupported; every syntax error is ErrMalformed and names the
// parameter. An unknown algorithm is kept: Variant reports it.
func ParseChallenge(value string) (*Challenge, error) {
	ps, err := parseDigest("challenge", value)
	if err != nil {
		return nil, err
	}
	c := new(Challenge)
	var haveRealm, haveNonce bool
	for _, p := range ps {
		switch p.name {
		case "realm":
			c.Realm, haveRealm = p.value, true
		case "nonce":
			c.Nonce, haveNonce = p.value, true
		case "algorithm":
			c.Algorithm = p.value
		case "qop":
			c.QOP = splitList(p.value)
			if len(c.QOP) == 0 {
				return nil, fmt.Errorf("%w: challenge: parameter \"qop\" is an empty list", ErrMalformed)
			}
		case "opaque":
			c.Opaque, c.HasOpaque = p.value, true
		case "stale":
			// RFC 2617 §3.2.1: TRUE, case-insensitive; any other value
			// means false.
			c.Stale = strings.EqualFold(p.value, "true")
		case "ck":
			c.CK = p.value
		case "ik":
			c.IK = p.value
		}
	}
	switch {
	case !haveRealm:
		return nil, fmt.Errorf("%w: challenge: missing parameter \"realm\"", ErrMalformed)
	case !haveNonce:
		return nil, fmt.Errorf("%w: challenge: missing parameter \"nonce\"", ErrMalformed)
	}
	return c, nil
}

// splitList splits a quoted comma-separated list (qop-options), dropping
// whitespace and empty elements.
func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.Trim(f, " \t"); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// String formats the challenge as a header value (quoting per RFC 2617).
//
// The order is the one Kamailio's S-CSCF uses and its P-CSCF
// (ims_ipsec_pcscf) reads: realm, nonce, algorithm, ck, ik, qop, then opaque
// and stale. algorithm, ck, ik, qop and opaque are written only when set;
// stale only when true.
func (c *Challenge) String() string {
	var w headerWriter
	size := len("Digest") + len(c.Realm) + len(c.Nonce) + len(c.Algorithm) + len(c.CK) + len(c.IK) + len(c.Opaque) + 64 + 8*paramOverhead
	for _, q := range c.QOP {
		size += len(q) + 1
	}
	w.init("Digest", size)
	w.quoted("realm", c.Realm)
	w.quoted("nonce", c.Nonce)
	if c.Algorithm != "" {
		w.token("algorithm", c.Algorithm)
	}
	if c.CK != "" {
		w.quoted("ck", c.CK)
	}
	if c.IK != "" {
		w.quoted("ik", c.IK)
	}
	if len(c.QOP) > 0 {
		w.quoted("qop", strings.Join(c.QOP, ","))
	}
	if c.HasOpaque {
		w.quoted("opaque", c.Opaque)
	}
	if c.Stale {
		w.token("stale", "true")
	}
	return w.String()
}

// LogValue implements slog.LogValuer: the challenge without CK and IK.
func (c *Challenge) LogValue() slog.Value {
	r := *c
	if r.CK != "" {
		r.CK = "(redacted)"
	}
	if r.IK != "" {
		r.IK = "(redacted)"
	}
	return slog.StringValue(r.String())
}

// Variant returns the challenge's algorithm family, or ErrUnsupported naming
// an algorithm this package cannot answer (MD5-sess, SHA-256, ...).
func (c *Challenge) Variant() (Variant, error) { return ParseVariant(c.Algorithm) }

// OffersQOP reports whether the challenge offers qop (case-insensitive).
func (c *Challenge) OffersQOP(qop string) bool {
	for _, q := range c.QOP {
		if strings.EqualFold(q, qop) {
			return true
		}
	}
	return false
}

// SelectQOP picks the qop to answer with: "" when the challenge offers none
// (RFC 2069 compatibility), preferred when offered, otherwise the first
// offered value this package can compute (auth or auth-int). The value is
// returned as the challenge spelled it, since it is hashed as text. When
// every offered qop is unknown the error is ErrUnsupported naming them.
func (c *Challenge) SelectQOP(preferred string) (string, error) {
	if len(c.QOP) == 0 {
		return "", nil
	}
	if preferred != "" {
		for _, q := range c.QOP {
			if strings.EqualFold(q, preferred) {
				return q, nil
			}
		}
	}
	for _, q := range c.QOP {
		if supportedQOP(q) {
			return q, nil
		}
	}
	return "", fmt.Errorf("%w: qop %q", ErrUnsupported, strings.Join(c.QOP, ","))
}

// Answer computes the response to c and returns the Authorization to send.
// Realm and Nonce come from c (cr's are ignored); Algorithm and Opaque are
// echoed from c. cr.QOP must be "" when c offers no qop, or one c offers;
// cr.Password must already be the variant's password (RES, AKAv2Password,
// or the MD5 password). The caller adds AUTS (sync failure) or clears
// Response (MAC failure) afterwards when needed.
func (c *Challenge) Answer(cr Credentials) (*Authorization, error) {
	if _, err := c.Variant(); err != nil {
		return nil, err
	}
	switch {
	case !supportedQOP(cr.QOP):
		return nil, fmt.Errorf("%w: qop %q", ErrUnsupported, cr.QOP)
	case cr.QOP != "" && !c.OffersQOP(cr.QOP):
		return nil, fmt.Errorf("%w: qop %q was not offered by the challenge (offered %q)",
			ErrUnsupported, cr.QOP, strings.Join(c.QOP, ","))
	}
	cr.Realm, cr.Nonce = c.Realm, c.Nonce
	a := &Authorization{
		Username:  cr.Username,
		Realm:     c.Realm,
		Nonce:     c.Nonce,
		URI:       cr.URI,
		Response:  Response(cr),
		Algorithm: c.Algorithm,
		Opaque:    c.Opaque,
		HasOpaque: c.HasOpaque,
	}
	if cr.QOP != "" {
		a.QOP, a.NC, a.CNonce = cr.QOP, cr.NC, cr.CNonce
	}
	return a, nil
}
