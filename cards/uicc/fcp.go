package uicc

import "fmt"

// File structures in the file descriptor byte (TS 102 221 §11.1.1.4.3).
const (
	StructTransparent = 0x01
	StructLinearFixed = 0x02
	StructCyclic      = 0x06
	structDF          = 0x38 // b6-b4 = 111: DF or ADF
)

// FCP is the part of a file control parameters template (tag 62) that imsue
// uses.
type FCP struct {
	DF         bool
	Structure  byte   // StructTransparent, StructLinearFixed ... (EFs)
	FID        uint16 // 0 when absent (an ADF)
	Size       int    // transparent EF: file size (tag 80)
	RecordLen  int    // record EF: record length
	NumRecords int    // record EF: number of records
}

// ParseFCP decodes an FCP template returned by SELECT with P2 = 04.
func ParseFCP(b []byte) (FCP, error) {
	const what = "FCP"
	tlvs, err := parseTLVs(b)
	if err != nil {
		return FCP{}, malformed(what, "%v", err)
	}
	if len(tlvs) == 0 || tlvs[0].tag != 0x62 {
		return FCP{}, malformed(what, "no template 62")
	}
	inner, err := parseTLVs(tlvs[0].value)
	if err != nil {
		return FCP{}, malformed(what, "template 62: %v", err)
	}
	var f FCP
	seen := false
	for _, t := range inner {
		v := t.value
		switch t.tag {
		case 0x82:
			if len(v) < 2 {
				return FCP{}, malformed(what, "file descriptor of %d bytes", len(v))
			}
			seen = true
			f.DF = v[0]&structDF == structDF
			if !f.DF {
				f.Structure = v[0] & 0x07
			}
			if f.Structure == StructLinearFixed || f.Structure == StructCyclic {
				if len(v) < 5 {
					return FCP{}, malformed(what, "record file descriptor of %d bytes, want 5", len(v))
				}
				f.RecordLen = int(v[2])<<8 | int(v[3])
				f.NumRecords = int(v[4])
			}
		case 0x83:
			if len(v) != 2 {
				return FCP{}, malformed(what, "file identifier of %d bytes", len(v))
			}
			f.FID = uint16(v[0])<<8 | uint16(v[1])
		case 0x80:
			if len(v) < 1 || len(v) > 4 {
				return FCP{}, malformed(what, "file size of %d bytes", len(v))
			}
			for _, x := range v {
				f.Size = f.Size<<8 | int(x)
			}
		}
	}
	if !seen {
		return FCP{}, malformed(what, "no file descriptor (tag 82)")
	}
	return f, nil
}

// EncodeFCP builds the FCP template of an EF (fid != 0) or an ADF (aid !=
// nil). Records and size describe the EF; the security attributes point at
// EF.ARR record 1 and the life cycle is "operational, activated".
func EncodeFCP(f FCP, aid []byte) ([]byte, error) {
	var in []byte
	switch {
	case f.DF:
		in = appendTLV(in, 0x82, []byte{0x78, 0x21})
	case f.Structure == StructTransparent:
		in = appendTLV(in, 0x82, []byte{0x41, 0x21})
	case f.Structure == StructLinearFixed:
		if f.RecordLen < 1 || f.RecordLen > 255 || f.NumRecords < 1 || f.NumRecords > 254 {
			return nil, fmt.Errorf("FCP: %d records of %d bytes", f.NumRecords, f.RecordLen)
		}
		in = appendTLV(in, 0x82, []byte{0x42, 0x21, 0x00, byte(f.RecordLen), byte(f.NumRecords)})
	default:
		return nil, fmt.Errorf("FCP: structure %d not supported", f.Structure)
	}
	if f.FID != 0 {
		in = appendTLV(in, 0x83, []byte{byte(f.FID >> 8), byte(f.FID)})
	}
	if aid != nil {
		in = appendTLV(in, 0x84, aid)
	}
	in = appendTLV(in, 0x8A, []byte{0x05})
	in = appendTLV(in, 0x8B, []byte{0x6F, 0x06, 0x01})
	if !f.DF {
		size := f.Size
		if f.Structure == StructLinearFixed {
			size = f.RecordLen * f.NumRecords
		}
		in = appendTLV(in, 0x80, []byte{byte(size >> 8), byte(size)})
	}
	return appendTLV(nil, 0x62, in), nil
}
