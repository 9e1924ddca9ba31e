package vectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// UICCVectors is uicc_vectors.json: pySim's encodings of ISIM/USIM files,
// the application identifiers, and TS 23.003 §13 identities derived from
// IMSIs.
type UICCVectors struct {
	EFs        []EFVector
	AIDs       AIDs
	Identities []IdentityVector
}

// EFVector is one pySim test encoding of a file's contents or record.
// Which decoded fields are set depends on the file, as the comments say.
type EFVector struct {
	EF     string // the file and its structure, as pySim's table names it: "ISIM EF.IMPI (6F02, transparent)"
	Raw    []byte // the contents
	Layout string // a note on the layout, or ""

	// Text is the decoded value of EF.IMPI (the NAI), EF.DOMAIN, EF.IMPU,
	// EF.P-CSCF (the address) and EF.IMSI (the digits).
	Text string
	// AddressType is EF.P-CSCF's type of address: 0 FQDN, 1 IPv4, 2 IPv6.
	AddressType byte

	// EF.DIR: the application's AID (tag 4F) and label (tag 50), and
	// whether the record also carries a discretionary template (tag 73),
	// which pySim does not decode.
	AID           []byte
	Label         string
	Discretionary bool
}

// AIDs are the application identifier parts of TS 101 220 for 3GPP.
type AIDs struct {
	RID         []byte // A000000087: 3GPP
	USIMAppCode []byte
	ISIMAppCode []byte
	USIMPrefix  []byte // RID ‖ USIM application code
	ISIMPrefix  []byte // RID ‖ ISIM application code
}

// IdentityVector is a TS 23.003 §13 derivation from an IMSI: the home
// network domain, the private identity and the temporary public identity.
type IdentityVector struct {
	IMSI      string
	MNCLength int // the MNC length EF.AD gives
	Domain    string
	IMPI      string
	TempIMPU  string
}

const uiccFile = "uicc_vectors.json"

// uiccDoc is uicc_vectors.json as it is written.
type uiccDoc struct {
	Description string          `json:"description"`
	Sources     json.RawMessage `json:"sources"`
	APDUs       json.RawMessage `json:"apdus"` // the command layouts, as prose
	EFs         []struct {
		EF      string            `json:"ef"`
		Hex     string            `json:"hex"`
		Layout  string            `json:"layout"`
		Decoded map[string]string `json:"decoded"`
	} `json:"ef_encodings_from_pysim_tests"`
	AIDs struct {
		RID         string `json:"RID"`
		USIMAppCode string `json:"USIM_app_code"`
		ISIMAppCode string `json:"ISIM_app_code"`
		USIMPrefix  string `json:"USIM_AID_prefix"`
		ISIMPrefix  string `json:"ISIM_AID_prefix"`
		Note        string `json:"note"`
	} `json:"aids"`
	Identities []struct {
		IMSI      string `json:"IMSI"`
		MNCLength int    `json:"MNC_length_from_EF_AD"`
		Domain    string `json:"home_network_domain"`
		IMPI      string `json:"IMPI"`
		TempIMPU  string `json:"temporary_IMPU"`
	} `json:"imsi_derived_identities_TS_23_003_clause_13"`
}

func decodeUICC(data []byte) (UICCVectors, error) {
	var doc uiccDoc
	if err := unmarshalStrict(uiccFile, data, &doc); err != nil {
		return UICCVectors{}, err
	}
	var out UICCVectors
	for i, r := range doc.EFs {
		f := newFields(uiccFile, "ef_encodings_from_pysim_tests", i, r.EF)
		e := EFVector{EF: f.text("ef", r.EF), Layout: r.Layout}
		e.Raw = f.bytes("hex", f.text("hex", r.Hex), 1)
		for _, key := range slices.Sorted(maps.Keys(r.Decoded)) { // the first error is always the same one
			val, field := r.Decoded[key], "decoded."+key
			switch key {
			case "nai", "domain", "impu", "address", "imsi":
				if e.Text != "" {
					f.fail(field, errors.New("a second decoded value"))
				}
				e.Text = f.text(field, val)
			case "type_of_address": // "FQDN(00)", "IPv4(01)", "IPv6(02)"
				i := strings.IndexByte(val, '(')
				if i < 0 || !strings.HasSuffix(val, ")") {
					f.fail(field, errors.New("want NAME(xx)"))
					break
				}
				var t [1]byte
				f.fixed(t[:], field, val[i+1:len(val)-1])
				e.AddressType = t[0]
			case "4F_AID":
				e.AID = f.bytes(field, val, 5) // RID at least
			case "50_label":
				e.Label = f.text(field, val)
			case "73":
				e.Discretionary = true
			default:
				f.fail(field, errors.New("unknown decoded field"))
			}
		}
		if e.Text == "" && e.AID == nil {
			f.fail("decoded", fmt.Errorf("%w: no value to check the encoding against", errMissing))
		}
		if f.err != nil {
			return UICCVectors{}, f.err
		}
		out.EFs = append(out.EFs, e)
	}

	f := &fields{where: uiccFile + " aids"}
	a := doc.AIDs
	out.AIDs = AIDs{
		RID:         f.bytes("RID", f.text("RID", a.RID), 5),
		USIMAppCode: f.bytes("USIM_app_code", f.text("USIM_app_code", a.USIMAppCode), 2),
		ISIMAppCode: f.bytes("ISIM_app_code", f.text("ISIM_app_code", a.ISIMAppCode), 2),
		USIMPrefix:  f.bytes("USIM_AID_prefix", f.text("USIM_AID_prefix", a.USIMPrefix), 7),
		ISIMPrefix:  f.bytes("ISIM_AID_prefix", f.text("ISIM_AID_prefix", a.ISIMPrefix), 7),
	}
	// The prefixes are the concatenations the file says they are.
	if !bytes.Equal(out.AIDs.USIMPrefix, slices.Concat(out.AIDs.RID, out.AIDs.USIMAppCode)) {
		f.fail("USIM_AID_prefix", errors.New("is not RID ‖ USIM_app_code"))
	}
	if !bytes.Equal(out.AIDs.ISIMPrefix, slices.Concat(out.AIDs.RID, out.AIDs.ISIMAppCode)) {
		f.fail("ISIM_AID_prefix", errors.New("is not RID ‖ ISIM_app_code"))
	}
	if f.err != nil {
		return UICCVectors{}, f.err
	}

	for i, r := range doc.Identities {
		f := newFields(uiccFile, "imsi_derived_identities_TS_23_003_clause_13", i, r.IMSI)
		id := IdentityVector{
			IMSI: f.text("IMSI", r.IMSI), MNCLength: r.MNCLength,
			Domain: f.text("home_network_domain", r.Domain), IMPI: f.text("IMPI", r.IMPI),
			TempIMPU: f.text("temporary_IMPU", r.TempIMPU),
		}
		if r.MNCLength != 2 && r.MNCLength != 3 {
			f.fail("MNC_length_from_EF_AD", fmt.Errorf("%d, want 2 or 3", r.MNCLength))
		}
		if f.err != nil {
			return UICCVectors{}, f.err
		}
		out.Identities = append(out.Identities, id)
	}
	return out, nil
}
