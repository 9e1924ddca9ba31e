package isim

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// milenageVectors mirrors testdata/milenage_vectors.json, copied from the
// project's shared spec folder (TS 35.208 sets and libosmocore extras).
type milenageVectors struct {
	TestSets []struct {
		Name    string `json:"name"`
		K       string `json:"K"`
		OP      string `json:"OP"`
		OPc     string `json:"OPc"`
		RAND    string `json:"RAND"`
		SQN     string `json:"SQN"`
		AMF     string `json:"AMF"`
		RES     string `json:"f2_RES"`
		CK      string `json:"f3_CK"`
		IK      string `json:"f4_IK"`
		Derived struct {
			AUTN string `json:"AUTN"`
			AUTS string `json:"AUTS_if_SQN_MS_equals_SQN"`
		} `json:"derived_by_verifier"`
	} `json:"test_sets"`
	Extra []struct {
		Name  string `json:"name"`
		K     string `json:"K"`
		OPc   string `json:"OPc"`
		RAND  string `json:"RAND"`
		SQN   string `json:"SQN"`
		AUTN  string `json:"AUTN"`
		AUTS  string `json:"AUTS"`
		SQNMS string `json:"expected_SQN_MS"`
		RES   string `json:"RES"`
		CK    string `json:"CK"`
		IK    string `json:"IK"`
	} `json:"extra_vectors"`
}

func loadJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadMilenage(t testing.TB) milenageVectors {
	t.Helper()
	var v milenageVectors
	loadJSON(t, "testdata/milenage_vectors.json", &v)
	if len(v.TestSets) != 15 {
		t.Fatalf("want the 15 TS 35.208 sets, found %d", len(v.TestSets))
	}
	return v
}

func unhex(t testing.TB, s string, n int) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n {
		t.Fatalf("bad vector hex %q (want %d bytes): %v", s, n, err)
	}
	return b
}

func key(t testing.TB, s string) (k Key)  { copy(k[:], unhex(t, s, 16)); return }
func rand16(t testing.TB, s string) RAND  { return RAND(unhex(t, s, 16)) }
func autn16(t testing.TB, s string) AUTN  { return AUTN(unhex(t, s, 16)) }
func sqn6(t testing.TB, s string) SQN     { return SQNFromBytes([6]byte(unhex(t, s, 6))) }
func auts14(t testing.TB, s string) AUTS  { return AUTS(unhex(t, s, 14)) }
func b16(t testing.TB, s string) [16]byte { return [16]byte(unhex(t, s, 16)) }
