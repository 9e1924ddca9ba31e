package vectors

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// MilenageSet is one TS 35.208 (clause 4.3) MILENAGE test set, with values
// derived from it (testdata/milenage_vectors.json's derived_by_verifier).
type MilenageSet struct {
	Name   string // "TS 35.208 test set 1"
	Source string // where the set was copied from

	// Inputs.
	K    [16]byte // subscriber key
	OP   [16]byte // operator variant configuration field
	OPc  [16]byte // OP ⊕ E_K(OP), also an output
	RAND [16]byte
	SQN  [6]byte
	AMF  [2]byte

	// Outputs of f1..f5* (TS 35.206).
	MACA   [8]byte  // f1: MAC-A
	MACS   [8]byte  // f1*: MAC-S for the set's SQN and AMF
	RES    [8]byte  // f2
	CK     [16]byte // f3
	IK     [16]byte // f4
	AK     [6]byte  // f5
	AKStar [6]byte  // f5*

	// Derived from the set (derived_by_verifier; the file's notes say
	// how), not published in TS 35.208.
	AUTN     [16]byte // (SQN ⊕ AK) ‖ AMF ‖ MAC-A
	AUTS     [14]byte // AUTS for SQN_MS = SQN: (SQN ⊕ AK*) ‖ MAC-S with AMF 0000 (TS 33.102 §6.3.3)
	MACSAMF0 [8]byte  // f1* for the set's SQN with AMF 0000: the MAC-S inside AUTS
	// AUTHENTICATE (TS 31.103 §7.1.2.1, P2 81) for RAND and AUTN, and the
	// response data of an ISIM (no SW): success DB ‖ RES ‖ CK ‖ IK, and
	// synchronisation failure DC 0E ‖ AUTS.
	AuthCmd     []byte
	AuthRspOK   []byte
	AuthRspSync []byte
}

// ExtraKind says what an ExtraVector checks.
type ExtraKind int

const (
	// ExtraResync: AUTS for RAND opens to SQN_MS (SQNMS).
	ExtraResync ExtraKind = iota + 1
	// ExtraChallenge: SQN, AMF and RAND give AUTN, RES, CK and IK.
	ExtraChallenge
	// ExtraOPc: OP gives OPc.
	ExtraOPc
)

func (k ExtraKind) String() string {
	switch k {
	case ExtraResync:
		return "resync"
	case ExtraChallenge:
		return "challenge"
	case ExtraOPc:
		return "OPc"
	}
	return fmt.Sprintf("ExtraKind(%d)", int(k))
}

// ExtraVector is one of the extra (libosmocore) vectors. K and OPc are
// always set; the other fields only for the Kind that lists them.
type ExtraVector struct {
	Name   string
	Source string
	Note   string
	Kind   ExtraKind

	K, OPc [16]byte

	OP [16]byte // ExtraOPc

	RAND [16]byte // ExtraResync, ExtraChallenge

	AUTS  [14]byte // ExtraResync
	SQNMS [6]byte  // ExtraResync: SQN_MS inside AUTS

	SQN  [6]byte  // ExtraChallenge
	AMF  [2]byte  // ExtraChallenge
	AUTN [16]byte // ExtraChallenge
	RES  [8]byte  // ExtraChallenge
	CK   [16]byte // ExtraChallenge
	IK   [16]byte // ExtraChallenge
}

const milenageFile = "milenage_vectors.json"

// milenageDoc is milenage_vectors.json as it is written.
type milenageDoc struct {
	Description string          `json:"description"`
	Algorithm   json.RawMessage `json:"algorithm"` // the TS 35.206 definitions, as prose
	Notes       []string        `json:"notes"`
	Sources     json.RawMessage `json:"sources"`
	TestSets    []struct {
		Name     string `json:"name"`
		Source   string `json:"source"`
		Verified bool   `json:"verified_by_own_go_milenage"`
		K        string `json:"K"`
		OP       string `json:"OP"`
		OPc      string `json:"OPc"`
		RAND     string `json:"RAND"`
		SQN      string `json:"SQN"`
		AMF      string `json:"AMF"`
		MACA     string `json:"f1_MAC_A"`
		MACS     string `json:"f1star_MAC_S"`
		RES      string `json:"f2_RES"`
		CK       string `json:"f3_CK"`
		IK       string `json:"f4_IK"`
		AK       string `json:"f5_AK"`
		AKStar   string `json:"f5star_AKstar"`
		Derived  struct {
			AUTN     string `json:"AUTN"`
			AUTS     string `json:"AUTS_if_SQN_MS_equals_SQN"`
			MACSAMF0 string `json:"MAC_S_with_AMF_0000"`
			Cmd      string `json:"AUTHENTICATE_cmd_APDU"`
			RspOK    string `json:"AUTHENTICATE_rsp_success_ISIM"`
			RspSync  string `json:"AUTHENTICATE_rsp_syncfail"`
		} `json:"derived_by_verifier"`
	} `json:"test_sets"`
	Extra []struct {
		Name   string  `json:"name"`
		Source string  `json:"source"`
		Note   string  `json:"note"`
		K      string  `json:"K"`
		OPc    string  `json:"OPc"`
		OP     *string `json:"OP"`
		RAND   *string `json:"RAND"`
		AUTS   *string `json:"AUTS"`
		SQNMS  *string `json:"expected_SQN_MS"`
		SQN    *string `json:"SQN"`
		AMF    *string `json:"AMF"`
		AUTN   *string `json:"AUTN"`
		RES    *string `json:"RES"`
		CK     *string `json:"CK"`
		IK     *string `json:"IK"`
	} `json:"extra_vectors"`
}

func decodeMilenage(data []byte) ([]MilenageSet, []ExtraVector, error) {
	var doc milenageDoc
	if err := unmarshalStrict(milenageFile, data, &doc); err != nil {
		return nil, nil, err
	}
	sets := make([]MilenageSet, 0, len(doc.TestSets))
	for i, r := range doc.TestSets {
		f := newFields(milenageFile, "test_sets", i, r.Name)
		s := MilenageSet{Name: f.text("name", r.Name), Source: r.Source}
		f.fixed(s.K[:], "K", r.K)
		f.fixed(s.OP[:], "OP", r.OP)
		f.fixed(s.OPc[:], "OPc", r.OPc)
		f.fixed(s.RAND[:], "RAND", r.RAND)
		f.fixed(s.SQN[:], "SQN", r.SQN)
		f.fixed(s.AMF[:], "AMF", r.AMF)
		f.fixed(s.MACA[:], "f1_MAC_A", r.MACA)
		f.fixed(s.MACS[:], "f1star_MAC_S", r.MACS)
		f.fixed(s.RES[:], "f2_RES", r.RES)
		f.fixed(s.CK[:], "f3_CK", r.CK)
		f.fixed(s.IK[:], "f4_IK", r.IK)
		f.fixed(s.AK[:], "f5_AK", r.AK)
		f.fixed(s.AKStar[:], "f5star_AKstar", r.AKStar)
		d := r.Derived
		f.fixed(s.AUTN[:], "derived_by_verifier.AUTN", d.AUTN)
		f.fixed(s.AUTS[:], "derived_by_verifier.AUTS_if_SQN_MS_equals_SQN", d.AUTS)
		f.fixed(s.MACSAMF0[:], "derived_by_verifier.MAC_S_with_AMF_0000", d.MACSAMF0)
		// The shortest possible: a 5-byte header for the command, a
		// 2-byte tag and length for the responses.
		s.AuthCmd = f.bytes("derived_by_verifier.AUTHENTICATE_cmd_APDU", d.Cmd, 5)
		s.AuthRspOK = f.bytes("derived_by_verifier.AUTHENTICATE_rsp_success_ISIM", d.RspOK, 2)
		s.AuthRspSync = f.bytes("derived_by_verifier.AUTHENTICATE_rsp_syncfail", d.RspSync, 2)
		if f.err != nil {
			return nil, nil, f.err
		}
		sets = append(sets, s)
	}

	extra := make([]ExtraVector, 0, len(doc.Extra))
	for i, r := range doc.Extra {
		f := newFields(milenageFile, "extra_vectors", i, r.Name)
		e := ExtraVector{Name: f.text("name", r.Name), Source: r.Source, Note: r.Note}
		f.fixed(e.K[:], "K", r.K)
		f.fixed(e.OPc[:], "OPc", r.OPc)
		// What a vector checks follows from its fields, and every field
		// must belong to that kind, so that none is silently left unchecked.
		var want []string
		switch {
		case r.OP != nil:
			e.Kind, want = ExtraOPc, []string{"OP"}
		case r.AUTS != nil:
			e.Kind, want = ExtraResync, []string{"RAND", "AUTS", "expected_SQN_MS"}
		case r.AUTN != nil:
			e.Kind, want = ExtraChallenge, []string{"RAND", "SQN", "AMF", "AUTN", "RES", "CK", "IK"}
		default:
			f.fail("OP/AUTS/AUTN", errors.New("none given: cannot tell what the vector checks"))
		}
		for _, o := range []struct {
			name string
			s    *string
			dst  []byte
		}{
			{"OP", r.OP, e.OP[:]}, {"RAND", r.RAND, e.RAND[:]}, {"AUTS", r.AUTS, e.AUTS[:]},
			{"expected_SQN_MS", r.SQNMS, e.SQNMS[:]}, {"SQN", r.SQN, e.SQN[:]}, {"AMF", r.AMF, e.AMF[:]},
			{"AUTN", r.AUTN, e.AUTN[:]}, {"RES", r.RES, e.RES[:]}, {"CK", r.CK, e.CK[:]}, {"IK", r.IK, e.IK[:]},
		} {
			switch needed := slices.Contains(want, o.name); {
			case e.Kind == 0:
			case needed && o.s == nil:
				f.fail(o.name, fmt.Errorf("%w (kind %v needs it)", errMissing, e.Kind))
			case !needed && o.s != nil:
				f.fail(o.name, fmt.Errorf("does not belong to kind %v", e.Kind))
			default:
				f.optFixed(o.dst, o.name, o.s)
			}
		}
		if f.err != nil {
			return nil, nil, f.err
		}
		extra = append(extra, e)
	}
	return sets, extra, nil
}
