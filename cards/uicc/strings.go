package uicc

import (
	"fmt"
	"net/netip"
	"unicode/utf8"
)

// ParseString decodes the content of EF.IMPI, EF.DOMAIN or one EF.IMPU
// record (TS 31.103 §4.2.2-4.2.4): a TLV with tag 80 holding a UTF-8 string,
// padded with FF. Unused content (all FF, or a zero-length TLV) is "".
func ParseString(ef string, b []byte) (string, error) {
	if empty(b) {
		return "", nil
	}
	tlvs, err := parseTLVs(b)
	if err != nil {
		return "", malformed(ef, "%v", err)
	}
	if len(tlvs) == 0 {
		return "", nil
	}
	if tlvs[0].tag != 0x80 {
		return "", malformed(ef, "tag %X, want 80", tlvs[0].tag)
	}
	v := tlvs[0].value
	if !utf8.Valid(v) {
		return "", malformed(ef, "value is not UTF-8")
	}
	for _, r := range string(v) {
		if r < 0x20 || r == 0x7F {
			return "", malformed(ef, "control character %U in value", r)
		}
	}
	return string(v), nil
}

// EncodeString encodes s as the 80-TLV of EF.IMPI, EF.DOMAIN or an EF.IMPU
// record, padded with FF to size bytes (size 0: no padding).
func EncodeString(ef, s string, size int) ([]byte, error) {
	b := appendTLV(nil, 0x80, []byte(s))
	if size > 0 && len(b) > size {
		return nil, fmt.Errorf("%s: %d bytes do not fit in %d", ef, len(b), size)
	}
	return pad(b, size), nil
}

// PCSCF is one record of the ISIM's EF.P-CSCF (TS 31.103 §4.2.8).
type PCSCF struct {
	Address string // FQDN, or an IPv4/IPv6 address in text form
}

// ParsePCSCF decodes an EF.P-CSCF record: 80 L, then the address type (00
// FQDN, 01 IPv4, 02 IPv6) and the address. An unused record gives ok ==
// false.
func ParsePCSCF(rec []byte) (p PCSCF, ok bool, err error) {
	const ef = "EF.P-CSCF record"
	if empty(rec) {
		return PCSCF{}, false, nil
	}
	tlvs, err := parseTLVs(rec)
	if err != nil {
		return PCSCF{}, false, malformed(ef, "%v", err)
	}
	if len(tlvs) == 0 || tlvs[0].tag != 0x80 {
		return PCSCF{}, false, malformed(ef, "no tag 80")
	}
	v := tlvs[0].value
	if len(v) < 1 {
		return PCSCF{}, false, malformed(ef, "no address type")
	}
	switch typ, addr := v[0], v[1:]; typ {
	case 0x00:
		if len(addr) == 0 || !utf8.Valid(addr) {
			return PCSCF{}, false, malformed(ef, "bad FQDN")
		}
		return PCSCF{Address: string(addr)}, true, nil
	case 0x01, 0x02:
		ip, ok := netip.AddrFromSlice(addr)
		if !ok || (typ == 0x01) != ip.Is4() {
			return PCSCF{}, false, malformed(ef, "address type %02X with %d bytes", typ, len(addr))
		}
		return PCSCF{Address: ip.String()}, true, nil
	default:
		return PCSCF{}, false, malformed(ef, "unknown address type %02X", typ)
	}
}

// EncodePCSCF encodes an EF.P-CSCF record for addr (an IP address or a
// FQDN), padded with FF to size bytes.
func EncodePCSCF(addr string, size int) ([]byte, error) {
	var v []byte
	if ip, err := netip.ParseAddr(addr); err == nil {
		if ip.Is4() {
			v = append([]byte{0x01}, ip.AsSlice()...)
		} else {
			v = append([]byte{0x02}, ip.AsSlice()...)
		}
	} else {
		v = append([]byte{0x00}, addr...)
	}
	b := appendTLV(nil, 0x80, v)
	if size > 0 && len(b) > size {
		return nil, fmt.Errorf("EF.P-CSCF: %d bytes do not fit in %d", len(b), size)
	}
	return pad(b, size), nil
}
