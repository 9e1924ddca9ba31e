package sipnet

import "github.com/emiago/sipgo/sip"

// Helpers to read the headers of sipgo's messages without its allocations.

// HeaderLister is a message whose headers can be walked in order:
// *sip.Request and *sip.Response.
type HeaderLister interface{ Headers() []sip.Header }

// HeaderValues returns the values of every header named name (any case),
// in order, each as received (sipgo trims the whitespace around a value);
// with more names (a header's long and compact forms, say), those of the
// first name, then those of the next. It walks the headers itself: sipgo's
// GetHeaders lowercases the name of every header in the message, an
// allocation each, on every call.
func HeaderValues(m HeaderLister, names ...string) []string {
	var vs []string
	for _, n := range names {
		for _, h := range m.Headers() {
			if HeaderNameIs(h.Name(), n) {
				vs = append(vs, h.Value())
			}
		}
	}
	return vs
}

// HeadersNamed returns every header named name (any case), in order, as
// sipgo's GetHeaders does but without its allocations (see HeaderValues).
// The headers are the message's own: clone one before changing it.
func HeadersNamed(m HeaderLister, name string) []sip.Header {
	var hs []sip.Header
	for _, h := range m.Headers() {
		if HeaderNameIs(h.Name(), name) {
			hs = append(hs, h)
		}
	}
	return hs
}

// HeaderNameIs compares two header names as sipgo's GetHeaders does:
// ASCII letters in any case (names are tokens, RFC 3261 §25.1).
func HeaderNameIs(a, b string) bool {
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

// Editable is a message whose headers and body can be changed:
// *sip.Request and *sip.Response.
type Editable interface {
	HeaderLister
	RemoveHeader(name string) bool
	AppendHeader(h sip.Header)
	Body() []byte
	SetBody(body []byte)
}

// SetContentLength replaces every Content-Length of m (any case) by one,
// its last header, with the length of its body: a stream transport needs
// it (RFC 3261 §18.3). sipgo's SetBody does the same but looks the old one
// up first, lowercasing the name of every header on the way (an allocation
// each); it is used only when a compact-form "l" would be found then.
func SetContentLength(m Editable) {
	compact := false
	for {
		found := ""
		for _, h := range m.Headers() {
			switch n := h.Name(); {
			case HeaderNameIs(n, "Content-Length"):
				found = n
			case HeaderNameIs(n, "l"):
				compact = true
			}
			if found != "" {
				break
			}
		}
		if found == "" || !m.RemoveHeader(found) {
			break
		}
	}
	if compact {
		m.SetBody(m.Body())
		return
	}
	cl := sip.ContentLengthHeader(len(m.Body()))
	m.AppendHeader(&cl)
}
