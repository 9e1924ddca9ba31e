package mt

import (
	"fmt"

	"github.com/imsue/imsue/ipsec"
)

// ExpandKeys derives the ESP integrity and encryption keys from CK and IK
// per TS 33.203 Annex I. encKey is nil for null.
//
//	hmac-md5-96   IK_ESP = IK                     (16 bytes)
//	hmac-sha-1-96 IK_ESP = IK ‖ 0x00000000         (20 bytes)
//	aes-cbc       CK_ESP = CK                     (16 bytes)
//	des-ede3-cbc  CK_ESP = CK1 ‖ CK2 ‖ CK1         (24 bytes, CK = CK1 ‖ CK2)
//	null          no key
//
// The DES parity bits are left as they come out of CK: DES ignores them, and
// the Linux kernel, Kamailio and OpenSIPS all install CK1‖CK2‖CK1 unchanged,
// so adjusting parity would only create a key the peer does not share
// byte for byte. Anything else (aes-gcm and aes-gmac need the TS 33.220
// salt KDF; alg=null only goes with aes-gcm) → ErrUnsupportedAlgorithm.
//
// The returned slices are new; the caller owns them and should zero them
// when the SAs are gone. Errors name the algorithm, never the keys.
func ExpandKeys(alg ipsec.Auth, ealg ipsec.Enc, ck, ik [16]byte) (authKey, encKey []byte, err error) {
	switch alg {
	case ipsec.AuthHMACMD596:
		authKey = append(make([]byte, 0, 16), ik[:]...)
	case ipsec.AuthHMACSHA196:
		authKey = make([]byte, 20) // last 4 bytes stay zero
		copy(authKey, ik[:])
	default:
		return nil, nil, fmt.Errorf("mt: alg %q: %w", alg, ErrUnsupportedAlgorithm)
	}
	switch ealg {
	case ipsec.EncNull, "":
	case ipsec.EncAESCBC:
		encKey = append(make([]byte, 0, 16), ck[:]...)
	case ipsec.EncDES3EDECBC:
		encKey = make([]byte, 0, 24)
		encKey = append(encKey, ck[:]...)
		encKey = append(encKey, ck[:8]...)
	default:
		return nil, nil, fmt.Errorf("mt: ealg %q: %w", ealg, ErrUnsupportedAlgorithm)
	}
	return authKey, encKey, nil
}

// Supported reports whether the MT can protect traffic with the pair
// (alg, ealg): whether TS 33.203 Annex I defines the ESP keys of both, as
// ExpandKeys derives them. Those are the integrity algorithms hmac-md5-96
// and hmac-sha-1-96 and the encryption algorithms des-ede3-cbc, aes-cbc and
// null of TS 33.203 §6.3 and Annex H, in any combination; aes-gmac, aes-gcm
// and alg=null (later releases) are not. Names are compared
// case-insensitively, as in the Security-* headers, and an empty ealg is
// null, as an absent ealg parameter is (Annex H).
func Supported(alg ipsec.Auth, ealg ipsec.Enc) bool {
	return supportedAuth(normAuth(string(alg))) && supportedEnc(normEnc(string(orEnc(ealg))))
}

func supportedAuth(a ipsec.Auth) bool {
	return a == ipsec.AuthHMACMD596 || a == ipsec.AuthHMACSHA196
}

func supportedEnc(e ipsec.Enc) bool {
	return e == ipsec.EncNull || e == ipsec.EncAESCBC || e == ipsec.EncDES3EDECBC
}
