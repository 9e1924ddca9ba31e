package uicc

import (
	"fmt"

	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/isim"
)

// AUTHENTICATE parameters (TS 31.102 §7.1.2, TS 31.103 §7.1.2).
const (
	InsAuthenticate = 0x88
	// P2Auth3G selects the 3G security context on the USIM and the IMS AKA
	// context on the ISIM (P2 = 81: b8 set = specific reference data).
	P2Auth3G = 0x81
)

// Response tags of AUTHENTICATE in the 3G/IMS context.
const (
	tagAuthOK   = 0xDB
	tagAuthSync = 0xDC
)

// AuthenticateCommand builds 00 88 00 81 22 10 RAND 10 AUTN 00 on the
// logical channel of cla.
func AuthenticateCommand(cla byte, rand isim.RAND, autn isim.AUTN, buf *[34]byte) apdu.Command {
	buf[0] = 16
	copy(buf[1:17], rand[:])
	buf[17] = 16
	copy(buf[18:34], autn[:])
	return apdu.Command{CLA: cla, INS: InsAuthenticate, P1: 0x00, P2: P2Auth3G, Data: buf[:], Ne: apdu.MaxNe}
}

// ParseAuthenticateData decodes the command data of AUTHENTICATE in the
// 3G/IMS context: L RAND L AUTN, both 16 bytes.
func ParseAuthenticateData(d []byte) (rand isim.RAND, autn isim.AUTN, err error) {
	if len(d) != 34 || d[0] != 16 || d[17] != 16 {
		return rand, autn, malformed("AUTHENTICATE data", "want 10 RAND 10 AUTN (34 bytes), got %d bytes", len(d))
	}
	copy(rand[:], d[1:17])
	copy(autn[:], d[18:34])
	return rand, autn, nil
}

// AuthResult is a decoded AUTHENTICATE response: either a success (Result)
// or a synchronisation failure (Sync != nil).
type AuthResult struct {
	Result isim.Result
	Kc     []byte // USIM only, when GSM access is available; imsue ignores it
	Sync   *isim.SyncFailure
}

// ParseAuthenticateResponse decodes the response data of AUTHENTICATE in
// the 3G/IMS context: DB L RES L CK L IK [L Kc] on success, DC 0E AUTS on a
// synchronisation failure. RES is 4 to 16 bytes, CK and IK 16, Kc 8; any
// other length, or bytes left over, is malformed.
func ParseAuthenticateResponse(d []byte) (AuthResult, error) {
	const what = "AUTHENTICATE response"
	if len(d) == 0 {
		return AuthResult{}, malformed(what, "no data")
	}
	switch d[0] {
	case tagAuthSync:
		if len(d) != 16 || d[1] != 14 {
			return AuthResult{}, malformed(what, "sync failure: want DC 0E AUTS (16 bytes), got %d bytes", len(d))
		}
		sf := &isim.SyncFailure{}
		copy(sf.AUTS[:], d[2:])
		return AuthResult{Sync: sf}, nil
	case tagAuthOK:
	default:
		return AuthResult{}, malformed(what, "tag %02X, want DB or DC", d[0])
	}
	rest := d[1:]
	field := func(name string, min, max int) ([]byte, error) {
		if len(rest) == 0 {
			return nil, malformed(what, "%s missing", name)
		}
		n := int(rest[0])
		if n < min || n > max {
			return nil, malformed(what, "%s of %d bytes, want %d to %d", name, n, min, max)
		}
		if 1+n > len(rest) {
			return nil, malformed(what, "%s of %d bytes, only %d left", name, n, len(rest)-1)
		}
		v := rest[1 : 1+n]
		rest = rest[1+n:]
		return v, nil
	}
	var r AuthResult
	res, err := field("RES", 4, 16)
	if err != nil {
		return AuthResult{}, err
	}
	ck, err := field("CK", 16, 16)
	if err != nil {
		return AuthResult{}, err
	}
	ik, err := field("IK", 16, 16)
	if err != nil {
		return AuthResult{}, err
	}
	if len(rest) > 0 {
		kc, err := field("Kc", 8, 8)
		if err != nil {
			return AuthResult{}, err
		}
		r.Kc = append([]byte(nil), kc...)
		if len(rest) > 0 {
			return AuthResult{}, malformed(what, "%d bytes after Kc", len(rest))
		}
	}
	r.Result.RES = append([]byte(nil), res...)
	copy(r.Result.CK[:], ck)
	copy(r.Result.IK[:], ik)
	return r, nil
}

// AppendAuthenticateSuccess appends DB L RES 10 CK 10 IK, and 08 Kc when kc
// is not nil (the USIM 3G context with GSM access).
func AppendAuthenticateSuccess(dst []byte, r *isim.Result, kc []byte) ([]byte, error) {
	if len(r.RES) < 4 || len(r.RES) > 16 {
		return dst, fmt.Errorf("AUTHENTICATE: RES of %d bytes, want 4 to 16", len(r.RES))
	}
	dst = append(dst, tagAuthOK, byte(len(r.RES)))
	dst = append(dst, r.RES...)
	dst = append(dst, 16)
	dst = append(dst, r.CK[:]...)
	dst = append(dst, 16)
	dst = append(dst, r.IK[:]...)
	if kc != nil {
		if len(kc) != 8 {
			return dst, fmt.Errorf("AUTHENTICATE: Kc of %d bytes, want 8", len(kc))
		}
		dst = append(dst, 8)
		dst = append(dst, kc...)
	}
	return dst, nil
}

// AppendAuthenticateSync appends DC 0E AUTS.
func AppendAuthenticateSync(dst []byte, auts *isim.AUTS) []byte {
	dst = append(dst, tagAuthSync, 14)
	return append(dst, auts[:]...)
}

// KcFromCKIK is the conversion function c3 of TS 33.102 §6.8.1.2: the GSM
// cipher key a USIM returns along with CK and IK.
func KcFromCKIK(ck, ik *[16]byte) [8]byte {
	var kc [8]byte
	for i := range kc {
		kc[i] = ck[i] ^ ck[i+8] ^ ik[i] ^ ik[i+8]
	}
	return kc
}
