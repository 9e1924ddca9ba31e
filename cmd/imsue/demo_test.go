package main

import (
	"strings"
	"testing"
)

// TestDemo runs the README's first command: a whole registration and
// de-registration between the software ISIM and the lab core, shown
// message by message.
func TestDemo(t *testing.T) {
	code, stdout, stderr := regRun("demo")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	for _, want := range []string{"SIP/2.0 401 Unauthorized", "Security-Verify: ipsec-3gpp", "SIP/2.0 200 OK",
		"Expires: 0", "registered 001010000000001@", "de-registered (200 OK to Expires: 0)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(stdout, demoK) || strings.Contains(stdout, demoOPc) {
		t.Error("demo output shows the subscriber's K or OPc")
	}

	code, stdout, stderr = regRun("demo", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, stderr)
	}
	r := regJSON(t, stdout)
	dereg, _ := r["deregistration"].(map[string]any)
	if r["result"] != "registered" || r["security"] == nil || dereg["confirmed"] != true {
		t.Fatalf("--json result %v", r)
	}
}
