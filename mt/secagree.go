package mt

// Parsing and formatting of the RFC 3329 Security-Client, Security-Server and
// Security-Verify headers with the TS 33.203 Annex H ipsec-3gpp parameters.
//
// Grammar (RFC 3329 §2.2, RFC 3261 §25.1, 33.203 Annex H):
//
//	security-xxx   = sec-mechanism *(COMMA sec-mechanism)
//	sec-mechanism  = mechanism-name *(SEMI mech-parameters)
//	mechanism-name = token
//	mech-parameters = preference / alg / ealg / prot / mod / spi-c / spi-s /
//	                  port-c / port-s / generic-param
//	preference     = "q" EQUAL qvalue
//	qvalue         = ("0" ["." 0*3DIGIT]) / ("1" ["." 0*3("0")])
//	generic-param  = token [EQUAL gen-value]; gen-value = token / host / quoted-string
//
// SEMI, COMMA and EQUAL allow linear white space on both sides. Names of
// mechanisms, parameters and of the Annex H values are case-insensitive
// (ABNF string literals); known values are normalised to the spelling of the
// constants, unknown ones are kept as received.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/imsue/imsue/ipsec"
)

// MechanismIPsec3GPP is the mechanism-name of TS 33.203 Annex H.
const MechanismIPsec3GPP = "ipsec-3gpp"

// Values of "prot" and "mod" (TS 33.203 Annex H) besides ipsec.ModeTransport.
// Only esp in transport mode is ever chosen; the others parse so that a
// Security-Server listing them can still be negotiated on its other entries.
const (
	ProtESP = "esp"
	ProtAH  = "ah"

	// ModeTunnel is "mod=tun".
	ModeTunnel ipsec.Mode = "tun"
	// ModeUDPEncTunnel is "mod=UDP-enc-tun", ESP in UDP (RFC 3948) for NAT
	// traversal; negotiable later, never chosen now.
	ModeUDPEncTunnel ipsec.Mode = "UDP-enc-tun"
)

// Annex H values that parse (and are normalised) but that ExpandKeys does
// not support: aes-gmac/aes-gcm need the TS 33.220 salt KDF, and alg=null is
// only meaningful with aes-gcm.
const (
	authAESGMAC ipsec.Auth = "aes-gmac"
	authNull    ipsec.Auth = "null"
	encAESGCM   ipsec.Enc  = "aes-gcm"
)

// maxParams bounds the parameters of one mechanism so that the duplicate
// check (quadratic in the unknown parameters) stays cheap on hostile input.
// Real mechanisms carry at most ten.
const maxParams = 64

// Known parameters, as bits for the duplicate check.
const (
	paramQ = 1 << iota
	paramAlg
	paramEAlg
	paramProt
	paramMod
	paramSPIc
	paramSPIs
	paramPortC
	paramPortS
)

// ParseSecurity parses the values of one or more Security-Client, -Server or
// -Verify headers (each may be a comma-separated list) into mechanisms, in
// order. Every error wraps ErrBadSecurityHeader and names the problem.
//
// For ipsec-3gpp, alg is mandatory, ealg defaults to null, prot to esp and
// mod to trans; spi-c and spi-s are 0..2^32−1, port-c and port-s 1..65535.
// A parameter given twice is an error. The q value must match the RFC 3329
// qvalue grammar exactly: "q=.5" and "q=1.5" are rejected rather than
// guessed at, since a misread preference could change which mechanism is
// chosen. Unknown parameters are kept in Other, unknown mechanisms (digest,
// tls, ...) are returned but never chosen. Each Mechanism's Text is its
// exact text in the header value, without the surrounding white space and
// commas.
//
// Calling ParseSecurity without values (the header is absent) is an error.
func ParseSecurity(values ...string) ([]Mechanism, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("%w: no header", ErrBadSecurityHeader)
	}
	// One allocation for realistic headers; the cap keeps a header full of
	// commas from reserving memory before it fails to parse.
	n := 0
	for _, v := range values {
		n += 1 + strings.Count(v, ",") // commas inside quoted strings overcount
	}
	ms := make([]Mechanism, 0, min(n, 16))
	for _, v := range values {
		var err error
		if ms, err = parseValue(ms, v); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// parseValue appends the mechanisms of one header value to ms.
func parseValue(ms []Mechanism, v string) ([]Mechanism, error) {
	sc := scanner{s: v}
	for {
		sc.skipLWS()
		idx := len(ms) + 1
		if sc.eof() || sc.peek() == ',' {
			return ms, fmt.Errorf("%w: mechanism %d: empty", ErrBadSecurityHeader, idx)
		}
		start := sc.i
		m, end, err := parseMechanism(&sc)
		if err != nil {
			return ms, fmt.Errorf("%w: mechanism %d: %v", ErrBadSecurityHeader, idx, err)
		}
		m.Text = v[start:end]
		ms = append(ms, m)
		// parseMechanism stops at the end or at a comma.
		if sc.eof() {
			return ms, nil
		}
		sc.i++ // ','
	}
}

// parseMechanism parses one sec-mechanism and returns it and the index just
// past its last parameter. It stops at the end of the value or at a comma.
func parseMechanism(sc *scanner) (m Mechanism, end int, err error) {
	m.Name = sc.token()
	if m.Name == "" {
		return m, 0, fmt.Errorf("mechanism name expected, found %s", sc.found())
	}
	end = sc.i
	is3GPP := strings.EqualFold(m.Name, MechanismIPsec3GPP)
	var seen uint16
	nparams := 0
	for {
		sc.skipLWS()
		if sc.eof() || sc.peek() == ',' {
			break
		}
		if sc.peek() != ';' {
			return m, 0, fmt.Errorf("%.32q: ';' or ',' expected, found %s", m.Name, sc.found())
		}
		sc.i++
		sc.skipLWS()
		if nparams++; nparams > maxParams {
			return m, 0, fmt.Errorf("%.32q: more than %d parameters", m.Name, maxParams)
		}
		pstart := sc.i
		name := sc.token()
		if name == "" {
			return m, 0, fmt.Errorf("%.32q: parameter name expected, found %s", m.Name, sc.found())
		}
		var (
			value    string
			hasValue bool
			quoted   bool
		)
		save := sc.i
		sc.skipLWS()
		if !sc.eof() && sc.peek() == '=' {
			sc.i++
			sc.skipLWS()
			if value, quoted, err = sc.value(); err != nil {
				return m, 0, fmt.Errorf("%.32s: %v", name, err)
			}
			hasValue = true
		} else {
			sc.i = save // white space after a bare name belongs to the separator
		}
		end = sc.i

		bit, err := m.setParam(is3GPP, name, value, hasValue, quoted)
		if err != nil {
			return m, 0, err
		}
		if bit == 0 { // unknown: keep it
			for _, o := range m.Other {
				if strings.EqualFold(otherName(o), name) {
					return m, 0, fmt.Errorf("%.32s: parameter given twice", name)
				}
			}
			raw := sc.s[pstart:end]
			if hasValue && len(raw) != len(name)+1+len(value) { // white space around '='
				raw = name + "=" + value
			}
			m.Other = append(m.Other, raw)
			continue
		}
		if seen&bit != 0 {
			return m, 0, fmt.Errorf("%s: parameter given twice", strings.ToLower(name))
		}
		seen |= bit
	}
	if is3GPP {
		if seen&paramAlg == 0 {
			return m, 0, fmt.Errorf("%s: alg missing (mandatory, TS 33.203 Annex H)", m.Name)
		}
		if seen&paramEAlg == 0 {
			m.EAlg = ipsec.EncNull
		}
		if seen&paramProt == 0 {
			m.Prot = ProtESP
		}
		if seen&paramMod == 0 {
			m.Mode = ipsec.ModeTransport
		}
	}
	return m, end, nil
}

// setParam stores a known parameter in m and returns its bit, or 0 when the
// parameter is not one of the known ones for this mechanism.
func (m *Mechanism) setParam(is3GPP bool, name, value string, hasValue, quoted bool) (uint16, error) {
	bit := paramBit(name, is3GPP)
	if bit == 0 {
		return 0, nil
	}
	lname := strings.ToLower(name) // short; no allocation when already lower case
	if !hasValue {
		return 0, fmt.Errorf("%s: value missing", lname)
	}
	if quoted || value == "" || value[0] == '[' {
		return 0, fmt.Errorf("%s=%.64s: value must be a token", lname, value)
	}
	switch bit {
	case paramQ:
		q, ok := parseQ(value)
		if !ok {
			return 0, fmt.Errorf("q=%.64s: not a qvalue (0, 0.x, 0.xx, 0.xxx or 1)", value)
		}
		m.Q, m.HasQ = q, true
	case paramAlg:
		m.Alg = normAuth(value)
	case paramEAlg:
		m.EAlg = normEnc(value)
	case paramProt:
		m.Prot = normProt(value)
	case paramMod:
		m.Mode = normMode(value)
	case paramSPIc, paramSPIs:
		spi, ok := parseDecimal(value, 1<<32-1)
		if !ok {
			return 0, fmt.Errorf("%s=%.64s: not an SPI (decimal 0..4294967295)", lname, value)
		}
		if bit == paramSPIc {
			m.SPIc = uint32(spi)
		} else {
			m.SPIs = uint32(spi)
		}
	case paramPortC, paramPortS:
		port, ok := parseDecimal(value, 1<<16-1)
		if !ok {
			return 0, fmt.Errorf("%s=%.64s: not a port (decimal 1..65535)", lname, value)
		}
		if port == 0 {
			return 0, fmt.Errorf("%s=0: port 0 is not a usable protected port "+
				"(Kamailio's ims_ipsec_pcscf sends port-s=0 when its re-registration branch "+
				"found no server port, e.g. an initial REGISTER not sent from port 5060)", lname)
		}
		if bit == paramPortC {
			m.PortC = uint16(port)
		} else {
			m.PortS = uint16(port)
		}
	}
	return uint16(bit), nil
}

// paramBit returns the bit of a known parameter name, or 0. It switches on
// the length first: the header parser calls it for every parameter.
func paramBit(name string, is3GPP bool) uint16 {
	if len(name) == 1 && (name[0] == 'q' || name[0] == 'Q') {
		return paramQ
	}
	if !is3GPP {
		return 0
	}
	switch len(name) {
	case 3:
		if strings.EqualFold(name, "alg") {
			return paramAlg
		}
		if strings.EqualFold(name, "mod") {
			return paramMod
		}
	case 4:
		if strings.EqualFold(name, "ealg") {
			return paramEAlg
		}
		if strings.EqualFold(name, "prot") {
			return paramProt
		}
	case 5:
		if strings.EqualFold(name, "spi-c") {
			return paramSPIc
		}
		if strings.EqualFold(name, "spi-s") {
			return paramSPIs
		}
	case 6:
		if strings.EqualFold(name, "port-c") {
			return paramPortC
		}
		if strings.EqualFold(name, "port-s") {
			return paramPortS
		}
	}
	return 0
}

// otherName returns the name part of an Other entry.
func otherName(o string) string {
	if i := strings.IndexByte(o, '='); i >= 0 {
		return o[:i]
	}
	return o
}

// NormAuth returns an alg value (TS 33.203 Annex H) in the spelling of the
// constant it names, compared case-insensitively as ParseSecurity does, or
// unchanged when it names none.
func NormAuth(a ipsec.Auth) ipsec.Auth { return normAuth(string(a)) }

// NormEnc returns an ealg value (TS 33.203 Annex H) in the spelling of the
// constant it names, compared case-insensitively as ParseSecurity does, or
// unchanged when it names none. An absent ealg ("") is null, its Annex H
// default.
func NormEnc(e ipsec.Enc) ipsec.Enc { return normEnc(string(orEnc(e))) }

func normAuth(v string) ipsec.Auth {
	switch a := ipsec.Auth(v); a { // fast path: already canonical
	case ipsec.AuthHMACMD596, ipsec.AuthHMACSHA196:
		return a
	}
	for _, a := range [...]ipsec.Auth{ipsec.AuthHMACMD596, ipsec.AuthHMACSHA196, authAESGMAC, authNull} {
		if strings.EqualFold(v, string(a)) {
			return a
		}
	}
	return ipsec.Auth(v)
}

func normEnc(v string) ipsec.Enc {
	switch e := ipsec.Enc(v); e {
	case ipsec.EncNull, ipsec.EncAESCBC, ipsec.EncDES3EDECBC:
		return e
	}
	for _, e := range [...]ipsec.Enc{ipsec.EncNull, ipsec.EncAESCBC, ipsec.EncDES3EDECBC, encAESGCM} {
		if strings.EqualFold(v, string(e)) {
			return e
		}
	}
	return ipsec.Enc(v)
}

func normProt(v string) string {
	if v == ProtESP {
		return v
	}
	for _, p := range [...]string{ProtESP, ProtAH} {
		if strings.EqualFold(v, p) {
			return p
		}
	}
	return v
}

func normMode(v string) ipsec.Mode {
	if md := ipsec.Mode(v); md == ipsec.ModeTransport {
		return md
	}
	for _, md := range [...]ipsec.Mode{ipsec.ModeTransport, ModeTunnel, ModeUDPEncTunnel} {
		if strings.EqualFold(v, string(md)) {
			return md
		}
	}
	return ipsec.Mode(v)
}

// parseQ parses an RFC 3329 qvalue into thousandths.
func parseQ(s string) (int, bool) {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return q, true
	}
	if s[1] != '.' || len(s) > 5 {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' || (q == 1000 && c != '0') {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	return q, true
}

// parseDecimal parses 1*DIGIT not above max.
func parseDecimal(s string, max uint64) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > max {
			return 0, false
		}
	}
	return n, true
}

// scanner walks a header value.
type scanner struct {
	s string
	i int
}

func (sc *scanner) eof() bool  { return sc.i >= len(sc.s) }
func (sc *scanner) peek() byte { return sc.s[sc.i] }

// found describes the byte at the cursor for an error message.
func (sc *scanner) found() string {
	if sc.eof() {
		return "end of header"
	}
	return strconv.QuoteRune(rune(sc.s[sc.i]))
}

// skipLWS skips SP, HTAB and line folding (CRLF followed by SP or HTAB). A
// CR or LF that does not fold is left in place and makes the parse fail, so
// a mechanism's Text can never smuggle a header break into Security-Verify.
func (sc *scanner) skipLWS() {
	for sc.i < len(sc.s) {
		switch c := sc.s[sc.i]; {
		case c == ' ' || c == '\t':
			sc.i++
		case c == '\r' && sc.i+2 < len(sc.s) && sc.s[sc.i+1] == '\n' && (sc.s[sc.i+2] == ' ' || sc.s[sc.i+2] == '\t'):
			sc.i += 3
		default:
			return
		}
	}
}

// token reads an RFC 3261 token (possibly empty).
func (sc *scanner) token() string {
	start := sc.i
	for sc.i < len(sc.s) && isTokenChar(sc.s[sc.i]) {
		sc.i++
	}
	return sc.s[start:sc.i]
}

// value reads a gen-value: a token, a quoted-string or an IPv6 reference,
// returned as it appears (quotes and brackets included).
func (sc *scanner) value() (v string, quoted bool, err error) {
	if sc.eof() {
		return "", false, fmt.Errorf("value expected, found end of header")
	}
	start := sc.i
	switch sc.peek() {
	case '"':
		sc.i++
		for {
			if sc.eof() {
				return "", false, fmt.Errorf("unterminated quoted string")
			}
			c := sc.s[sc.i]
			switch {
			case c == '"':
				sc.i++
				return sc.s[start:sc.i], true, nil
			case c == '\\':
				if sc.i+1 >= len(sc.s) || sc.s[sc.i+1] == '\r' || sc.s[sc.i+1] == '\n' {
					return "", false, fmt.Errorf("bad escape in quoted string")
				}
				sc.i += 2
			case c == '\r':
				before := sc.i
				sc.skipLWS()
				if sc.i == before {
					return "", false, fmt.Errorf("CR in quoted string")
				}
			case c < 0x20 && c != '\t', c == 0x7f:
				return "", false, fmt.Errorf("control character %#02x in quoted string", c)
			default:
				sc.i++
			}
		}
	case '[':
		sc.i++
		for !sc.eof() && isIPv6Char(sc.peek()) {
			sc.i++
		}
		if sc.eof() || sc.peek() != ']' || sc.i == start+1 {
			return "", false, fmt.Errorf("bad IPv6 reference")
		}
		sc.i++
		return sc.s[start:sc.i], false, nil
	}
	if v = sc.token(); v == "" {
		return "", false, fmt.Errorf("value expected, found %s", sc.found())
	}
	return v, false, nil
}

// tokenChars marks the bytes of an RFC 3261 token:
// alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range []byte("-.!%*_+`'~") {
		t[c] = true
	}
	return t
}()

func isTokenChar(c byte) bool { return tokenChars[c] }

func isIPv6Char(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == ':' || c == '.'
}

// String formats m canonically:
// ipsec-3gpp;alg=..;ealg=..;prot=esp;mod=trans;spi-c=..;spi-s=..;port-c=..;port-s=..[;q=..]
// followed by the Other parameters in order. Absent ealg, prot and mod are
// written with their defaults (null, esp, trans), so the text is explicit;
// SPIs and ports of 0 (absent, or reserved on the wire) are left out. For
// other mechanisms only the name, q and Other are written. Q outside
// 0..1000 is clamped. String never contains keys: mechanisms hold none.
func (m Mechanism) String() string {
	var b strings.Builder
	b.Grow(len(m.Name) + 112 + len(m.Alg) + len(m.EAlg) + len(m.Prot) + len(m.Mode))
	b.WriteString(m.Name)
	if strings.EqualFold(m.Name, MechanismIPsec3GPP) {
		if m.Alg != "" {
			writeParam(&b, "alg", string(m.Alg))
		}
		writeParam(&b, "ealg", string(orEnc(m.EAlg)))
		writeParam(&b, "prot", orProt(m.Prot))
		writeParam(&b, "mod", string(orMode(m.Mode)))
		writeNum(&b, "spi-c", uint64(m.SPIc))
		writeNum(&b, "spi-s", uint64(m.SPIs))
		writeNum(&b, "port-c", uint64(m.PortC))
		writeNum(&b, "port-s", uint64(m.PortS))
	}
	if m.HasQ {
		writeParam(&b, "q", formatQ(m.Q))
	}
	for _, o := range m.Other {
		b.WriteByte(';')
		b.WriteString(o)
	}
	return b.String()
}

func writeParam(b *strings.Builder, name, v string) {
	b.WriteByte(';')
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(v)
}

// writeNum writes a numeric parameter unless it is 0 (absent).
func writeNum(b *strings.Builder, name string, n uint64) {
	if n == 0 {
		return
	}
	var buf [20]byte
	b.WriteByte(';')
	b.WriteString(name)
	b.WriteByte('=')
	b.Write(strconv.AppendUint(buf[:0], n, 10))
}

// formatQ writes thousandths as the shortest qvalue.
func formatQ(q int) string {
	switch {
	case q <= 0:
		return "0"
	case q >= 1000:
		return "1"
	}
	d := [5]byte{'0', '.', byte('0' + q/100), byte('0' + q/10%10), byte('0' + q%10)}
	n := len(d)
	for d[n-1] == '0' {
		n--
	}
	return string(d[:n])
}

func orEnc(e ipsec.Enc) ipsec.Enc {
	if e == "" {
		return ipsec.EncNull
	}
	return e
}

func orProt(p string) string {
	if p == "" {
		return ProtESP
	}
	return p
}

func orMode(md ipsec.Mode) ipsec.Mode {
	if md == "" {
		return ipsec.ModeTransport
	}
	return md
}

// FormatSecurity joins mechanisms into one header value (", " separated),
// each in its canonical String form.
func FormatSecurity(ms []Mechanism) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.String())
	}
	return b.String()
}

// VerifyValue returns the Security-Verify value for the received
// Security-Server header values: the values themselves, byte for byte,
// joined with ", " (RFC 3261 §7.3.1 makes several header fields and one
// comma-joined field equivalent). RFC 3329 §2.3.1 and TS 24.229 §5.1.1.5.1
// want Security-Verify to repeat what the server sent; copying the received
// text, rather than re-formatting parsed mechanisms, keeps it exact for
// servers that compare strings. A caller that prefers several
// Security-Verify header fields can send each Security-Server value as one.
func VerifyValue(serverValues []string) string {
	return strings.Join(serverValues, ", ")
}

// Params returns the SPIs and ports that m announces.
func (m Mechanism) Params() Params {
	return Params{SPIc: m.SPIc, SPIs: m.SPIs, PortC: m.PortC, PortS: m.PortS}
}

// Equal reports whether m and o are the same mechanism: every field but
// Text, with the mechanism name compared case-insensitively and absent
// ealg, prot and mod equal to their defaults (null, esp, trans).
func (m Mechanism) Equal(o Mechanism) bool {
	if !strings.EqualFold(m.Name, o.Name) || m.Alg != o.Alg ||
		m.SPIc != o.SPIc || m.SPIs != o.SPIs || m.PortC != o.PortC || m.PortS != o.PortS ||
		m.HasQ != o.HasQ || (m.HasQ && m.Q != o.Q) || len(m.Other) != len(o.Other) {
		return false
	}
	if strings.EqualFold(m.Name, MechanismIPsec3GPP) {
		if orEnc(m.EAlg) != orEnc(o.EAlg) || orProt(m.Prot) != orProt(o.Prot) || orMode(m.Mode) != orMode(o.Mode) {
			return false
		}
	} else if m.EAlg != o.EAlg || m.Prot != o.Prot || m.Mode != o.Mode {
		return false
	}
	for i := range m.Other {
		if m.Other[i] != o.Other[i] {
			return false
		}
	}
	return true
}
