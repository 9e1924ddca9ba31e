package digest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// Sizes of the AKA values carried in Digest parameters.
const (
	randSize     = 16
	autnSize     = 16
	minNonceSize = randSize + autnSize
	autsSize     = 14 // (SQN_MS ⊕ AK*) ‖ MAC-S
)

// AKANonce splits an AKA nonce: base64(RAND ‖ AUTN ‖ server data).
//
// RFC 3310 §3.2 specifies the standard base64 alphabet with padding, which
// every core seen in practice sends. Unpadded standard base64 is accepted
// too, since the padding carries no information and some servers strip it;
// the URL-safe alphabet is not ("-" and "_" are errors), so a nonce that is
// not AKA fails here rather than decoding to a wrong RAND. Bytes 0–15 are
// RAND, 16–31 AUTN; server data after them is ignored.
func AKANonce(nonce string) (rand, autn [16]byte, err error) {
	raw, err := decodeBase64(nonce)
	if err != nil {
		return rand, autn, fmt.Errorf("%w: AKA nonce is not base64: %v", ErrMalformed, err)
	}
	if len(raw) < minNonceSize {
		return rand, autn, fmt.Errorf("%w: AKA nonce decodes to %d bytes, want at least %d (RAND ‖ AUTN)",
			ErrMalformed, len(raw), minNonceSize)
	}
	copy(rand[:], raw[:randSize])
	copy(autn[:], raw[randSize:minNonceSize])
	return rand, autn, nil
}

// decodeBase64 decodes standard base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	return enc.Strict().DecodeString(s)
}

// EncodeAKANonce is the network side: base64(RAND ‖ AUTN ‖ extra).
func EncodeAKANonce(rand, autn [16]byte, extra []byte) string {
	raw := make([]byte, 0, minNonceSize+len(extra))
	raw = append(raw, rand[:]...)
	raw = append(raw, autn[:]...)
	raw = append(raw, extra...)
	return base64.StdEncoding.EncodeToString(raw)
}

// akav2Label is the PRF input of RFC 4169 §3.
const akav2Label = "http-digest-akav2-password"

// AKAv2Password is base64(HMAC-MD5(key = RES ‖ IK ‖ CK, "http-digest-akav2-password")).
//
// The result is the 24-character base64 text, used as the password octets in
// HA1 (RFC 4169 §3); the key order RES ‖ IK ‖ CK is the one PJSIP, doubango
// and Clearwater use.
func AKAv2Password(res []byte, ik, ck [16]byte) []byte {
	key := make([]byte, 0, len(res)+len(ik)+len(ck))
	key = append(key, res...)
	key = append(key, ik[:]...)
	key = append(key, ck[:]...)
	m := hmac.New(md5.New, key)
	m.Write([]byte(akav2Label))
	var sum [md5.Size]byte
	out := make([]byte, base64.StdEncoding.EncodedLen(md5.Size))
	base64.StdEncoding.Encode(out, m.Sum(sum[:0]))
	clear(key)
	return out
}

// EncodeAUTS formats the auts parameter value of a sync-failure
// Authorization: standard base64 of the 14-byte AUTS (RFC 3310 §3.4).
func EncodeAUTS(auts [14]byte) string { return base64.StdEncoding.EncodeToString(auts[:]) }

// DecodeAUTS parses an auts parameter value (the S-CSCF side of a resync,
// RFC 3310 §3.4). Like AKANonce it accepts standard base64 with or without
// padding: UEs send both.
func DecodeAUTS(s string) (auts [14]byte, err error) {
	raw, err := decodeBase64(s)
	if err != nil {
		return auts, fmt.Errorf("%w: auts is not base64: %v", ErrMalformed, err)
	}
	if len(raw) != autsSize {
		return auts, fmt.Errorf("%w: auts decodes to %d bytes, want %d", ErrMalformed, len(raw), autsSize)
	}
	copy(auts[:], raw)
	return auts, nil
}

// NewCNonce returns a fresh client nonce: 128 random bits as 26 base32
// characters (letters and digits only, so no server mangles it). It never
// fails: crypto/rand aborts the program rather than return weak randomness.
func NewCNonce() string { return rand.Text() }
