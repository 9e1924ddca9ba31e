package digest

import (
	"crypto/subtle"
	"fmt"
	"strings"
)

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
//
// username, realm, nonce, uri and response are always written (quoted, even
// when empty), so the zero-challenge form of the initial IMS REGISTER
// (TS 24.229 §5.1.1.2.2) is Authorization{Username, Realm, URI}.String():
//
//	Digest username="impi", realm="domain", nonce="", uri="sip:domain", response=""
//
// algorithm is written when set; cnonce, qop and nc only with a qop (RFC
// 2617 §3.2.2: they MUST be present with qop and MUST NOT be without);
// qop, nc and algorithm unquoted, everything else quoted.
func (a *Authorization) String() string {
	var w headerWriter
	w.init("Digest", len("Digest")+len(a.Username)+len(a.Realm)+len(a.Nonce)+len(a.URI)+len(a.Response)+
		len(a.Algorithm)+len(a.CNonce)+len(a.QOP)+len(a.Opaque)+len(a.AUTS)+64+12*paramOverhead)
	w.quoted("username", a.Username)
	w.quoted("realm", a.Realm)
	w.quoted("nonce", a.Nonce)
	w.quoted("uri", a.URI)
	w.quoted("response", a.Response)
	if a.Algorithm != "" {
		w.token("algorithm", a.Algorithm)
	}
	if a.QOP != "" {
		w.quoted("cnonce", a.CNonce)
		w.token("qop", a.QOP)
		var nc [8]byte
		w.raw("nc", appendNC(nc[:0], a.NC))
	}
	if a.HasOpaque {
		w.quoted("opaque", a.Opaque)
	}
	if a.HasAUTS {
		w.quoted("auts", a.AUTS)
	}
	return w.String()
}

// ParseAuthorization parses an Authorization value (for the lab S-CSCF).
//
// username, realm, nonce, uri and response are required (RFC 2617 §3.2.2;
// the initial IMS REGISTER sends nonce="" and response=""). response, when
// not empty, must be 32 hex digits. With qop, cnonce and nc are required;
// nc must be exactly 8 lowercase hex digits, because the digest hashes it as
// text and NC keeps only its number. Unknown parameters (integrity-protected,
// ...) are ignored.
func ParseAuthorization(value string) (*Authorization, error) {
	ps, err := parseDigest("authorization", value)
	if err != nil {
		return nil, err
	}
	a := new(Authorization)
	var ncText string
	var haveNC, haveCNonce bool
	for _, p := range ps {
		switch p.name {
		case "username":
			a.Username = p.value
		case "realm":
			a.Realm = p.value
		case "nonce":
			a.Nonce = p.value
		case "uri":
			a.URI = p.value
		case "response":
			a.Response = p.value
		case "algorithm":
			a.Algorithm = p.value
		case "cnonce":
			a.CNonce, haveCNonce = p.value, true
		case "qop":
			a.QOP = p.value
		case "nc":
			ncText, haveNC = p.value, true
		case "opaque":
			a.Opaque, a.HasOpaque = p.value, true
		case "auts":
			a.AUTS, a.HasAUTS = p.value, true
		}
	}
	for _, name := range [...]string{"username", "realm", "nonce", "uri", "response"} {
		if _, ok := ps.get(name); !ok {
			return nil, fmt.Errorf("%w: authorization: missing parameter %q", ErrMalformed, name)
		}
	}
	if a.Response != "" && !isHex(a.Response, hexLen) {
		return nil, fmt.Errorf("%w: authorization: parameter \"response\" is not %d hex digits", ErrMalformed, hexLen)
	}
	if haveNC {
		if a.NC, err = parseNC(ncText); err != nil {
			return nil, err
		}
	}
	if a.QOP != "" {
		switch {
		case !haveCNonce:
			return nil, fmt.Errorf("%w: authorization: qop %q without parameter \"cnonce\"", ErrMalformed, a.QOP)
		case !haveNC:
			return nil, fmt.Errorf("%w: authorization: qop %q without parameter \"nc\"", ErrMalformed, a.QOP)
		}
	}
	return a, nil
}

// parseNC parses nc-value = 8LHEX.
func parseNC(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("%w: authorization: parameter \"nc\" is %d characters, want 8 lowercase hex digits", ErrMalformed, len(s))
	}
	var n uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | uint32(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | uint32(c-'a'+10)
		default:
			return 0, fmt.Errorf("%w: authorization: parameter \"nc\" has %q, want 8 lowercase hex digits", ErrMalformed, c)
		}
	}
	return n, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Credentials returns the inputs of a's response for a request with method
// and body, given the password the server expects (RES for AKAv1,
// AKAv2Password for AKAv2, the shared secret for MD5).
func (a *Authorization) Credentials(method string, body, password []byte) Credentials {
	return Credentials{
		Username: a.Username,
		Realm:    a.Realm,
		Password: password,
		Method:   method,
		URI:      a.URI,
		Nonce:    a.Nonce,
		QOP:      a.QOP,
		NC:       a.NC,
		CNonce:   a.CNonce,
		Body:     body,
	}
}

// Verify is the server side of Response: it checks that a answers ch for a
// request with method and body, the password being what the server expects
// (RES for AKAv1, AKAv2Password for AKAv2, the shared secret for MD5).
//
// It checks realm, nonce, opaque, algorithm and qop against ch, then the
// response in constant time. When ch offers qop, a must use one of them
// (RFC 2617 allows a client to omit qop for RFC 2069 compatibility; an IMS
// S-CSCF does not). Every mismatch is ErrMismatch naming the parameter; a
// qop this package cannot compute is ErrUnsupported. Verify does not check
// the username (the caller looked the subscriber up by it), the uri against
// the Request-URI, or nc against replay: those need the server's state.
//
// An empty response (the UE's MAC-failure answer) and an auts (sync
// failure) never verify: look at a.Response and a.HasAUTS first.
func Verify(ch *Challenge, a *Authorization, method string, body, password []byte) error {
	switch {
	case a.Realm != ch.Realm:
		return fmt.Errorf("%w: realm %q, challenge had %q", ErrMismatch, a.Realm, ch.Realm)
	case a.Nonce != ch.Nonce:
		return fmt.Errorf("%w: nonce is not the challenge's", ErrMismatch)
	case ch.HasOpaque && (!a.HasOpaque || a.Opaque != ch.Opaque):
		return fmt.Errorf("%w: opaque is not the challenge's", ErrMismatch)
	}
	cv, err := ch.Variant()
	if err != nil {
		return err
	}
	if av, err := ParseVariant(a.Algorithm); err != nil || av != cv {
		return fmt.Errorf("%w: algorithm %q, challenge had %q", ErrMismatch, a.Algorithm, ch.Algorithm)
	}
	switch {
	case !supportedQOP(a.QOP):
		return fmt.Errorf("%w: qop %q", ErrUnsupported, a.QOP)
	case len(ch.QOP) > 0 && a.QOP == "":
		return fmt.Errorf("%w: no qop, challenge offered %q", ErrMismatch, strings.Join(ch.QOP, ","))
	case a.QOP != "" && !ch.OffersQOP(a.QOP):
		return fmt.Errorf("%w: qop %q was not offered (challenge offered %q)", ErrMismatch, a.QOP, strings.Join(ch.QOP, ","))
	case a.HasAUTS:
		return fmt.Errorf("%w: auts present (a resynchronisation request, not an answer)", ErrMismatch)
	case a.Response == "":
		return fmt.Errorf("%w: response is empty", ErrMismatch)
	}
	cr := a.Credentials(method, body, password)
	var want [hexLen]byte
	response(&want, &cr)
	var got [hexLen]byte
	copy(got[:], a.Response)
	for i, c := range got {
		if 'A' <= c && c <= 'F' {
			got[i] = c + 'a' - 'A'
		}
	}
	if len(a.Response) != hexLen || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return fmt.Errorf("%w: wrong response", ErrMismatch)
	}
	return nil
}
