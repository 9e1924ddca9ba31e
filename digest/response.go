package digest

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
)

// Credentials are the inputs of one response computation.
type Credentials struct {
	Username string
	Realm    string
	Password []byte // AKAv1: RES bytes; AKAv2: AKAv2Password; MD5: the password; empty for AUTS/MAC failure
	Method   string
	URI      string
	Nonce    string
	QOP      string // "", "auth" or "auth-int"
	NC       uint32
	CNonce   string
	Body     []byte // for auth-int
}

// hexLen is the length of an MD5 digest in hex.
const hexLen = 2 * md5.Size

// Response computes the RFC 2617 request-digest (lowercase hex).
//
//	HA1 = MD5(username ":" realm ":" password)
//	HA2 = MD5(method ":" uri)                      qop auth or none
//	HA2 = MD5(method ":" uri ":" MD5hex(body))     qop auth-int
//	response = MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)   with qop
//	response = MD5(HA1 ":" nonce ":" HA2)                             without qop
//
// qop is matched case-insensitively but hashed as given; nc is hashed as 8
// lowercase hex digits. A qop other than "", auth and auth-int has no
// defined digest: Response then returns "", which no server accepts (use
// Challenge.SelectQOP or Answer to get an error instead).
func Response(c Credentials) string {
	if !supportedQOP(c.QOP) {
		return ""
	}
	var out [hexLen]byte
	response(&out, &c)
	return string(out[:])
}

// response writes the request-digest of c into out. It is split from
// Response so that Verify can compare without converting to a string, and
// so that the scratch buffer stays on the stack.
func response(out *[hexLen]byte, c *Credentials) {
	var ha1, ha2 [hexLen]byte
	var scratch [256]byte
	ha1Hex(&ha1, scratch[:0], c.Username, c.Realm, c.Password)
	ha2Hex(&ha2, scratch[:0], c.Method, c.URI, c.QOP, c.Body)

	b := append(scratch[:0], ha1[:]...)
	b = append(b, ':')
	b = append(b, c.Nonce...)
	b = append(b, ':')
	if c.QOP != "" {
		b = appendNC(b, c.NC)
		b = append(b, ':')
		b = append(b, c.CNonce...)
		b = append(b, ':')
		b = append(b, c.QOP...)
		b = append(b, ':')
	}
	b = append(b, ha2[:]...)
	md5Hex(out, b)
}

// ha1Hex writes HA1 = MD5hex(username ":" realm ":" password).
func ha1Hex(out *[hexLen]byte, b []byte, username, realm string, password []byte) {
	b = append(b, username...)
	b = append(b, ':')
	b = append(b, realm...)
	b = append(b, ':')
	b = append(b, password...)
	md5Hex(out, b)
	clear(b) // the password
}

// ha2Hex writes HA2 for qop (which must satisfy supportedQOP).
func ha2Hex(out *[hexLen]byte, b []byte, method, uri, qop string, body []byte) {
	b = append(b, method...)
	b = append(b, ':')
	b = append(b, uri...)
	if strings.EqualFold(qop, QOPAuthInt) {
		var hb [hexLen]byte
		md5Hex(&hb, body)
		b = append(b, ':')
		b = append(b, hb[:]...)
	}
	md5Hex(out, b)
}

func md5Hex(out *[hexLen]byte, b []byte) {
	sum := md5.Sum(b)
	hex.Encode(out[:], sum[:])
}

// appendNC appends nc as 8 lowercase hex digits (RFC 2617 nc-value).
func appendNC(b []byte, nc uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[nc>>uint(shift)&0xf])
	}
	return b
}
