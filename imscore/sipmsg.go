package imscore

import (
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/imsue/imsue/sipnet"
)

// Helpers on SIP messages shared by the roles.

// newResponse builds a response per RFC 3261 §8.2.6, as sipgo's
// NewResponseFromRequest does (with an empty body) but without its
// GetHeaders, which lowercases the name of every header of the request (an
// allocation each) for the Vias alone. The response has, in this order:
// the Record-Routes of a request that can create a dialog when the response
// is 18x or 2xx (RFC 3261 §12.1.1, §20 Table 3), the Vias (§8.2.6.2, with
// the RFC 3581 §4 received and rport when the request asked for rport),
// From, To (with a tag unless 100, §8.2.6.2), Call-ID, CSeq, a 100's
// Timestamp (§8.2.6.1) and Content-Length: 0.
func newResponse(req *sip.Request, code int, reason string) *sip.Response {
	res := sip.NewResponse(code, reason)
	res.SipVersion = req.SipVersion
	dialog := req.Method != sip.REGISTER && !req.IsAck() &&
		(code >= 180 && code < 190 || code >= 200 && code < 300 ||
			req.IsInvite() && code > 100 && code < 200)
	if dialog {
		copyHeaders(req, res, "Record-Route")
	}
	copyHeaders(req, res, "Via")
	if h := req.From(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.To(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.CallID(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.CSeq(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := res.Via(); h != nil {
		if val, ok := h.Params.Get("rport"); ok && val == "" {
			host, port, _ := net.SplitHostPort(req.Source())
			h.Params.Add("rport", port)
			h.Params.Add("received", host)
		}
	}
	if code == sip.StatusTrying {
		copyHeaders(req, res, "Timestamp")
	} else if h := res.To(); h != nil && !h.Params.Has("tag") {
		h.Params.Add("tag", uuid.NewString())
	}
	cl := sip.ContentLengthHeader(0)
	res.AppendHeader(&cl)
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res
}

// copyHeaders appends to res a clone of every header of req named name
// (any case), in order.
func copyHeaders(req *sip.Request, res *sip.Response, name string) {
	for _, h := range req.Headers() {
		if sipnet.HeaderNameIs(h.Name(), name) {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}
}

// headerValues returns the values of every header named name (any case):
// see sipnet.HeaderValues.
func headerValues(msg sip.Message, names ...string) []string {
	m, ok := msg.(sipnet.HeaderLister)
	if !ok {
		return nil
	}
	return sipnet.HeaderValues(m, names...)
}

// hasOptionTag reports whether tag is in Supported, Require or Proxy-Require.
func hasOptionTag(msg sip.Message, tag string) bool {
	for _, v := range headerValues(msg, "Supported", "k", "Require", "Proxy-Require") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}

// sanitize makes text safe inside a quoted Warning text.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 {
			return '\''
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// isDeregistration reports whether a REGISTER removes its binding(s):
// Expires: 0, or every Contact with expires=0.
func isDeregistration(req *sip.Request) bool {
	exp, ok := requestedExpires(req)
	return ok && exp == 0
}

// requestedExpires is the expiry the REGISTER asks for: the Contact's
// expires parameter, else the Expires header (RFC 3261 §10.2.1.1).
func requestedExpires(req *sip.Request) (int64, bool) {
	if ct := req.Contact(); ct != nil {
		if v, ok := ct.Params.Get("expires"); ok {
			if n, ok := parseDeltaSeconds(v); ok {
				return n, true
			}
		}
	}
	if h := req.GetHeader("Expires"); h != nil {
		if n, ok := parseDeltaSeconds(h.Value()); ok {
			return n, true
		}
	}
	return 0, false
}

// maxDeltaSeconds caps delta-seconds values (RFC 3261 §25.1 allows any
// size; 2^32−1 keeps the arithmetic in time.Duration safe).
const maxDeltaSeconds = 1<<32 - 1

// parseDeltaSeconds parses a delta-seconds value, capped at maxDeltaSeconds.
func parseDeltaSeconds(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxDeltaSeconds {
		return maxDeltaSeconds, true // all digits: only too large
	}
	return int64(n), true
}
