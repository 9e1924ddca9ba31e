package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var instanceParam = regexp.MustCompile(`\+sip\.instance="<([^>]*)>"`)

// Without an imei the UE's +sip.instance is a UUID URN kept beside the SQN
// state (0600): the same in every run. --pani and --smsip reach the
// REGISTER.
func TestInstanceStableAcrossRuns(t *testing.T) {
	core := regCore(t, nil)
	prof := regProfile(t)
	var seen []string
	for range 2 {
		code, _, stderr := regRun(regArgs(prof, core, "--trace", "--pani", "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=0010100010019B01", "--smsip")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		m := instanceParam.FindStringSubmatch(stderr)
		if m == nil || !strings.HasPrefix(m[1], "urn:uuid:") {
			t.Fatalf("no urn:uuid +sip.instance in the trace:\n%s", stderr)
		}
		seen = append(seen, m[1])
		for _, want := range []string{"P-Access-Network-Info: 3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=0010100010019B01", ";+g.3gpp.smsip", "Supported: path, gruu"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the REGISTER lacks %q", want)
			}
		}
	}
	if seen[0] != seen[1] {
		t.Errorf("instance changed between runs: %s, then %s", seen[0], seen[1])
	}
	fi, err := os.Stat(filepath.Join(filepath.Dir(prof), "ue.sqn.instance"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("instance file: %v, %v", fi, err)
	}
}

// With an imei in the profile, the IMEI URN (TS 23.003 §13.8).
func TestInstanceFromIMEI(t *testing.T) {
	core := regCore(t, nil)
	prof := regProfile(t)
	f, err := os.OpenFile(prof, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("imei: \"352099001761481\"\n")
	f.Close()
	code, _, stderr := regRun(regArgs(prof, core, "--trace")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if m := instanceParam.FindStringSubmatch(stderr); m == nil || m[1] != "urn:gsma:imei:35209900-176148-0" {
		t.Errorf("+sip.instance %v; want the IMEI URN", m)
	}
}
