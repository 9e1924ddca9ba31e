package uicc

import (
	"fmt"
	"strings"
)

// DecodeIMSI decodes EF.IMSI (TS 31.102 §4.2.2): a length byte, then the
// digits in BCD, low nibble first, after a first nibble that says "IMSI" and
// whether the digit count is odd.
func DecodeIMSI(b []byte) (string, error) {
	const ef = "EF.IMSI"
	if len(b) < 2 || empty(b) {
		return "", malformed(ef, "empty")
	}
	n := int(b[0])
	if n < 1 || n > 8 || 1+n > len(b) {
		return "", malformed(ef, "length byte %d with %d bytes", n, len(b)-1)
	}
	b = b[1 : 1+n]
	if b[0]&0x07 != 0x01 {
		return "", malformed(ef, "identity type %d, want 1 (IMSI)", b[0]&0x07)
	}
	odd := b[0]&0x08 != 0
	nib := make([]byte, 0, 2*n)
	nib = append(nib, b[0]>>4)
	for _, x := range b[1:] {
		nib = append(nib, x&0x0F, x>>4)
	}
	digits, err := bcdDigits(ef, nib)
	if err != nil {
		return "", err
	}
	if digits == "" {
		return "", malformed(ef, "no digits")
	}
	if (len(digits)%2 == 1) != odd {
		return "", malformed(ef, "parity bit says odd=%v but %d digits", odd, len(digits))
	}
	return digits, nil
}

// bcdDigits turns BCD nibbles into digits up to the first F filler, which
// must pad the rest; ef names the file in errors.
func bcdDigits(ef string, nib []byte) (string, error) {
	var sb strings.Builder
	for i, d := range nib {
		if d == 0x0F {
			if !empty2(nib[i:]) {
				return "", malformed(ef, "digit after filler")
			}
			break
		}
		if d > 9 {
			return "", malformed(ef, "nibble %X is not a digit", d)
		}
		sb.WriteByte('0' + d)
	}
	return sb.String(), nil
}

func empty2(nibbles []byte) bool {
	for _, d := range nibbles {
		if d != 0x0F {
			return false
		}
	}
	return true
}

// EncodeIMSI encodes imsi (1 to 15 digits) as the 9 bytes of EF.IMSI.
func EncodeIMSI(imsi string) ([]byte, error) {
	if len(imsi) < 1 || len(imsi) > 15 {
		return nil, fmt.Errorf("EF.IMSI: %d digits, want 1 to 15", len(imsi))
	}
	nib := make([]byte, 0, 16)
	first := byte(0x01)
	if len(imsi)%2 == 1 {
		first |= 0x08
	}
	nib = append(nib, first)
	for i := 0; i < len(imsi); i++ {
		c := imsi[i]
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("EF.IMSI: character %q at %d is not a digit", c, i+1)
		}
		nib = append(nib, c-'0')
	}
	if len(nib)%2 == 1 {
		nib = append(nib, 0x0F)
	}
	out := make([]byte, 9)
	for i := range out {
		out[i] = 0xFF
	}
	out[0] = byte(len(nib) / 2)
	for i := 0; i < len(nib); i += 2 {
		out[1+i/2] = nib[i] | nib[i+1]<<4
	}
	return out, nil
}

// DecodeICCID decodes EF.ICCID (TS 102 221 §13.2): BCD digits, low nibble
// first, padded with F.
func DecodeICCID(b []byte) (string, error) {
	const ef = "EF.ICCID"
	nib := make([]byte, 0, 2*len(b))
	for _, x := range b {
		nib = append(nib, x&0x0F, x>>4)
	}
	digits, err := bcdDigits(ef, nib)
	if err != nil {
		return "", err
	}
	if digits == "" {
		return "", malformed(ef, "empty")
	}
	return digits, nil
}

// EncodeICCID encodes up to 20 digits as the 10 bytes of EF.ICCID.
func EncodeICCID(iccid string) ([]byte, error) {
	if len(iccid) < 1 || len(iccid) > 20 {
		return nil, fmt.Errorf("EF.ICCID: %d digits, want 1 to 20", len(iccid))
	}
	out := make([]byte, 10)
	for i := range out {
		out[i] = 0xFF
	}
	for i := 0; i < len(iccid); i++ {
		c := iccid[i]
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("EF.ICCID: character %q at %d is not a digit", c, i+1)
		}
		if i%2 == 0 {
			out[i/2] = 0xF0 | (c - '0')
		} else {
			out[i/2] = out[i/2]&0x0F | (c-'0')<<4
		}
	}
	return out, nil
}

// AD is EF.AD, the administrative data (TS 31.102 §4.2.18).
type AD struct {
	OperationMode byte // 00 normal; 80 type approval; 01..04 test modes
	MNCLength     int  // digits of the MNC in the IMSI (2 or 3); 0 when absent
}

// ParseAD decodes EF.AD: byte 1 is the UE operation mode, byte 4 (when
// present) gives the MNC length in its low nibble.
func ParseAD(b []byte) (AD, error) {
	if len(b) < 3 {
		return AD{}, malformed("EF.AD", "%d bytes, need at least 3", len(b))
	}
	ad := AD{OperationMode: b[0]}
	if len(b) >= 4 && b[3] != 0xFF {
		ad.MNCLength = int(b[3] & 0x0F)
		if ad.MNCLength != 2 && ad.MNCLength != 3 {
			return AD{}, malformed("EF.AD", "MNC length %d, want 2 or 3", ad.MNCLength)
		}
	}
	return ad, nil
}

// EncodeAD encodes EF.AD with normal operation and the MNC length.
func EncodeAD(mncLength int) []byte {
	return []byte{0x00, 0x00, 0x00, byte(mncLength)}
}

// Services returns the numbers of the services a service table (EF.IST,
// EF.UST) marks available: service n is bit (n-1) mod 8 of byte (n-1)/8.
func Services(table []byte) []int {
	var s []int
	for i, x := range table {
		for bit := 0; bit < 8; bit++ {
			if x&(1<<bit) != 0 {
				s = append(s, 8*i+bit+1)
			}
		}
	}
	return s
}

// EncodeServices builds a service table of size bytes with the given
// services available.
func EncodeServices(size int, services ...int) ([]byte, error) {
	t := make([]byte, size)
	for _, n := range services {
		if n < 1 || n > 8*size {
			return nil, fmt.Errorf("service %d does not fit in %d bytes", n, size)
		}
		t[(n-1)/8] |= 1 << ((n - 1) % 8)
	}
	return t, nil
}

// ISIMServiceName names the services of EF.IST (TS 31.103 §4.2.7) that
// imsue reports; others are shown by number.
func ISIMServiceName(n int) string {
	switch n {
	case 1:
		return "P-CSCF address"
	case 2:
		return "GBA"
	case 3:
		return "HTTP Digest"
	}
	return fmt.Sprintf("service %d", n)
}

// PINBlock encodes a PIN for VERIFY (TS 102 221 §9.5.1): 4 to 8 ASCII digits
// padded with FF to 8 bytes.
func PINBlock(pin []byte) ([8]byte, error) {
	var blk [8]byte
	if len(pin) < 4 || len(pin) > 8 {
		return blk, fmt.Errorf("PIN: %d characters, want 4 to 8 digits", len(pin))
	}
	for i := range blk {
		blk[i] = 0xFF
	}
	for i, c := range pin {
		if c < '0' || c > '9' {
			return [8]byte{}, fmt.Errorf("PIN: character %d is not a digit", i+1)
		}
		blk[i] = c
	}
	return blk, nil
}
