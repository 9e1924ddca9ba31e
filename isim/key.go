package isim

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// Key is a 128-bit subscriber secret: K, OP or OPc. It formats as
// "[redacted]" with every fmt verb, and marshals as that text, so a Key that
// reaches a log line, an error or a JSON dump by accident does not leak. Use
// Hex when printing it is the point (the milenage calculator).
type Key [16]byte

const redacted = "[redacted]"

// ParseKey decodes 32 hex digits, either case. The error describes the
// problem without quoting the input, which may be a secret.
func ParseKey(s string) (Key, error) {
	var k Key
	if err := DecodeHex(k[:], s); err != nil {
		return Key{}, err
	}
	return k, nil
}

// Hex returns the key as 32 lowercase hex digits.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// String returns "[redacted]".
func (Key) String() string { return redacted }

// GoString returns "[redacted]".
func (Key) GoString() string { return redacted }

// Format writes "[redacted]" whatever the verb.
func (Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalText returns "[redacted]": a Key is never serialised by accident.
func (Key) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// DecodeHex decodes exactly 2·len(dst) hex digits of s (either case) into
// dst. Its errors name the expected and actual length or the position of the
// first bad character, never the value itself.
func DecodeHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("want %d hex digits, got %d", 2*len(dst), len(s))
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !isHex(r) }); i >= 0 {
		return fmt.Errorf("not hex: bad character at position %d", i+1)
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("not hex: %w", err)
	}
	return nil
}

func isHex(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F'
}
