package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestTextSafeEscapesControls(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text\n\tindented", "plain text\n\tindented"},
		{"403 \x1b[2JForbidden", `403 \x1b[2JForbidden`},
		{"bell\a del\x7f cr\r", `bell\x07 del\x7f cr\x0d`},
		{"c1 \u009b31m", `c1 \x9b31m`},
		{"ünïcödé ✓", "ünïcödé ✓"},
	} {
		var b bytes.Buffer
		n, err := textSafe{&b}.Write([]byte(tc.in))
		if err != nil || n != len(tc.in) || b.String() != tc.want {
			t.Errorf("Write(%q) = %d, %v, wrote %q; want %q", tc.in, n, err, b.String(), tc.want)
		}
	}
}

// A name from the command line that holds an escape sequence reaches the
// terminal escaped, in the error imsue prints.
func TestErrorOutputEscaped(t *testing.T) {
	code, _, stderr := runImsue("aka", "--profile", "/nonexistent/\x1b[2Jue.yaml", "--rand", strings.Repeat("0", 32), "--autn", strings.Repeat("0", 32))
	if code != exitUsage {
		t.Fatalf("exit %d; stderr %q", code, stderr)
	}
	if strings.Contains(stderr, "\x1b") || !strings.Contains(stderr, `\x1b[2Jue.yaml`) {
		t.Errorf("stderr %q: want the ESC escaped", stderr)
	}
}
