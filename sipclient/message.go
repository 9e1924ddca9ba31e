package sipclient

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Helpers to build and read SIP messages with sipgo's types.

// randHex is n random bytes in hex after prefix. The bytes and the text
// are built on the stack (n ≤ 16): the string is the one allocation.
func randHex(prefix string, n int) string {
	var raw [16]byte
	var text [64]byte
	b := raw[:n]
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return string(hex.AppendEncode(append(text[:0], prefix...), b))
}

func newBranch() string { return randHex(sip.RFC3261BranchMagicCookie, 10) }
func newTag() string    { return randHex("", 6) }
func newCallID() string { return randHex("", 12) }

// headerer is what *sip.Request and *sip.Response share for header edits.
type headerer interface {
	Headers() []sip.Header
	RemoveHeader(name string) bool
	AppendHeader(h sip.Header)
}

// removeHeader removes every header named name, compared case-insensitively
// as RFC 3261 §7.3.1 requires. sipgo's RemoveHeader compares names exactly
// and removes only the first match, so "security-verify" received from a
// peer would survive RemoveHeader("Security-Verify").
func removeHeader(m headerer, name string) (n int) {
	for {
		found := ""
		for _, h := range m.Headers() {
			if strings.EqualFold(h.Name(), name) {
				found = h.Name()
				break
			}
		}
		if found == "" || !m.RemoveHeader(found) {
			return n
		}
		n++
	}
}

// setHeader replaces every header named name (any case) by one with value.
func setHeader(m headerer, name, value string) {
	removeHeader(m, name)
	m.AppendHeader(sip.NewHeader(name, value))
}

// headerValues returns the values of every header named name (any case),
// in order, each as received (sipgo trims the whitespace around a value).
// It walks the headers itself: sipgo's GetHeaders lowercases the name of
// every header in the message, an allocation each, on every call.
func headerValues(m headerer, name string) []string {
	var vs []string
	for _, h := range m.Headers() {
		if headerNameIs(h.Name(), name) {
			vs = append(vs, h.Value())
		}
	}
	return vs
}

// headerNameIs compares two header names as sipgo's GetHeaders does:
// ASCII letters in any case (names are tokens, RFC 3261 §25.1).
func headerNameIs(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// splitList splits header values that hold comma-separated lists of
// name-addr or addr-spec entries (P-Associated-URI, Service-Route, Path),
// ignoring commas inside quoted strings and <...>. Empty entries are dropped.
func splitList(values ...string) []string {
	var out []string
	for _, v := range values {
		start, inQuote, inAngle := 0, false, false
		for i := 0; i < len(v); i++ {
			switch ch := v[i]; {
			case inQuote && ch == '\\':
				i++
			case ch == '"':
				inQuote = !inQuote
			case inQuote:
			case ch == '<':
				inAngle = true
			case ch == '>':
				inAngle = false
			case ch == ',' && !inAngle:
				if e := strings.TrimSpace(v[start:i]); e != "" {
					out = append(out, e)
				}
				start = i + 1
			}
		}
		if e := strings.TrimSpace(v[start:]); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// uriOf returns the URI of a name-addr ("Name" <sip:x;lr>;p=1 gives
// sip:x;lr) or addr-spec (sip:x;p=1 gives sip:x) entry.
func uriOf(entry string) string {
	if i := strings.IndexByte(entry, '<'); i >= 0 {
		if j := strings.IndexByte(entry[i:], '>'); j > 0 {
			return strings.TrimSpace(entry[i+1 : i+j])
		}
		return strings.TrimSpace(entry[i+1:])
	}
	if i := strings.IndexByte(entry, ';'); i >= 0 {
		entry = entry[:i]
	}
	return strings.TrimSpace(entry)
}

// paramOf finds a header parameter (case-insensitive name).
func paramOf(ps sip.HeaderParams, name string) (string, bool) {
	for _, kv := range ps {
		if strings.EqualFold(kv.K, name) {
			return kv.V, true
		}
	}
	return "", false
}

// grantedExpires is the registration lifetime the registrar granted: the
// expires parameter of the UE's own binding in the 200's Contact (RFC 3261
// §10.3 step 8), else the Expires header, else what was asked.
func grantedExpires(res *sip.Response, ip netip.Addr, port uint16, asked time.Duration) time.Duration {
	pick := func(ch *sip.ContactHeader) (time.Duration, bool) {
		v, ok := paramOf(ch.Params, "expires")
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseUint(strings.Trim(v, `"`), 10, 32)
		if err != nil {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	// The Contacts are walked in place (see headerValues for why not
	// GetHeaders): the UE's own binding first, else the only one.
	var only *sip.ContactHeader
	contacts := 0
	for _, h := range res.Headers() {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		contacts++
		only = ch
		a, err := netip.ParseAddr(strings.Trim(ch.Address.Host, "[]"))
		if err == nil && a.Unmap() == ip && ch.Address.Port == int(port) {
			if d, ok := pick(ch); ok {
				return d
			}
		}
	}
	if contacts == 1 {
		if d, ok := pick(only); ok {
			return d
		}
	}
	if vs := headerValues(res, "Expires"); len(vs) > 0 {
		if n, err := strconv.ParseUint(strings.TrimSpace(vs[0]), 10, 32); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

// seconds formats a duration as whole seconds (at least 1 unless zero).
func seconds(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64(max(d.Round(time.Second), time.Second)/time.Second), 10)
}

// parseURI parses a SIP/SIPS/tel URI with sipgo.
func parseURI(s string) (sip.Uri, error) {
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return u, fmt.Errorf("URI %q: %w", s, err)
	}
	return u, nil
}

// statusError turns a final non-2xx response into a *RejectedError.
func statusError(method string, res *sip.Response) *RejectedError {
	return &RejectedError{Method: method, Status: res.StatusCode, Reason: res.Reason}
}

// uriString formats a URI (sip.Uri.String has a pointer receiver).
func uriString(u sip.Uri) string { return u.String() }
