package sipclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/sipnet"
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
// in order: see sipnet.HeaderValues.
func headerValues(m headerer, name string) []string { return sipnet.HeaderValues(m, name) }

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

// ownBinding reads the UE's own binding in a 200 OK to REGISTER, the
// Contact with its address and port (RFC 3261 §10.2.4: the 200 lists
// every current binding of the AOR): bound is false when there is none, and
// d is its expires parameter, else the Expires header, else asked. A
// Contact that is not the UE's is another device's binding, never the UE's,
// even when it is the only one.
func ownBinding(res *sip.Response, ip netip.Addr, port uint16, asked time.Duration) (d time.Duration, bound bool) {
	if ch := ownContact(res, ip, port); ch != nil {
		if v, ok := paramOf(ch.Params, "expires"); ok {
			if n, err := strconv.ParseUint(strings.Trim(v, `"`), 10, 32); err == nil {
				return time.Duration(n) * time.Second, true
			}
		}
		if vs := headerValues(res, "Expires"); len(vs) > 0 {
			if n, err := strconv.ParseUint(strings.TrimSpace(vs[0]), 10, 32); err == nil {
				return time.Duration(n) * time.Second, true
			}
		}
		return asked, true
	}
	return 0, false
}

// ownContact is the Contact of a 200 OK that is the UE's binding (its
// address and port), or nil. The Contacts (also in compact form, m:) are
// walked in place: see headerValues for why not GetHeaders.
func ownContact(res *sip.Response, ip netip.Addr, port uint16) *sip.ContactHeader {
	for _, h := range res.Headers() {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		a, err := netip.ParseAddr(strings.Trim(ch.Address.Host, "[]"))
		if err == nil && a.Unmap() == ip && ch.Address.Port == int(port) {
			return ch
		}
	}
	return nil
}

// gruus reads the pub-gruu and temp-gruu the registrar assigned to the
// UE's binding (RFC 5627 §5.1), unquoted.
func gruus(res *sip.Response, ip netip.Addr, port uint16) (pub, temp string) {
	if ch := ownContact(res, ip, port); ch != nil {
		pub, temp = quotedParam(ch.Params, "pub-gruu"), quotedParam(ch.Params, "temp-gruu")
	}
	return pub, temp
}

// quotedParam returns the unquoted value of a header parameter whose
// quoted string may hold ';' and '=' (a GRUU's ";gr=", base64 in a temp
// GRUU). sipgo v1.7.3 splits parameters at every ';' and each at an '=',
// quoted or not; the pieces rejoined give the text back, which is then
// read with quotes respected (RFC 3261 §25.1 quoted-string).
func quotedParam(ps sip.HeaderParams, name string) string {
	var raw strings.Builder
	for i, kv := range ps {
		if i > 0 {
			raw.WriteByte(';')
		}
		raw.WriteString(kv.K)
		if kv.V != "" {
			raw.WriteString("=" + kv.V)
		}
	}
	text := raw.String()
	for len(text) > 0 {
		// One parameter: up to the first ';' outside quotes.
		end, quoted := len(text), false
		for i := 0; i < len(text); i++ {
			switch c := text[i]; {
			case c == '\\' && quoted:
				i++
			case c == '"':
				quoted = !quoted
			case c == ';' && !quoted:
				end = i
			}
			if end != len(text) {
				break
			}
		}
		k, v, _ := strings.Cut(text[:end], "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
		text = text[min(end+1, len(text)):]
	}
	return ""
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
	e := &RejectedError{Method: method, Status: res.StatusCode, Reason: res.Reason}
	if vs := headerValues(res, "Retry-After"); len(vs) > 0 {
		// delta-seconds, then optional comment and parameters (§20.33).
		f := strings.FieldsFunc(vs[0], func(r rune) bool { return r == ' ' || r == ';' || r == '(' })
		if len(f) > 0 {
			if n, err := strconv.ParseUint(f[0], 10, 32); err == nil {
				e.RetryAfter = time.Duration(n) * time.Second
			}
		}
	}
	if vs := headerValues(res, "Warning"); len(vs) > 0 {
		e.Warning = vs[0]
	}
	switch {
	case res.StatusCode == 494:
		e.Err = ErrSecAgreeRefused
	case res.StatusCode == sip.StatusBadExtension:
		for _, u := range splitList(headerValues(res, "Unsupported")...) {
			if strings.EqualFold(strings.TrimSpace(u), "sec-agree") {
				e.Err = fmt.Errorf("%w: Unsupported: sec-agree (the P-CSCF does not do RFC 3329)", ErrSecAgreeRefused)
			}
		}
	}
	return e
}

// uriString formats a URI (sip.Uri.String has a pointer receiver).
func uriString(u sip.Uri) string { return u.String() }

// redirectTarget is the P-CSCF a 302 or 305 names: the host and port of its
// first Contact, an address or a name resolved now (port 5060 by default).
func redirectTarget(ctx context.Context, res *sip.Response) (netip.AddrPort, error) {
	h, ok := res.GetHeader("Contact").(*sip.ContactHeader)
	if !ok || h == nil || h.Address.Host == "" {
		return netip.AddrPort{}, errors.New("redirect without a Contact")
	}
	port := uint16(5060)
	if h.Address.Port > 0 && h.Address.Port < 65536 {
		port = uint16(h.Address.Port)
	}
	host := strings.Trim(h.Address.Host, "[]")
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("redirect to %s: %v", host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), port), nil
}
