//go:build linux

package netlab

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/testenv"
)

// EnvRun is the harness's -run filter, set on the host-side checks when
// test/uml/run was given one.
const EnvRun = "IMSUE_UML_RUN"

// ImsueBin returns the imsue binary the harness built (EnvBin), failing t
// when it is not set: the guest tests must exercise the binary of this tree,
// not one found on PATH.
func ImsueBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvBin)
	if bin == "" {
		t.Fatalf("%s is not set: run through test/uml/run, which builds imsue", EnvBin)
	}
	return bin
}

// RunImsue runs the harness's imsue binary with args inside ns and returns
// its stdout; it fails t, with imsue's stderr, when imsue fails.
func RunImsue(t testing.TB, ns *NS, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(ImsueBin(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := ns.Run(cmd); err != nil {
		t.Fatalf("imsue %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// WritePCAPFile writes frames to path in the pcap format of WritePCAP,
// readable by its owner only (the artifacts sit beside key files).
func WritePCAPFile(path string, pkts []Packet) error {
	var b bytes.Buffer
	if err := WritePCAP(&b, pkts); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("pcap: %w", err)
	}
	return nil
}

// HostArtifacts returns the expect.json files that the guest test producer
// left under EnvOut/kind/*/, one directory a case, for a host-side check
// (TestUMLHost*). Outside test/uml/run (EnvOut unset) it skips t; when the
// harness's -run filter left producer out it skips t too; otherwise finding
// no case fails t, since the guest half must have left some.
func HostArtifacts(t testing.TB, kind, producer string) []string {
	t.Helper()
	root := os.Getenv(EnvOut)
	if root == "" {
		t.Skip("host-side check of test/uml/run: reads the captures the UML guest left in " + EnvOut)
	}
	cases, _ := filepath.Glob(filepath.Join(root, kind, "*", "expect.json"))
	if len(cases) == 0 {
		if os.Getenv(EnvRun) != "" {
			t.Skipf("no captures: the -run filter left %s out", producer)
		}
		t.Fatalf("no captures under %s/%s: %s left no artifacts", root, kind, producer)
	}
	return cases
}

// HostCases runs check, as a subtest named after the case's directory,
// for every case HostArtifacts finds, with the case's expect.json decoded
// into want. A file that does not decode, or that valid rejects (an
// expectation missing what the check needs), fails that subtest.
func HostCases[E any](t *testing.T, kind, producer string, valid func(E) bool, check func(t *testing.T, dir string, want E)) {
	t.Helper()
	for _, c := range HostArtifacts(t, kind, producer) {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			b, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			var want E
			if err := json.Unmarshal(b, &want); err != nil || !valid(want) {
				t.Fatalf("%s: %v", c, err)
			}
			check(t, dir, want)
		})
	}
}

// TsharkESP runs tshark on dir/capture.pcap with the esp_sa file in dir
// (tshark reads it from its configuration directory), decrypting ESP and
// checking its ICVs, and returns the asked fields of every frame, in order.
// extra are further tshark options placed before the field list. Without
// tshark on PATH it skips t (fails it under CI=true); it fails t when
// tshark fails or prints a line without every field.
func TsharkESP(t testing.TB, dir string, extra []string, fields ...string) [][]string {
	t.Helper()
	tshark := testenv.NeedCommand(t, "tshark")
	args := []string{"-n", "-r", filepath.Join(dir, "capture.pcap"),
		"-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"}
	args = append(args, extra...)
	args = append(args, "-T", "fields", "-E", "separator=/t")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(tshark, args...)
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+dir, "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	lines, err := ParseTsharkFields(out, len(fields))
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// ParseTsharkFields splits the output of tshark -T fields -E separator=/t
// into one slice of n fields a line. Empty output is one line with one
// empty field, hence an error: a capture the tests check is never empty.
func ParseTsharkFields(out []byte, n int) ([][]string, error) {
	var lines [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != n {
			return nil, fmt.Errorf("tshark line %q", line)
		}
		lines = append(lines, f)
	}
	return lines, nil
}

// TsharkBytes decodes a byte field as tshark prints it (hex, with or
// without colons between the bytes).
func TsharkBytes(field string) ([]byte, error) {
	return hex.DecodeString(strings.ReplaceAll(field, ":", ""))
}

// TsharkTrue reports whether a boolean field is true: tshark prints "1" or
// "True" depending on its version.
func TsharkTrue(field string) bool { return field == "1" || field == "True" }
