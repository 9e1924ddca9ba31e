package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
)

// hx is the lowercase hex of a vector's field, as a flag takes it and
// the JSON output prints it.
func hx(b []byte) string { return hex.EncodeToString(b) }

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
	sets := vectors.Milenage()
	if len(sets) != 15 {
		t.Fatalf("want the 15 TS 35.208 sets, found %d", len(sets))
	}
	for _, ts := range sets {
		for _, keyFlag := range []string{"--op", "--opc"} {
			t.Run(ts.Name+"/"+keyFlag, func(t *testing.T) {
				opKey := hx(ts.OP[:])
				if keyFlag == "--opc" {
					opKey = hx(ts.OPc[:])
				}
				code, stdout, stderr := runImsue("milenage", "--json",
					"--k", strings.ToUpper(hx(ts.K[:])), keyFlag, strings.ToUpper(opKey),
					"--rand", hx(ts.RAND[:]), "--sqn", hx(ts.SQN[:]), "--amf", hx(ts.AMF[:]))
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				got := decodeOneJSON(t, stdout)
				want := map[string]string{
					"opc": hx(ts.OPc[:]), "mac_a": hx(ts.MACA[:]), "mac_s": hx(ts.MACS[:]), "res": hx(ts.RES[:]),
					"ck": hx(ts.CK[:]), "ik": hx(ts.IK[:]), "ak": hx(ts.AK[:]), "ak_star": hx(ts.AKStar[:]),
					"autn": hx(ts.AUTN[:]), "auts": hx(ts.AUTS[:]),
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
	ts := vectors.Milenage()[2]
	code, stdout, stderr := runImsue("milenage", "--json", "--k", hx(ts.K[:]), "--opc", hx(ts.OPc[:]), "--rand", hx(ts.RAND[:]))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := decodeOneJSON(t, stdout)
	for _, k := range []string{"mac_a", "mac_s", "autn", "auts"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s printed without --sqn/--amf", k)
		}
	}
	if got["res"] != hx(ts.RES[:]) || got["ak_star"] != hx(ts.AKStar[:]) {
		t.Errorf("res %v ak_star %v", got["res"], got["ak_star"])
	}
}

// TestMilenageOpenAUTS uses libosmocore's AUTS vector, and the same AUTS
// with its MAC-S damaged.
func TestMilenageOpenAUTS(t *testing.T) {
	var x *vectors.ExtraVector
	v := vectors.MilenageExtra()
	for i := range v {
		if v[i].Kind == vectors.ExtraResync {
			x = &v[i]
		}
	}
	if x == nil {
		t.Fatal("no AUTS vector")
	}
	k, opc, rand, auts := hx(x.K[:]), hx(x.OPc[:]), hx(x.RAND[:]), hx(x.AUTS[:])
	code, stdout, stderr := runImsue("milenage", "--json", "--k", k, "--opc", opc, "--rand", rand, "--auts", auts)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := decodeOneJSON(t, stdout)
	if got["sqn_ms"] != hx(x.SQNMS[:]) || got["auts_mac_ok"] != true {
		t.Fatalf("sqn_ms %v auts_mac_ok %v, want %x true", got["sqn_ms"], got["auts_mac_ok"], x.SQNMS)
	}
	bad := auts[:27] + "0"
	if auts[27] == '0' {
		bad = auts[:27] + "1"
	}
	_, stdout, _ = runImsue("milenage", "--json", "--k", k, "--opc", opc, "--rand", rand, "--auts", bad)
	if got := decodeOneJSON(t, stdout); got["auts_mac_ok"] != false {
		t.Fatalf("damaged MAC-S: auts_mac_ok %v", got["auts_mac_ok"])
	}
}

func TestMilenageText(t *testing.T) {
	ts := vectors.Milenage()[0]
	code, stdout, _ := runImsue("milenage", "--k", hx(ts.K[:]), "--op", hx(ts.OP[:]), "--rand", hx(ts.RAND[:]), "--sqn", hx(ts.SQN[:]), "--amf", hx(ts.AMF[:]))
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, line := range []string{"opc         " + hx(ts.OPc[:]), "autn        " + hx(ts.AUTN[:]), "res         " + hx(ts.RES[:])} {
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
		{"sqn empty", []string{"--k", k, "--opc", opc, "--rand", rand, "--sqn", ""}, "--sqn: empty value"},
		{"amf empty", []string{"--k", k, "--opc", opc, "--rand", rand, "--sqn", "000000000001", "--amf", ""}, "--amf: empty value"},
		{"auts empty", []string{"--k", k, "--opc", opc, "--rand", rand, "--auts", ""}, "--auts: empty value"},
		{"op empty", []string{"--k", k, "--op", "", "--opc", opc, "--rand", rand}, "--op: empty value"},
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
