package imscore

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/sipnet"
)

// Helpers on SIP messages shared by the roles.

// newResponse builds a response per RFC 3261 §8.2.6 (sipgo adds the To tag
// and the RFC 3581 received/rport).
func newResponse(req *sip.Request, code int, reason string) *sip.Response {
	return sip.NewResponseFromRequest(req, code, reason, nil)
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
