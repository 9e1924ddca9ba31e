package main

import (
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
	"github.com/imsue/imsue/profile"
)

// akaNet is the network side of the aka tests: it builds challenges and
// opens AUTS with the milenage package, independently of the ISIM.
type akaNet struct {
	c    *milenage.Cipher
	rand [16]byte
}

// challenge returns RAND and AUTN (AMF 8000) for SEQ ‖ IND, a new RAND each time.
func (n *akaNet) challenge(seq uint64, ind int) (rand, autn string) {
	n.rand[15]++
	sqn := isim.MakeSQN(seq, ind).Bytes()
	a := n.c.AUTN(n.rand, sqn, [2]byte{0x80, 0x00})
	return hex.EncodeToString(n.rand[:]), hex.EncodeToString(a[:])
}

// writeProfile writes a software-ISIM profile with TS 35.208 set 1's keys
// into a new folder and returns its path and the network for those keys.
func writeProfile(t *testing.T, extra string) (string, *akaNet) {
	t.Helper()
	ts := vectors.Milenage()[0]
	path := filepath.Join(t.TempDir(), "ue1.yaml")
	body := "imsi: \"001010123456789\"\nmnc_length: 2\nk: " + hx(ts.K[:]) + "\nopc: " + hx(ts.OPc[:]) + "\n" + extra
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, &akaNet{c: milenage.New(ts.K, ts.OPc), rand: [16]byte{0xa5}}
}

// TestAKAEndToEnd is the story through the real command, in
// process: accept, replay → AUTS whose MAC-S verifies and whose SQN_MS is
// the accepted SQN, tampered AUTN → MAC failure, another IND with a lower
// SEQ accepted, a lower SEQ on the same IND refused.
func TestAKAEndToEnd(t *testing.T) {
	path, net := writeProfile(t, "")
	aka := func(rand, autn string) (int, map[string]any, string) {
		code, stdout, stderr := runImsue("aka", "--json", "--profile", path, "--rand", rand, "--autn", autn)
		return code, decodeOneJSON(t, stdout), stderr
	}
	checkSuccess := func(step, rand string, code int, got map[string]any, stderr string) {
		t.Helper()
		if code != exitOK || got["result"] != "success" {
			t.Fatalf("%s: exit %d %v; %s", step, code, got, stderr)
		}
		var r [16]byte
		hex.Decode(r[:], []byte(rand))
		res, ck, ik, _ := net.c.F2345(r)
		if got["res"] != hex.EncodeToString(res[:]) || got["ck"] != hex.EncodeToString(ck[:]) || got["ik"] != hex.EncodeToString(ik[:]) {
			t.Fatalf("%s: wrong RES/CK/IK: %v", step, got)
		}
		if len(got) != 4 {
			t.Fatalf("%s: unexpected keys: %v", step, got)
		}
	}
	checkSync := func(step, rand string, code int, got map[string]any, wantSEQ uint64, wantIND int) {
		t.Helper()
		if code != exitSync || got["result"] != "sync_failure" {
			t.Fatalf("%s: exit %d %v", step, code, got)
		}
		var r [16]byte
		var auts [14]byte
		hex.Decode(r[:], []byte(rand))
		if s, _ := got["auts"].(string); len(s) != 28 {
			t.Fatalf("%s: auts %v", step, got["auts"])
		}
		hex.Decode(auts[:], []byte(got["auts"].(string)))
		sqnMS, ok := net.c.OpenAUTS(r, auts)
		if !ok {
			t.Fatalf("%s: MAC-S of AUTS does not verify", step)
		}
		want := isim.MakeSQN(wantSEQ, wantIND)
		if got := isim.SQNFromBytes(sqnMS); got != want {
			t.Fatalf("%s: AUTS carries SQN_MS %v, want %v", step, got, want)
		}
		if got["sqn_ms"] != hex.EncodeToString(sqnMS[:]) {
			t.Fatalf("%s: sqn_ms %v, AUTS says %x", step, got["sqn_ms"], sqnMS)
		}
	}

	r1, a1 := net.challenge(5, 3)
	code, got, stderr := aka(r1, a1)
	checkSuccess("fresh profile", r1, code, got, stderr)

	code, got, _ = aka(r1, a1)
	checkSync("same AUTN again", r1, code, got, 5, 3)

	bad := []byte(a1)
	bad[31] ^= 1 // one bit of MAC-A
	code, got, stderr = aka(r1, string(bad))
	if code != exitMAC || got["result"] != "mac_failure" || len(got) != 1 {
		t.Fatalf("tampered AUTN: exit %d %v; %s", code, got, stderr)
	}

	r2, a2 := net.challenge(2, 4)
	code, got, stderr = aka(r2, a2)
	checkSuccess("another IND slot, lower SEQ", r2, code, got, stderr)

	r3, a3 := net.challenge(4, 3)
	code, got, _ = aka(r3, a3)
	checkSync("lower SEQ on the same IND", r3, code, got, 5, 3)

	fi, err := os.Stat(filepath.Join(filepath.Dir(path), "ue1.sqn"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file beside the profile: %v %v", fi, err)
	}
}

func TestAKATextOutput(t *testing.T) {
	path, net := writeProfile(t, "")
	r, a := net.challenge(1, 0)
	code, stdout, stderr := runImsue("aka", "--profile", path, "--rand", r, "--autn", a)
	if code != 0 || !strings.HasPrefix(stdout, "result  success\nres     ") {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runImsue("aka", "--profile", path, "--rand", r, "--autn", a)
	if code != exitSync || !strings.Contains(stdout, "result  sync_failure\nauts    ") || !strings.Contains(stdout, "sqn_ms  000000000020") {
		t.Fatalf("exit %d stdout %q", code, stdout)
	}
	// The reason, for the human, on stderr.
	if !strings.Contains(stderr, "not above the highest accepted SEQ") {
		t.Fatalf("stderr %q", stderr)
	}
}

func TestAKAProfileWarning(t *testing.T) {
	path, net := writeProfile(t, "")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	r, a := net.challenge(1, 0)
	code, _, stderr := runImsue("aka", "--profile", path, "--rand", r, "--autn", a)
	if code != 0 || !strings.Contains(stderr, "warning: profile "+path+" is readable by group or others") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestAKABadInput: every configuration problem is exit 2 with a message
// naming the field (or flag, or file), and one JSON error object.
func TestAKABadInput(t *testing.T) {
	ts := vectors.Milenage()[0]
	k, op, opc := hx(ts.K[:]), hx(ts.OP[:]), hx(ts.OPc[:])
	rand, autn := hx(ts.RAND[:]), hx(ts.AUTN[:])
	tests := []struct {
		name    string
		profile string // profile body; "" to use args only
		state   string // content of ue1.sqn, if set
		args    []string
		want    string
	}{
		{"k wrong length", "imsi: '001010123456789'\nmnc_length: 2\nk: " + k[:30] + "\nopc: " + opc + "\n", "", nil, "k: want 32 hex digits, got 30"},
		{"k not hex", "imsi: '001010123456789'\nmnc_length: 2\nk: " + k[:31] + "q\nopc: " + opc + "\n", "", nil, "k: not hex"},
		{"opc wrong length", "imsi: '001010123456789'\nmnc_length: 2\nk: " + k + "\nopc: " + opc + "a\n", "", nil, "opc: want 32 hex digits, got 33"},
		{"both op and opc", "imsi: '001010123456789'\nmnc_length: 2\nk: " + k + "\nop: " + op + "\nopc: " + opc + "\n", "", nil, "op: give op or opc, not both"},
		{"neither op nor opc", "imsi: '001010123456789'\nmnc_length: 2\nk: " + k + "\n", "", nil, "opc: required with k"},
		{"imsi 13 digits", "imsi: '0010101234567'\nmnc_length: 2\nk: " + k + "\nopc: " + opc + "\n", "", nil, "imsi: want 14 or 15 digits, got 13"},
		{"imsi 16 digits", "imsi: '0010101234567890'\nmnc_length: 2\nk: " + k + "\nopc: " + opc + "\n", "", nil, "imsi: want 14 or 15 digits, got 16"},
		{"corrupt state", "", "imsue-sqn-state 1\nind-bits 5\nseq 0 1\n", nil, "ue1.sqn: read: corrupt SQN state"},
		{"state is a folder", "", "<dir>", nil, "ue1.sqn: read"},
		{"rand wrong length", "", "", []string{"--rand", rand[:30]}, "--rand: want 32 hex digits, got 30"},
		{"autn not hex", "", "", []string{"--autn", "x" + autn[1:]}, "--autn: not hex"},
		{"no profile flag", "", "", []string{"--profile", ""}, "--profile: required"},
		{"missing profile", "", "", []string{"--profile", "/nonexistent/ue9.yaml"}, "profile /nonexistent/ue9.yaml: open: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := writeProfile(t, "")
			dir := filepath.Dir(path)
			if tt.profile != "" {
				if err := os.WriteFile(path, []byte(tt.profile), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			switch tt.state {
			case "":
			case "<dir>":
				os.Mkdir(filepath.Join(dir, "ue1.sqn"), 0o700)
			default:
				os.WriteFile(filepath.Join(dir, "ue1.sqn"), []byte(tt.state), 0o600)
			}
			args := []string{"aka", "--json", "--profile", path, "--rand", rand, "--autn", autn}
			args = append(args, tt.args...) // later flags override
			code, stdout, stderr := runImsue(args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr %q does not contain %q", stderr, tt.want)
			}
			if got := decodeOneJSON(t, stdout); got["result"] != "error" {
				t.Fatalf("JSON %v", got)
			}
			for _, secret := range []string{k[:12], opc[:12], op[:12]} {
				if strings.Contains(stderr+stdout, secret) {
					t.Fatalf("a key was printed: %s", stderr)
				}
			}
		})
	}
}

// TestAKACardWithoutPCSC: a card profile in a build without the hook is a
// card failure (exit 9) that says why; with a hook, the hook gets the spec.
func TestAKACardWithoutPCSC(t *testing.T) {
	path, net := writeProfile(t, "card: \"pcsc:Virtual\"\n")
	r, a := net.challenge(1, 0)
	saved := openCard
	t.Cleanup(func() { openCard = saved })

	openCard = nil
	code, _, stderr := runImsue("aka", "--profile", path, "--rand", r, "--autn", a)
	if code != exitCard || !strings.Contains(stderr, "built without PC/SC support") || !strings.Contains(stderr, `card "pcsc:Virtual"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}

	var gotSpec string
	openCard = func(spec string, p *profile.Profile) (isim.Authenticator, error) {
		gotSpec = spec
		return nil, withCode(exitCard, errors.New("no reader matches \"Virtual\""))
	}
	code, _, stderr = runImsue("aka", "--profile", path, "--rand", r, "--autn", a)
	if code != exitCard || gotSpec != "pcsc:Virtual" || !strings.Contains(stderr, "no reader") {
		t.Fatalf("hook: exit %d spec %q stderr %q", code, gotSpec, stderr)
	}
}

// TestAKABinary runs the built imsue: exit codes and stdout as a script
// sees them.
func TestAKABinary(t *testing.T) {
	bin := testenv.BuildBinary(t, ".")
	path, net := writeProfile(t, "")
	r, a := net.challenge(7, 1)
	runBin := func(args ...string) (int, map[string]any) {
		cmd := exec.Command(bin, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, decodeOneJSON(t, stdout.String())
	}
	if code, got := runBin("aka", "--json", "--profile", path, "--rand", r, "--autn", a); code != 0 || got["result"] != "success" {
		t.Fatalf("first: exit %d %v", code, got)
	}
	code, got := runBin("aka", "--json", "--profile", path, "--rand", r, "--autn", a)
	if code != exitSync || got["result"] != "sync_failure" || got["sqn_ms"] != "0000000000e1" {
		t.Fatalf("replay: exit %d %v", code, got)
	}
	bad := a[:31] + "0"
	if a[31] == '0' {
		bad = a[:31] + "1"
	}
	if code, got := runBin("aka", "--json", "--profile", path, "--rand", r, "--autn", bad); code != exitMAC || got["result"] != "mac_failure" {
		t.Fatalf("tampered: exit %d %v", code, got)
	}
	if code, got := runBin("aka", "--json", "--profile", path, "--rand", r[:4], "--autn", a); code != exitUsage || got["result"] != "error" {
		t.Fatalf("bad rand: exit %d %v", code, got)
	}
}
