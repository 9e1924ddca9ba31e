package mt

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/ipsec"
)

// loadCKIK gives CK and IK of the named Digest AKA vector of
// internal/vectors (digest_vectors.json).
func loadCKIK(t *testing.T, name string) (ck, ik [16]byte) {
	t.Helper()
	for _, v := range vectors.Digest() {
		if v.Name == name && v.AKA != nil {
			return v.AKA.CK, v.AKA.IK
		}
	}
	t.Fatalf("vector %q not in internal/vectors", name)
	return
}

func TestExpandKeys(t *testing.T) {
	// MILENAGE test set 19 (TS 35.208): CK = 5349fbe0 98649f94 8f5d2e97 3a81c00f,
	// IK = 9744871a d32bf9bb d1dd5ce5 4e3e2e5a. The expected keys below are
	// written out by hand from the Annex I definitions.
	ck, ik := loadCKIK(t, "DERIVED AKAv1-MD5 qop=auth from MILENAGE test set 19")
	// The XOR-algorithm vector has CK and IK that differ in every byte
	// position from a shifted copy, which makes a swapped half visible.
	xck, xik := loadCKIK(t, "AKAv1-MD5, 3GPP XOR test algorithm (TS 34.108 8.1.2), RAND=0")
	tests := []struct {
		name         string
		ck, ik       [16]byte
		alg          ipsec.Auth
		ealg         ipsec.Enc
		wantA, wantE string
	}{
		{"md5/null", ck, ik, ipsec.AuthHMACMD596, ipsec.EncNull,
			"9744871ad32bf9bbd1dd5ce54e3e2e5a", ""},
		{"sha1/null: IK || 00000000", ck, ik, ipsec.AuthHMACSHA196, ipsec.EncNull,
			"9744871ad32bf9bbd1dd5ce54e3e2e5a" + "00000000", ""},
		{"md5/aes-cbc: CK", ck, ik, ipsec.AuthHMACMD596, ipsec.EncAESCBC,
			"9744871ad32bf9bbd1dd5ce54e3e2e5a", "5349fbe098649f948f5d2e973a81c00f"},
		{"sha1/des-ede3-cbc: CK1 || CK2 || CK1", ck, ik, ipsec.AuthHMACSHA196, ipsec.EncDES3EDECBC,
			"9744871ad32bf9bbd1dd5ce54e3e2e5a00000000",
			"5349fbe098649f94" + "8f5d2e973a81c00f" + "5349fbe098649f94"},
		{"absent ealg is null", ck, ik, ipsec.AuthHMACMD596, "",
			"9744871ad32bf9bbd1dd5ce54e3e2e5a", ""},
		{"XOR vector des-ede3-cbc", xck, xik, ipsec.AuthHMACMD596, ipsec.EncDES3EDECBC,
			"02030405060708090a0b0c0d0e0f0001",
			"0102030405060708" + "090a0b0c0d0e0f00" + "0102030405060708"},
		{"XOR vector sha1/aes-cbc", xck, xik, ipsec.AuthHMACSHA196, ipsec.EncAESCBC,
			"02030405060708090a0b0c0d0e0f0001" + "00000000",
			"0102030405060708090a0b0c0d0e0f00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, e, err := ExpandKeys(tt.alg, tt.ealg, tt.ck, tt.ik)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(a); got != tt.wantA {
				t.Errorf("auth key = %s, want %s", got, tt.wantA)
			}
			if got := hex.EncodeToString(e); got != tt.wantE {
				t.Errorf("enc key = %s, want %s", got, tt.wantE)
			}
			if tt.wantE == "" && e != nil {
				t.Errorf("enc key for null is %v, want nil", e)
			}
			// The keys are copies: changing them leaves CK and IK alone.
			for i := range a {
				a[i] ^= 0xff
			}
			for i := range e {
				e[i] ^= 0xff
			}
			a2, e2, _ := ExpandKeys(tt.alg, tt.ealg, tt.ck, tt.ik)
			if hex.EncodeToString(a2) != tt.wantA || hex.EncodeToString(e2) != tt.wantE {
				t.Error("returned keys alias CK or IK")
			}
		})
	}
}

func TestExpandKeysUnsupported(t *testing.T) {
	var ck, ik [16]byte
	for i := range ck {
		ck[i], ik[i] = 0xc0|byte(i), 0x10|byte(i)
	}
	for _, tt := range []struct {
		alg  ipsec.Auth
		ealg ipsec.Enc
		name string
	}{
		{"aes-gmac", ipsec.EncNull, "aes-gmac"},
		{"null", "aes-gcm", `"null"`},
		{ipsec.AuthHMACMD596, "aes-gcm", "aes-gcm"},
		{ipsec.AuthHMACMD596, "AES-CBC", "AES-CBC"},
		{"", ipsec.EncNull, `alg ""`},
	} {
		_, _, err := ExpandKeys(tt.alg, tt.ealg, ck, ik)
		if !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Fatalf("ExpandKeys(%q, %q) error = %v, want ErrUnsupportedAlgorithm", tt.alg, tt.ealg, err)
		}
		if !strings.Contains(err.Error(), tt.name) {
			t.Errorf("error %q does not name %s", err, tt.name)
		}
		// No key material in errors.
		if s := err.Error(); strings.Contains(s, "c0c1") || strings.Contains(s, "1011") {
			t.Errorf("error %q leaks key bytes", s)
		}
	}
}

// TestSupported: every pair of the TS 33.203 §6.3 integrity (hmac-md5-96,
// hmac-sha-1-96) and encryption (des-ede3-cbc, aes-cbc, null) algorithms is
// supported, and nothing else: Supported agrees with ExpandKeys and Offer.
func TestSupported(t *testing.T) {
	var ck, ik [16]byte
	auths := []ipsec.Auth{ipsec.AuthHMACMD596, ipsec.AuthHMACSHA196}
	encs := []ipsec.Enc{ipsec.EncDES3EDECBC, ipsec.EncAESCBC, ipsec.EncNull}
	for _, a := range auths {
		for _, e := range encs {
			if !Supported(a, e) {
				t.Errorf("Supported(%q, %q) = false", a, e)
			}
			if _, _, err := ExpandKeys(a, e, ck, ik); err != nil {
				t.Errorf("ExpandKeys(%q, %q): %v", a, e, err)
			}
			if _, err := Offer([]ipsec.Auth{a}, []ipsec.Enc{e}, Params{SPIc: 256, SPIs: 257, PortC: 1, PortS: 2}); err != nil {
				t.Errorf("Offer(%q, %q): %v", a, e, err)
			}
		}
	}
	for _, tt := range []struct {
		alg  ipsec.Auth
		ealg ipsec.Enc
		want bool
	}{
		{"HMAC-SHA-1-96", "AES-CBC", true}, // case-insensitive, as in the headers
		{"Hmac-Md5-96", "Des-Ede3-Cbc", true},
		{ipsec.AuthHMACMD596, "", true}, // absent ealg: null (Annex H)
		{ipsec.AuthHMACSHA196, "NULL", true},
		{"aes-gmac", ipsec.EncNull, false}, // needs the TS 33.220 salt KDF
		{"null", "aes-gcm", false},
		{ipsec.AuthHMACSHA196, "aes-gcm", false},
		{"hmac-sha-256", ipsec.EncNull, false},
		{"", ipsec.EncNull, false},
		{ipsec.AuthHMACMD596, "des-cbc", false},
		{"hmac-md5-96 ", ipsec.EncNull, false}, // no trimming: that is the caller's
	} {
		if got := Supported(tt.alg, tt.ealg); got != tt.want {
			t.Errorf("Supported(%q, %q) = %v, want %v", tt.alg, tt.ealg, got, tt.want)
		}
		_, err := Offer([]ipsec.Auth{tt.alg}, []ipsec.Enc{orEnc(tt.ealg)}, Params{SPIc: 256, SPIs: 257, PortC: 1, PortS: 2})
		if (err == nil) != tt.want {
			t.Errorf("Offer(%q, %q) error = %v, Supported says %v", tt.alg, tt.ealg, err, tt.want)
		}
	}
}
