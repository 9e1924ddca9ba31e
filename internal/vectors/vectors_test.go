package vectors

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// generic reads an embedded file without this package's decoder, to check
// that every decoded field is the one its JSON key names.
func generic(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func list(t *testing.T, m map[string]any, key string) []map[string]any {
	t.Helper()
	raw, ok := m[key].([]any)
	if !ok {
		t.Fatalf("no list %q", key)
	}
	var out []map[string]any
	for _, x := range raw {
		out = append(out, x.(map[string]any))
	}
	return out
}

// same checks that decoded values re-encode to the file's text (the file
// writes the AIDs in upper case).
func same(t *testing.T, where string, m map[string]any, want map[string][]byte) {
	t.Helper()
	for key, got := range want {
		s, _ := m[key].(string)
		if strings.Contains(key, ".") { // one level of nesting
			parent, child, _ := strings.Cut(key, ".")
			s, _ = m[parent].(map[string]any)[child].(string)
		}
		if !strings.EqualFold(hex.EncodeToString(got), s) || s == "" {
			t.Errorf("%s: %s decoded as %x, the file has %q", where, key, got, s)
		}
	}
}

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// TestVectorsDecode decodes every embedded file, checks the counts and
// that each field holds what its key says, and checks the derived values
// against their definitions from the same file's other fields (the file's
// own consistency, not any code of the project).
func TestVectorsDecode(t *testing.T) {
	t.Run("milenage", func(t *testing.T) {
		sets := Milenage()
		if len(sets) != 15 {
			t.Fatalf("%d MILENAGE sets, want 15 (TS 35.208 sets 1-14 and 19)", len(sets))
		}
		raw := list(t, generic(t, milenageJSON), "test_sets")
		for i, s := range sets {
			m := raw[i]
			n := i + 1
			if n == 15 {
				n = 19 // sets 15-18 and 20 are not in the file
			}
			if s.Name != m["name"] || s.Name != "TS 35.208 test set "+strconv.Itoa(n) {
				t.Errorf("set %d is named %q", i, s.Name)
			}
			same(t, s.Name, m, map[string][]byte{
				"K": s.K[:], "OP": s.OP[:], "OPc": s.OPc[:], "RAND": s.RAND[:], "SQN": s.SQN[:], "AMF": s.AMF[:],
				"f1_MAC_A": s.MACA[:], "f1star_MAC_S": s.MACS[:], "f2_RES": s.RES[:], "f3_CK": s.CK[:], "f4_IK": s.IK[:],
				"f5_AK": s.AK[:], "f5star_AKstar": s.AKStar[:],
				"derived_by_verifier.AUTN":                          s.AUTN[:],
				"derived_by_verifier.AUTS_if_SQN_MS_equals_SQN":     s.AUTS[:],
				"derived_by_verifier.MAC_S_with_AMF_0000":           s.MACSAMF0[:],
				"derived_by_verifier.AUTHENTICATE_cmd_APDU":         s.AuthCmd,
				"derived_by_verifier.AUTHENTICATE_rsp_success_ISIM": s.AuthRspOK,
				"derived_by_verifier.AUTHENTICATE_rsp_syncfail":     s.AuthRspSync,
			})
			for _, d := range []struct {
				name      string
				got, want []byte
			}{
				{"AUTN = SQN⊕AK ‖ AMF ‖ MAC-A", s.AUTN[:], cat(xor(s.SQN[:], s.AK[:]), s.AMF[:], s.MACA[:])},
				{"AUTS = SQN⊕AK* ‖ MAC-S(AMF 0000)", s.AUTS[:], cat(xor(s.SQN[:], s.AKStar[:]), s.MACSAMF0[:])},
				{"command", s.AuthCmd, cat([]byte{0x00, 0x88, 0x00, 0x81, 0x22, 0x10}, s.RAND[:], []byte{0x10}, s.AUTN[:], []byte{0x00})},
				{"success", s.AuthRspOK, cat([]byte{0xDB, 8}, s.RES[:], []byte{16}, s.CK[:], []byte{16}, s.IK[:])},
				{"sync failure", s.AuthRspSync, cat([]byte{0xDC, 14}, s.AUTS[:])},
			} {
				if !bytes.Equal(d.got, d.want) {
					t.Errorf("%s: %s: %x, want %x", s.Name, d.name, d.got, d.want)
				}
			}
		}
	})

	t.Run("milenage extra", func(t *testing.T) {
		extra := MilenageExtra()
		raw := list(t, generic(t, milenageJSON), "extra_vectors")
		var kinds []ExtraKind
		for i, e := range extra {
			kinds = append(kinds, e.Kind)
			want := map[string][]byte{"K": e.K[:], "OPc": e.OPc[:]}
			switch e.Kind {
			case ExtraOPc:
				want["OP"] = e.OP[:]
			case ExtraResync:
				want["RAND"], want["AUTS"], want["expected_SQN_MS"] = e.RAND[:], e.AUTS[:], e.SQNMS[:]
			case ExtraChallenge:
				want["RAND"], want["SQN"], want["AMF"], want["AUTN"] = e.RAND[:], e.SQN[:], e.AMF[:], e.AUTN[:]
				want["RES"], want["CK"], want["IK"] = e.RES[:], e.CK[:], e.IK[:]
			}
			same(t, e.Name, raw[i], want)
		}
		if !slices.Equal(kinds, []ExtraKind{ExtraResync, ExtraChallenge, ExtraOPc}) {
			t.Fatalf("extra vectors of kinds %v, want resync, challenge, OPc", kinds)
		}
	})

	t.Run("digest", func(t *testing.T) {
		vs := Digest()
		if len(vs) != 8 {
			t.Fatalf("%d digest vectors, want 8", len(vs))
		}
		raw := list(t, generic(t, digestJSON), "vectors")
		var aka, xorAlg, resync, akav2 int
		for i, v := range vs {
			m := raw[i]
			for key, got := range map[string]string{
				"name": v.Name, "username": v.Username, "realm": v.Realm, "method": v.Method, "uri": v.URI,
				"nonce": v.Nonce, "qop": v.QOP, "nc": v.NC, "cnonce": v.CNonce, "HA1": v.HA1, "HA2": v.HA2,
				"response": v.Response,
			} {
				if m[key] != got {
					t.Errorf("%s: %s decoded as %q, the file has %q", v.Name, key, got, m[key])
				}
			}
			if p, ok := m["password_ascii"].(string); ok && string(v.Password) != p {
				t.Errorf("%s: password %q", v.Name, v.Password)
			}
			if p, ok := m["password_hex"].(string); ok && hex.EncodeToString(v.Password) != p {
				t.Errorf("%s: password %x", v.Name, v.Password)
			}
			if v.AKA == nil {
				continue
			}
			aka++
			a := v.AKA
			want := map[string][]byte{"K": a.K[:], "RAND": a.RAND[:], "AUTN": a.AUTN[:], "SQN": a.SQN[:],
				"AMF": a.AMF[:], "RES": a.RES, "CK": a.CK[:], "IK": a.IK[:]}
			if a.XOR {
				xorAlg++
				want["AK"] = a.AK[:]
			} else {
				want["OPc"] = a.OPc[:]
			}
			if a.HMACKey != nil {
				akav2++
				want["hmac_key_hex"] = a.HMACKey
			}
			if a.Resync != nil {
				resync++
				r := a.Resync
				want["AUTS"], want["SQN_MS"], want["AK_star"], want["MAC_S_amf0"] = r.AUTS[:], r.SQNMS[:], r.AKStar[:], r.MACS[:]
				if got := cat(xor(r.SQNMS[:], r.AKStar[:]), r.MACS[:]); !bytes.Equal(got, r.AUTS[:]) {
					t.Errorf("%s: AUTS %x, want SQN_MS⊕AK* ‖ MAC-S = %x", v.Name, r.AUTS, got)
				}
				if got := base64.StdEncoding.EncodeToString(r.AUTS[:]); got != r.Param {
					t.Errorf("%s: auts_param %s, want base64(AUTS) = %s", v.Name, r.Param, got)
				}
			}
			same(t, v.Name, m, want)
			// RFC 3310 §3.2: the nonce is base64(RAND ‖ AUTN [‖ server data]).
			if got := base64.StdEncoding.EncodeToString(cat(a.RAND[:], a.AUTN[:])); got != v.Nonce {
				t.Errorf("%s: nonce %s, want base64(RAND ‖ AUTN) = %s", v.Name, v.Nonce, got)
			}
		}
		if aka != 7 || xorAlg != 2 || resync != 1 || akav2 != 1 {
			t.Fatalf("%d AKA vectors (%d XOR), %d resync, %d AKAv2 HMAC; want 7 (2), 1, 1", aka, xorAlg, resync, akav2)
		}
	})

	t.Run("uicc", func(t *testing.T) {
		u := UICC()
		if len(u.EFs) != 10 || len(u.Identities) != 4 {
			t.Fatalf("%d EF encodings, %d identities; want 10 and 4", len(u.EFs), len(u.Identities))
		}
		doc := generic(t, uiccJSON)
		for i, e := range u.EFs {
			m := list(t, doc, "ef_encodings_from_pysim_tests")[i]
			same(t, e.EF, m, map[string][]byte{"hex": e.Raw})
			dec := m["decoded"].(map[string]any)
			if e.AID != nil {
				same(t, e.EF, dec, map[string][]byte{"4F_AID": e.AID})
				if dec["50_label"] != e.Label || (dec["73"] != nil) != e.Discretionary {
					t.Errorf("%s: label %q, discretionary %v", e.EF, e.Label, e.Discretionary)
				}
				continue
			}
			found := false
			for _, key := range []string{"nai", "domain", "impu", "address", "imsi"} {
				found = found || dec[key] == e.Text
			}
			if !found {
				t.Errorf("%s: text %q is none of %v", e.EF, e.Text, dec)
			}
			if ta, ok := dec["type_of_address"].(string); ok && !strings.HasSuffix(ta, "(0"+strconv.Itoa(int(e.AddressType))+")") {
				t.Errorf("%s: address type %d for %s", e.EF, e.AddressType, ta)
			}
		}
		same(t, "aids", doc["aids"].(map[string]any), map[string][]byte{
			"RID": u.AIDs.RID, "USIM_app_code": u.AIDs.USIMAppCode, "ISIM_app_code": u.AIDs.ISIMAppCode,
			"USIM_AID_prefix": u.AIDs.USIMPrefix, "ISIM_AID_prefix": u.AIDs.ISIMPrefix,
		})
		for i, id := range u.Identities {
			m := list(t, doc, "imsi_derived_identities_TS_23_003_clause_13")[i]
			if m["IMSI"] != id.IMSI || m["MNC_length_from_EF_AD"] != float64(id.MNCLength) || m["home_network_domain"] != id.Domain ||
				m["IMPI"] != id.IMPI || m["temporary_IMPU"] != id.TempIMPU {
				t.Errorf("identity %d decoded as %+v, the file has %v", i, id, m)
			}
		}
	})
}

// TestCallersOwnTheirCopy: a test that changes what it got does not change
// what the next one gets.
func TestCallersOwnTheirCopy(t *testing.T) {
	a := Milenage()
	a[0].AuthCmd[0] ^= 0xFF
	a[0].K[0] ^= 0xFF
	b := Milenage()
	if b[0].AuthCmd[0] != 0x00 || b[0].K[0] != 0x46 {
		t.Fatalf("a change to one call's result shows in the next: %x %x", b[0].AuthCmd[:1], b[0].K[:1])
	}
	u := UICC()
	u.EFs[0].Raw[0] = 0
	if UICC().EFs[0].Raw[0] != 0x80 {
		t.Fatal("UICC results are shared")
	}
}

// TestMalformedNamesTheField breaks one field of an embedded file at a time:
// the error names the file, the vector and the field.
func TestMalformedNamesTheField(t *testing.T) {
	set1 := `"name": "TS 35.208 test set 1"`
	tests := []struct {
		name, file, old, new string
		want                 []string
	}{
		{"odd hex", milenageFile, `"f3_CK": "b40ba9a3c58b2a05bbf0d987b21bf8cb"`, `"f3_CK": "b40ba9a3c58b2a05bbf0d987b21bf8c"`,
			[]string{`milenage_vectors.json test_sets[0] "TS 35.208 test set 1": field f3_CK`, "odd length"}},
		{"short", milenageFile, `"SQN": "ff9bb4d0b607"`, `"SQN": "ff9bb4d0b6"`,
			[]string{"test_sets[0]", "field SQN: 5 bytes, want 6"}},
		{"not hex", milenageFile, `"AUTN": "55f328b43577b9b94a9ffac354dfafb3"`, `"AUTN": "55f328b43577b9b94a9ffac354dfafbg"`,
			[]string{"field derived_by_verifier.AUTN", "invalid byte"}},
		{"missing", milenageFile, `"f5_AK": "aa689c648370",`, ``,
			[]string{"test_sets[0]", "field f5_AK: missing"}},
		{"unknown field", milenageFile, set1, set1 + `, "f6": "00"`,
			[]string{"milenage_vectors.json", `unknown field "f6"`}},
		{"extra of two kinds", milenageFile, `"expected_SQN_MS": "00000000001f",`, `"expected_SQN_MS": "00000000001f", "OP": "00000000000000000000000000000000",`,
			[]string{`extra_vectors[0] "libosmocore AUTS resync vector"`, "field RAND: does not belong to kind OPc"}},
		{"extra incomplete", milenageFile, `"RES": "e9fc88ccc8a35381",`, ``,
			[]string{`extra_vectors[1]`, "field RES: missing (kind challenge needs it)"}},
		{"digest response", digestFile, `"response": "6629fae49393a05397450978507c4ef1"`, `"response": "6629FAE49393A05397450978507C4EF1"`,
			[]string{`digest_vectors.json vectors[0] "RFC 2617 section 3.5 example (MD5, qop=auth)": field response: not lowercase hex`}},
		{"digest two passwords", digestFile, `"password_ascii": "Circle Of Life",`, `"password_ascii": "Circle Of Life", "password_hex": "00",`,
			[]string{"vectors[0]", "field password_ascii/password_hex: want exactly one"}},
		{"digest RES", digestFile, `"RES": "000102030405060708090a0b0c0d0e0f"`, `"RES": "0001"`,
			[]string{"vectors[1]", "field RES: 2 bytes, want at least 4"}},
		{"uicc decoded", uiccFile, `"nai": "738006000000101@`, `"naii": "738006000000101@`,
			[]string{`uicc_vectors.json ef_encodings_from_pysim_tests[0] "ISIM EF.IMPI (6F02, transparent)": field decoded.naii: unknown decoded field`}},
		{"uicc prefix", uiccFile, `"ISIM_AID_prefix": "A0000000871004"`, `"ISIM_AID_prefix": "A0000000871005"`,
			[]string{"uicc_vectors.json aids: field ISIM_AID_prefix: is not RID ‖ ISIM_app_code"}},
		{"uicc MNC length", uiccFile, `"MNC_length_from_EF_AD": 3`, `"MNC_length_from_EF_AD": 4`,
			[]string{`imsi_derived_identities_TS_23_003_clause_13[2] "310410123456789": field MNC_length_from_EF_AD: 4, want 2 or 3`}},
	}
	files := map[string][]byte{milenageFile: milenageJSON, digestFile: digestJSON, uiccFile: uiccJSON}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := files[tt.file]
			if bytes.Count(data, []byte(tt.old)) < 1 {
				t.Fatalf("%q is not in %s", tt.old, tt.file)
			}
			data = bytes.Replace(data, []byte(tt.old), []byte(tt.new), 1)
			var err error
			switch tt.file {
			case milenageFile:
				_, _, err = decodeMilenage(data)
			case digestFile:
				_, err = decodeDigest(data)
			case uiccFile:
				_, err = decodeUICC(data)
			}
			if err == nil {
				t.Fatal("decoded without an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestMustPanicsWithTheError(t *testing.T) {
	_, _, err := decodeMilenage([]byte(`{"test_sets": [{"name": "x"}]}`))
	defer func() {
		msg, _ := recover().(string)
		if !strings.HasPrefix(msg, "internal/vectors: embedded file is malformed: ") || !strings.Contains(msg, `test_sets[0] "x": field K: missing`) {
			t.Fatalf("panic %q", msg)
		}
	}()
	must(err)
}

// TestOnlyTestsImport: the vectors reach test code only, never a binary.
// Outside _test.go files only test-helper packages, whose names end in
// "test" (akatest, pcsctest), may import this package.
func TestOnlyTestsImport(t *testing.T) {
	const self = "github.com/imsue/imsue/internal/vectors"
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return nil // a file that does not parse does not build either
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == self && !strings.HasSuffix(f.Name.Name, "test") {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s (package %s) imports %s outside a test", rel, f.Name.Name, self)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzDecode: the decoders return an error, never panic, whatever the
// bytes; only the accessors panic, and only on the embedded files. The
// seeds are one real vector of each list: the whole files are so large
// that the fuzzer barely mutates them.
func FuzzDecode(f *testing.F) {
	for _, src := range []struct {
		data  []byte
		lists []string
	}{
		{milenageJSON, []string{"test_sets", "extra_vectors"}},
		{digestJSON, []string{"vectors"}},
		{uiccJSON, []string{"ef_encodings_from_pysim_tests", "imsi_derived_identities_TS_23_003_clause_13"}},
	} {
		var doc map[string][]json.RawMessage
		_ = json.Unmarshal(src.data, &doc) // the lists decode; the other keys are not lists
		for _, l := range src.lists {
			for _, i := range []int{0, len(doc[l]) - 1} {
				seed, err := json.Marshal(map[string][]json.RawMessage{l: {doc[l][i]}})
				if err != nil {
					f.Fatal(err)
				}
				f.Add(seed)
			}
		}
	}
	f.Add([]byte(`{"ef_encodings_from_pysim_tests": [{"ef": "x", "hex": "00", "decoded": {"type_of_address": "()"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = decodeMilenage(data)
		_, _ = decodeDigest(data)
		_, _ = decodeUICC(data)
	})
}
