//go:build !pcsc

package main

import (
	"strings"
	"testing"
)

// TestCardInfoWithoutPCSC: a build without -tags pcsc has the command but
// says why it cannot read cards, with the card exit code.
func TestCardInfoWithoutPCSC(t *testing.T) {
	code, stdout, stderr := cardRun("card", "info", "--json")
	if code != exitCard || !strings.Contains(stderr, "without PC/SC support") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if m := cardJSON(t, stdout); m["exit_code"] != 9.0 {
		t.Fatalf("JSON %v", m)
	}
	if openCard != nil {
		t.Fatal("openCard hook set in a build without PC/SC")
	}
}
