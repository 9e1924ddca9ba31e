package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// milenageVectorFile mirrors testdata/milenage_vectors.json, copied from the
// shared spec folder: the TS 35.208 sets and the libosmocore extras.
type milenageVectorFile struct {
	TestSets []struct {
		Name    string `json:"name"`
		K       string `json:"K"`
		OP      string `json:"OP"`
		OPc     string `json:"OPc"`
		RAND    string `json:"RAND"`
		SQN     string `json:"SQN"`
		AMF     string `json:"AMF"`
		MACA    string `json:"f1_MAC_A"`
		MACS    string `json:"f1star_MAC_S"`
		RES     string `json:"f2_RES"`
		CK      string `json:"f3_CK"`
		IK      string `json:"f4_IK"`
		AK      string `json:"f5_AK"`
		AKStar  string `json:"f5star_AKstar"`
		Derived struct {
			AUTN string `json:"AUTN"`
			AUTS string `json:"AUTS_if_SQN_MS_equals_SQN"`
		} `json:"derived_by_verifier"`
	} `json:"test_sets"`
	Extra []struct {
		Name  string `json:"name"`
		K     string `json:"K"`
		OP    string `json:"OP"`
		OPc   string `json:"OPc"`
		RAND  string `json:"RAND"`
		AUTS  string `json:"AUTS"`
		SQNMS string `json:"expected_SQN_MS"`
	} `json:"extra_vectors"`
}

func loadMilenageVectors(t *testing.T) milenageVectorFile {
	t.Helper()
	b, err := os.ReadFile("testdata/milenage_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v milenageVectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.TestSets) != 15 {
		t.Fatalf("want the 15 TS 35.208 sets, found %d", len(v.TestSets))
	}
	return v
}

// runCLI runs imsue in-process and returns its exit code and output.
func runImsue(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// oneJSON decodes stdout as exactly one JSON object.
func decodeOneJSON(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		t.Fatalf("stdout holds more than one JSON value:\n%s", stdout)
	}
	return m
}

// TestMilenageVectors: the 15 sets, keyed by OP and by OPc, upper-case
// input, every output field against the vector.
func TestMilenageVectors(t *testing.T) {
	for _, ts := range loadMilenageVectors(t).TestSets {
		for _, keyFlag := range []string{"--op", "--opc"} {
			t.Run(ts.Name+"/"+keyFlag, func(t *testing.T) {
				opKey := ts.OP
				if keyFlag == "--opc" {
					opKey = ts.OPc
				}
				code, stdout, stderr := runImsue("milenage", "--json",
					"--k", strings.ToUpper(ts.K), keyFlag, strings.ToUpper(opKey),
					"--rand", ts.RAND, "--sqn", ts.SQN, "--amf", ts.AMF)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				got := decodeOneJSON(t, stdout)
				want := map[string]string{
					"opc": ts.OPc, "mac_a": ts.MACA, "mac_s": ts.MACS, "res": ts.RES,
					"ck": ts.CK, "ik": ts.IK, "ak": ts.AK, "ak_star": ts.AKStar,
					"autn": ts.Derived.AUTN, "auts": ts.Derived.AUTS,
				}
				for k, v := range want {
					if got[k] != strings.ToLower(v) {
						t.Errorf("%s = %v, want %s", k, got[k], strings.ToLower(v))
					}
				}
				if len(got) != len(want) {
					t.Errorf("unexpected keys in %v", got)
				}
			})
		}
	}
}

func TestMilenageWithoutSQN(t *testing.T) {
	ts := loadMilenageVectors(t).TestSets[2]
	code, stdout, stderr := runImsue("milenage", "--json", "--k", ts.K, "--opc", ts.OPc, "--rand", ts.RAND)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := decodeOneJSON(t, stdout)
	for _, k := range []string{"mac_a", "mac_s", "autn", "auts"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s printed without --sqn/--amf", k)
		}
	}
	if got["res"] != ts.RES || got["ak_star"] != ts.AKStar {
		t.Errorf("res %v ak_star %v", got["res"], got["ak_star"])
	}
}

// TestMilenageOpenAUTS uses libosmocore's AUTS vector, and the same AUTS
// with its MAC-S damaged.
func TestMilenageOpenAUTS(t *testing.T) {
	var x *struct {
		Name  string `json:"name"`
		K     string `json:"K"`
		OP    string `json:"OP"`
		OPc   string `json:"OPc"`
		RAND  string `json:"RAND"`
		AUTS  string `json:"AUTS"`
		SQNMS string `json:"expected_SQN_MS"`
	}
	v := loadMilenageVectors(t)
	for i := range v.Extra {
		if v.Extra[i].AUTS != "" {
			x = &v.Extra[i]
		}
	}
	if x == nil {
		t.Fatal("no AUTS vector")
	}
	code, stdout, stderr := runImsue("milenage", "--json", "--k", x.K, "--opc", x.OPc, "--rand", x.RAND, "--auts", x.AUTS)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := decodeOneJSON(t, stdout)
	if got["sqn_ms"] != x.SQNMS || got["auts_mac_ok"] != true {
		t.Fatalf("sqn_ms %v auts_mac_ok %v, want %s true", got["sqn_ms"], got["auts_mac_ok"], x.SQNMS)
	}
	bad := x.AUTS[:27] + "0"
	if x.AUTS[27] == '0' {
		bad = x.AUTS[:27] + "1"
	}
	_, stdout, _ = runImsue("milenage", "--json", "--k", x.K, "--opc", x.OPc, "--rand", x.RAND, "--auts", bad)
	if got := decodeOneJSON(t, stdout); got["auts_mac_ok"] != false {
		t.Fatalf("damaged MAC-S: auts_mac_ok %v", got["auts_mac_ok"])
	}
}

func TestMilenageText(t *testing.T) {
	ts := loadMilenageVectors(t).TestSets[0]
	code, stdout, _ := runImsue("milenage", "--k", ts.K, "--op", ts.OP, "--rand", ts.RAND, "--sqn", ts.SQN, "--amf", ts.AMF)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, line := range []string{"opc         " + ts.OPc, "autn        " + ts.Derived.AUTN, "res         " + ts.RES} {
		if !strings.Contains(stdout, line+"\n") {
			t.Errorf("text output lacks %q:\n%s", line, stdout)
		}
	}
}

// TestMilenageBadFlags: every malformed value is exit 2 and names its flag,
// without echoing the value.
func TestMilenageBadFlags(t *testing.T) {
	k := "465b5ce8b199b49faa5f0a2ee238a6bc"
	opc := "cd63cb71954a9f4e48a5994e37a02baf"
	rand := "23553cbe9637a89d218ae64dae47bf35"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"k short", []string{"--k", k[:30], "--opc", opc, "--rand", rand}, "--k: want 32 hex digits, got 30"},
		{"k not hex", []string{"--k", "x" + k[1:], "--opc", opc, "--rand", rand}, "--k: not hex"},
		{"k missing", []string{"--opc", opc, "--rand", rand}, "--k: required"},
		{"op and opc", []string{"--k", k, "--op", opc, "--opc", opc, "--rand", rand}, "--op, --opc: give one, not both"},
		{"neither op nor opc", []string{"--k", k, "--rand", rand}, "--op, --opc: one of them is required"},
		{"op bad", []string{"--k", k, "--op", opc + "0", "--rand", rand}, "--op: want 32 hex digits, got 33"},
		{"opc bad", []string{"--k", k, "--opc", "zz", "--rand", rand}, "--opc: want 32 hex digits"},
		{"rand bad", []string{"--k", k, "--opc", opc, "--rand", rand[:31] + "g"}, "--rand: not hex"},
		{"sqn bad", []string{"--k", k, "--opc", opc, "--rand", rand, "--sqn", "123"}, "--sqn: want 12 hex digits, got 3"},
		{"amf bad", []string{"--k", k, "--opc", opc, "--rand", rand, "--sqn", "000000000001", "--amf", "80000"}, "--amf: want 4 hex digits"},
		{"amf alone", []string{"--k", k, "--opc", opc, "--rand", rand, "--amf", "8000"}, "--amf: only with --sqn"},
		{"auts bad", []string{"--k", k, "--opc", opc, "--rand", rand, "--auts", "00"}, "--auts: want 28 hex digits"},
		{"stray argument", []string{"--k", k, "--opc", opc, "--rand", rand, "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runImsue(append([]string{"milenage", "--json"}, tt.args...)...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr %q does not contain %q", stderr, tt.want)
			}
			got := decodeOneJSON(t, stdout)
			if got["result"] != "error" || got["exit_code"] != float64(exitUsage) {
				t.Fatalf("JSON error object %v", got)
			}
			if strings.Contains(stderr, k[:12]) {
				t.Fatalf("the key was echoed: %s", stderr)
			}
		})
	}
}
