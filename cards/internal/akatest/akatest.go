// Package akatest gives the card tests their AKA material: the TS 35.208
// sets of milenage_vectors.json (each test package keeps its own copy in
// testdata/), a software ISIM over a memory store, and fresh challenges.
package akatest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
)

// Set is one MILENAGE test set with what a card must answer to its RAND.
type Set struct {
	Name       string
	K, OPc     [16]byte
	RAND       isim.RAND
	RES        []byte
	CK, IK     [16]byte
	AUTHCmd    []byte // AUTHENTICATE APDU for the set's own SQN/AMF
	AUTHRspOK  []byte
	AUTHRspSF  []byte
	AUTNOfSet  isim.AUTN
	AUTSForSQN isim.AUTS
}

// Load reads the test sets of a milenage_vectors.json.
func Load(path string) ([]Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v struct {
		TestSets []struct {
			Name    string `json:"name"`
			K       string `json:"K"`
			OPc     string `json:"OPc"`
			RAND    string `json:"RAND"`
			RES     string `json:"f2_RES"`
			CK      string `json:"f3_CK"`
			IK      string `json:"f4_IK"`
			Derived struct {
				AUTN  string `json:"AUTN"`
				AUTS  string `json:"AUTS_if_SQN_MS_equals_SQN"`
				Cmd   string `json:"AUTHENTICATE_cmd_APDU"`
				RspOK string `json:"AUTHENTICATE_rsp_success_ISIM"`
				RspSF string `json:"AUTHENTICATE_rsp_syncfail"`
			} `json:"derived_by_verifier"`
		} `json:"test_sets"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var sets []Set
	for _, t := range v.TestSets {
		s := Set{Name: t.Name}
		var errs []error
		fixed := func(dst []byte, h string) {
			b, err := hex.DecodeString(h)
			if err == nil && len(b) != len(dst) {
				err = fmt.Errorf("%d bytes, want %d", len(b), len(dst))
			}
			errs = append(errs, err)
			copy(dst, b)
		}
		fixed(s.K[:], t.K)
		fixed(s.OPc[:], t.OPc)
		fixed(s.RAND[:], t.RAND)
		fixed(s.CK[:], t.CK)
		fixed(s.IK[:], t.IK)
		fixed(s.AUTNOfSet[:], t.Derived.AUTN)
		fixed(s.AUTSForSQN[:], t.Derived.AUTS)
		var err error
		s.RES, err = hex.DecodeString(t.RES)
		errs = append(errs, err)
		s.AUTHCmd, _ = hex.DecodeString(t.Derived.Cmd)
		s.AUTHRspOK, _ = hex.DecodeString(t.Derived.RspOK)
		s.AUTHRspSF, _ = hex.DecodeString(t.Derived.RspSF)
		for _, e := range errs {
			if e != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, t.Name, e)
			}
		}
		sets = append(sets, s)
	}
	return sets, nil
}

// Software returns the project's software ISIM for k/opc over a memory
// store: a fresh ISIM that has accepted nothing yet.
func Software(id isim.Identity, k, opc [16]byte) (*isim.Software, error) {
	return isim.NewSoftware(isim.Config{Identity: id, K: isim.Key(k), OPc: isim.Key(opc),
		Store: isim.NewMemoryStore(isim.SQNState{})})
}

// AUTN builds the network's AUTN for rand with sequence number sqn and AMF
// 8000 (as lab HSSs send for IMS too).
func AUTN(k, opc [16]byte, rand isim.RAND, sqn uint64) isim.AUTN {
	var s [6]byte
	for i := range s {
		s[i] = byte(sqn >> (8 * (5 - i)))
	}
	return isim.AUTN(milenage.New(k, opc).AUTN(rand, s, [2]byte{0x80, 0x00}))
}

// OpenAUTS recovers SQN_MS from an AUTS, checking MAC-S.
func OpenAUTS(k, opc [16]byte, rand isim.RAND, auts isim.AUTS) (uint64, bool) {
	s, ok := milenage.New(k, opc).OpenAUTS(rand, auts)
	var sqn uint64
	for _, b := range s {
		sqn = sqn<<8 | uint64(b)
	}
	return sqn, ok
}
