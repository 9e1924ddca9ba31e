package digest

import (
	"fmt"
	"strings"
)

// This file is the lexer shared by ParseChallenge and ParseAuthorization:
//
//	credentials = auth-scheme LWS auth-param *(COMMA auth-param)   (RFC 3261 §25.1)
//	auth-param  = token EQUAL ( token / quoted-string )
//
// It accepts what real cores and UEs send rather than only the grammar:
// any amount of whitespace around "=" and ",", empty list elements, and
// unquoted values that are not tokens (a base64 nonce with '/', '+', '=').
// It rejects what would make the meaning ambiguous: a duplicate parameter,
// an unterminated quoted string, a parameter without a value, control
// characters (so no CR or LF can reach a header this package writes later).

// maxParams bounds the parameters of one value: a full Authorization has 12,
// and the bound keeps the duplicate check cheap on hostile input.
const maxParams = 64

// param is one auth-param; name is lowercased, value is unquoted and unescaped.
type param struct {
	name, value string
}

// params is the parameter list of one header value, in received order.
type params []param

// get returns the parameter called name (lowercase) and whether it is present.
func (ps params) get(name string) (param, bool) {
	for _, p := range ps {
		if p.name == name {
			return p, true
		}
	}
	return param{}, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isTokenChar reports whether c is a token character (RFC 3261 §25.1).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// isToken reports whether s is a non-empty token, so that it may be written
// without quotes.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isCtl reports the control characters no value may hold (HTAB is allowed in
// quoted strings, as LWS).
func isCtl(c byte) bool { return c < 0x20 && c != '\t' || c == 0x7f }

// parseDigest parses a Digest credentials/challenge value into its
// parameters. what names the header in errors ("challenge",
// "authorization"). A scheme other than Digest is ErrUnsupported, whatever
// follows it (Basic and Bearer carry a token68, not parameters).
func parseDigest(what, value string) (params, error) {
	s := value
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	start := i
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	scheme := s[start:i]
	switch {
	case scheme == "" && start == len(s):
		return nil, fmt.Errorf("%w: empty %s", ErrMalformed, what)
	case scheme == "":
		return nil, fmt.Errorf("%w: %s: no auth scheme at offset %d", ErrMalformed, what, start)
	case !strings.EqualFold(scheme, "Digest"):
		return nil, fmt.Errorf("%w: %s: auth scheme %q (want Digest)", ErrUnsupported, what, scheme)
	case i < len(s) && !isSpace(s[i]):
		return nil, fmt.Errorf("%w: %s: unexpected %q after the auth scheme", ErrMalformed, what, s[i])
	}
	ps := make(params, 0, 12) // one allocation for a full Authorization
	for {
		// Skip whitespace and empty list elements.
		for i < len(s) && (isSpace(s[i]) || s[i] == ',') {
			i++
		}
		if i == len(s) {
			return ps, nil
		}
		start = i
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		if start == i {
			return nil, fmt.Errorf("%w: %s: expected a parameter name at offset %d, found %q", ErrMalformed, what, i, s[i])
		}
		name := strings.ToLower(s[start:i])
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) || s[i] != '=' {
			return nil, fmt.Errorf("%w: %s: parameter %q has no value", ErrMalformed, what, name)
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		p := param{name: name}
		if i < len(s) && s[i] == '"' {
			var err error
			p.value, i, err = unquote(s, i)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: parameter %q: %v", ErrMalformed, what, name, err)
			}
		} else {
			start = i
			for i < len(s) && s[i] != ',' && s[i] != '"' && !isSpace(s[i]) && !isCtl(s[i]) {
				i++
			}
			if start == i {
				return nil, fmt.Errorf("%w: %s: parameter %q has an empty unquoted value", ErrMalformed, what, name)
			}
			p.value = s[start:i]
		}
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i < len(s) && s[i] != ',' {
			return nil, fmt.Errorf("%w: %s: unexpected %q after parameter %q", ErrMalformed, what, s[i], name)
		}
		if len(ps) == maxParams {
			return nil, fmt.Errorf("%w: %s: more than %d parameters", ErrMalformed, what, maxParams)
		}
		if _, dup := ps.get(name); dup {
			return nil, fmt.Errorf("%w: %s: duplicate parameter %q", ErrMalformed, what, name)
		}
		ps = append(ps, p)
	}
}

// unquote reads the quoted-string that starts at s[i] == '"' and returns its
// unescaped content and the offset just past the closing quote. A quoted-pair
// "\" CHAR stands for CHAR (RFC 3261 §25.1); CR and LF may not be escaped.
func unquote(s string, i int) (string, int, error) {
	i++ // opening quote
	start := i
	// Fast path: no escapes.
	for i < len(s) && s[i] != '"' && s[i] != '\\' && !isCtl(s[i]) {
		i++
	}
	if i < len(s) && s[i] == '"' {
		return s[start:i], i + 1, nil
	}
	var b strings.Builder
	b.WriteString(s[start:i])
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, nil
		case c == '\\':
			if i+1 == len(s) {
				return "", 0, fmt.Errorf("unterminated quoted string")
			}
			if isCtl(s[i+1]) {
				return "", 0, fmt.Errorf("control character %q escaped in quoted string", s[i+1])
			}
			b.WriteByte(s[i+1])
			i += 2
		case isCtl(c):
			return "", 0, fmt.Errorf("control character %q in quoted string", c)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("unterminated quoted string")
}

// headerWriter formats "Scheme name=value, name="value"..." values.
type headerWriter struct {
	b     strings.Builder
	first bool
}

// init starts a value with scheme; size is the expected length, so that the
// value is built in one allocation.
func (w *headerWriter) init(scheme string, size int) {
	w.first = true
	w.b.Grow(size)
	w.b.WriteString(scheme)
}

func (w *headerWriter) sep(name string) {
	if w.first {
		w.b.WriteByte(' ')
		w.first = false
	} else {
		w.b.WriteString(", ")
	}
	w.b.WriteString(name)
	w.b.WriteByte('=')
}

// quoted writes name="value", escaping '"' and '\'. Control characters
// cannot be represented in a quoted-string and are dropped, so that no value
// can inject CR LF into a SIP message.
func (w *headerWriter) quoted(name, value string) {
	w.sep(name)
	w.b.WriteByte('"')
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '"' || c == '\\':
			w.b.WriteByte('\\')
			w.b.WriteByte(c)
		case isCtl(c):
			// dropped, see above
		default:
			w.b.WriteByte(c)
		}
	}
	w.b.WriteByte('"')
}

// token writes name=value bare when value is a token, quoted otherwise (so
// the output always parses back to the same value).
func (w *headerWriter) token(name, value string) {
	if isToken(value) {
		w.sep(name)
		w.b.WriteString(value)
		return
	}
	w.quoted(name, value)
}

// raw writes name=value with value known to be a token.
func (w *headerWriter) raw(name string, value []byte) {
	w.sep(name)
	w.b.Write(value)
}

func (w *headerWriter) String() string { return w.b.String() }

// paramOverhead is the room one parameter takes beyond its name and value:
// ", " + "=" + two quotes + a few escapes.
const paramOverhead = 8
