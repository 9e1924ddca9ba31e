package reginfo

import "strings"

// SameURI reports whether two AOR or contact URIs name the same address, as
// far as a UE matching its own registration needs: for sip and sips URIs the
// scheme and host:port compare case-insensitively and the user part exactly
// (RFC 3261 §19.1.4); URI parameters and headers are ignored, because
// registrars rewrite them (Kamailio adds or drops ;transport, ;alias, ...)
// and the UE's own binding must still be found. Other schemes (tel, urn)
// compare case-insensitively as a whole. Surrounding angle brackets and
// whitespace are ignored.
func SameURI(a, b string) bool {
	sa, ra, oka := splitScheme(a)
	sb, rb, okb := splitScheme(b)
	if !oka || !okb || !strings.EqualFold(sa, sb) {
		return false
	}
	if !strings.EqualFold(sa, "sip") && !strings.EqualFold(sa, "sips") {
		return strings.EqualFold(ra, rb)
	}
	ua, ha := splitSIP(ra)
	ub, hb := splitSIP(rb)
	return ua == ub && strings.EqualFold(ha, hb)
}

func splitScheme(u string) (scheme, rest string, ok bool) {
	u = strings.TrimSpace(u)
	if strings.HasPrefix(u, "<") && strings.HasSuffix(u, ">") {
		u = strings.TrimSpace(u[1 : len(u)-1])
	}
	scheme, rest, ok = strings.Cut(u, ":")
	return scheme, rest, ok && scheme != "" && rest != ""
}

// splitSIP splits the part after "sip:" into userinfo and host[:port]. The
// user part may itself hold ';' and '?' (RFC 3261 user-unreserved), so the
// host starts after the last '@'.
func splitSIP(rest string) (user, hostport string) {
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, rest = rest[:at], rest[at+1:]
	}
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		rest = rest[:i]
	}
	return user, rest
}
