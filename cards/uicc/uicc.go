// Package uicc holds the data formats of a UICC's files and commands that
// imsue reads and writes (ETSI TS 102 221, TS 31.102 USIM, TS 31.103 ISIM):
// EF.DIR records, the TLV strings of EF.IMPI/DOMAIN/IMPU, EF.IMSI, EF.AD,
// EF.IST, EF.P-CSCF, ICCID, the FCP template, the PIN block and the
// AUTHENTICATE command and response. It is pure (no I/O) so that the UE side
// (package cards) and the virtual UICC (cards/vcard) share one encoder and
// one decoder, both fuzzed.
//
// Decoders are defensive: every length is checked against the bytes present
// and a malformed file is an error naming the file, never a panic.
package uicc

import (
	"errors"
	"fmt"
)

// File identifiers (TS 102 221 §13, TS 31.102 §4.2, TS 31.103 §4.2).
const (
	FIDMF    uint16 = 0x3F00
	FIDADF   uint16 = 0x7FFF // the current application's ADF
	FIDDIR   uint16 = 0x2F00 // EF.DIR under the MF
	FIDICCID uint16 = 0x2FE2 // EF.ICCID under the MF

	FIDIMPI   uint16 = 0x6F02 // ISIM
	FIDDOMAIN uint16 = 0x6F03 // ISIM
	FIDIMPU   uint16 = 0x6F04 // ISIM
	FIDIST    uint16 = 0x6F07 // ISIM (the same FID is EF.IMSI in the USIM)
	FIDPCSCF  uint16 = 0x6F09 // ISIM
	FIDAD     uint16 = 0x6FAD // ISIM and USIM

	FIDIMSI uint16 = 0x6F07 // USIM
	FIDUST  uint16 = 0x6F38 // USIM
)

// Application codes after the 3GPP RID A000000087 (TS 101 220 Annex E).
var (
	RID3GPP    = []byte{0xA0, 0x00, 0x00, 0x00, 0x87}
	USIMPrefix = []byte{0xA0, 0x00, 0x00, 0x00, 0x87, 0x10, 0x02}
	ISIMPrefix = []byte{0xA0, 0x00, 0x00, 0x00, 0x87, 0x10, 0x04}
)

// ErrMalformed marks a file or response whose encoding does not parse.
var ErrMalformed = errors.New("malformed")

func malformed(what, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", what, ErrMalformed, fmt.Sprintf(format, args...))
}

// empty reports whether b is unused file content: all FF (or nothing).
func empty(b []byte) bool {
	for _, x := range b {
		if x != 0xFF {
			return false
		}
	}
	return true
}

// tlv is one BER-TLV data object.
type tlv struct {
	tag   uint16
	value []byte
}

// parseTLVs splits b into BER-TLV objects (ISO/IEC 7816-4 §5.2: one- or
// two-byte tags, lengths up to 82 XX XX). Padding bytes 00 and FF between
// objects end the list, as on cards where records are padded with FF.
func parseTLVs(b []byte) ([]tlv, error) {
	var out []tlv
	for len(b) > 0 {
		if b[0] == 0xFF || b[0] == 0x00 {
			break // padding; what follows it is not data
		}
		t := tlv{tag: uint16(b[0])}
		b = b[1:]
		if t.tag&0x1F == 0x1F {
			if len(b) == 0 {
				return nil, fmt.Errorf("tag %02X truncated", t.tag)
			}
			t.tag = t.tag<<8 | uint16(b[0])
			b = b[1:]
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("tag %X: no length", t.tag)
		}
		n := int(b[0])
		b = b[1:]
		switch {
		case n == 0x81:
			if len(b) < 1 {
				return nil, fmt.Errorf("tag %X: length truncated", t.tag)
			}
			n, b = int(b[0]), b[1:]
		case n == 0x82:
			if len(b) < 2 {
				return nil, fmt.Errorf("tag %X: length truncated", t.tag)
			}
			n, b = int(b[0])<<8|int(b[1]), b[2:]
		case n > 0x7F:
			return nil, fmt.Errorf("tag %X: length form %02X not supported", t.tag, n)
		}
		if n > len(b) {
			return nil, fmt.Errorf("tag %X: length %d but %d bytes left", t.tag, n, len(b))
		}
		t.value, b = b[:n:n], b[n:]
		out = append(out, t)
	}
	return out, nil
}

// appendTLV appends a TLV with a one-byte tag and a definite length.
func appendTLV(dst []byte, tag byte, v []byte) []byte {
	dst = append(dst, tag)
	switch n := len(v); {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n < 0x100:
		dst = append(dst, 0x81, byte(n))
	default:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	}
	return append(dst, v...)
}

// pad appends FF bytes to b up to size.
func pad(b []byte, size int) []byte {
	for len(b) < size {
		b = append(b, 0xFF)
	}
	return b
}
