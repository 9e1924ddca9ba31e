package digest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestAKANonce(t *testing.T) {
	var raw [48]byte
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	wantRAND, wantAUTN := [16]byte(raw[0:16]), [16]byte(raw[16:32])
	for _, tc := range []struct {
		name, nonce string
	}{
		{"32 bytes, padded", base64.StdEncoding.EncodeToString(raw[:32])},
		{"32 bytes, unpadded", base64.RawStdEncoding.EncodeToString(raw[:32])},
		{"33 bytes of which 1 server data, padded", base64.StdEncoding.EncodeToString(raw[:33])},
		{"48 bytes (16 server data), no padding needed", base64.StdEncoding.EncodeToString(raw[:])},
	} {
		rand, autn, err := AKANonce(tc.nonce)
		if err != nil || rand != wantRAND || autn != wantAUTN {
			t.Errorf("%s: AKANonce(%s) = %x, %x, %v", tc.name, tc.nonce, rand, autn, err)
		}
	}
}

func TestAKANonceErrors(t *testing.T) {
	var raw [32]byte
	for i := range raw {
		raw[i] = 0xfb // encodes to '+' and '/' in the standard alphabet
	}
	for _, tc := range []struct {
		name, nonce, mention string
	}{
		{"empty", "", "0 bytes"},
		{"31 bytes", base64.StdEncoding.EncodeToString(raw[:31]), "31 bytes"},
		{"16 bytes (RAND only)", base64.StdEncoding.EncodeToString(raw[:16]), "16 bytes"},
		{"URL-safe alphabet", base64.URLEncoding.EncodeToString(raw[:]), "base64"},
		{"character outside the alphabet", strings.Repeat("A", 42) + "!=", "base64"},
		{"bad padding", base64.StdEncoding.EncodeToString(raw[:]) + "=", "base64"},
		{"non-zero trailing bits", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", "base64"},
		{"embedded space", "AAAA AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "base64"},
	} {
		_, _, err := AKANonce(tc.nonce)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: AKANonce(%q) = %v; want ErrMalformed mentioning %q", tc.name, tc.nonce, err, tc.mention)
		}
	}
}

func TestEncodeAKANonce(t *testing.T) {
	rand := [16]byte{1, 2, 3}
	autn := [16]byte{15: 0xff}
	extra := []byte("server")
	n := EncodeAKANonce(rand, autn, extra)
	raw, err := base64.StdEncoding.DecodeString(n)
	if err != nil {
		t.Fatalf("EncodeAKANonce = %q: not standard base64: %v", n, err)
	}
	want := append(append(append([]byte{}, rand[:]...), autn[:]...), extra...)
	if !bytes.Equal(raw, want) {
		t.Errorf("EncodeAKANonce decodes to %x, want %x", raw, want)
	}
	r, a, err := AKANonce(n)
	if err != nil || r != rand || a != autn {
		t.Errorf("AKANonce(EncodeAKANonce) = %x, %x, %v", r, a, err)
	}
}

func TestAKAv2PasswordShape(t *testing.T) {
	res := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	p := AKAv2Password(res, [16]byte{1}, [16]byte{2})
	if len(p) != 24 || !bytes.HasSuffix(p, []byte("==")) {
		t.Errorf("AKAv2Password = %q, want 24 base64 characters ending ==", p)
	}
	// Key order matters: swapping IK and CK must change it.
	if bytes.Equal(p, AKAv2Password(res, [16]byte{2}, [16]byte{1})) {
		t.Error("AKAv2Password does not depend on the IK/CK order")
	}
	if !bytes.Equal(res, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Error("AKAv2Password modified RES")
	}
}

func TestDecodeAUTS(t *testing.T) {
	want := [14]byte{0xc2, 0x92, 0x0f, 0xe2, 0x48, 0x9f, 0x5b, 0x7a, 0x89, 0x25, 0x81, 0x9b, 0x61, 0x4b}
	for _, s := range []string{"wpIP4kifW3qJJYGbYUs=", "wpIP4kifW3qJJYGbYUs"} {
		if got, err := DecodeAUTS(s); err != nil || got != want {
			t.Errorf("DecodeAUTS(%q) = %x, %v; want %x", s, got, err, want)
		}
	}
	for _, s := range []string{"", "wpIP4kifW3qJJYGbYUsA", "wpIP4kifW3qJJYGbYUs=AAAA", "wpIP4kifW3qJJYGbYUs=AA==", "wpIP4kifW3qJJYGbYU", "!!!"} {
		if _, err := DecodeAUTS(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeAUTS(%q) = %v, want ErrMalformed", s, err)
		}
	}
}

func TestNewCNonce(t *testing.T) {
	a, b := NewCNonce(), NewCNonce()
	if a == b {
		t.Errorf("NewCNonce twice = %q", a)
	}
	if !isToken(a) || len(a) < 22 {
		t.Errorf("NewCNonce = %q, want ≥ 128 bits of token characters", a)
	}
}
