package main

import (
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"
)

// textSafe wraps a terminal-bound writer so that control characters from
// the network (a reason phrase, a header value, a whole message in
// --trace) or from a file name are shown escaped (\x1b) instead of acting
// on the terminal: an ESC sequence in a 403's reason phrase could
// otherwise rewrite the screen. Newline and tab pass; so does all other
// text. JSON output never holds raw control characters (encoding/json
// escapes them), so it passes unchanged.
type textSafe struct{ w io.Writer }

func (s textSafe) Write(p []byte) (int, error) {
	if !hasControl(p) {
		return s.w.Write(p)
	}
	total := len(p)
	var b bytes.Buffer
	b.Grow(len(p) + 16)
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == utf8.RuneError && n == 1:
			b.WriteByte(p[0]) // not UTF-8: passed as it is, like other text
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.Write(p[:n])
		}
		p = p[n:]
	}
	if _, err := s.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return total, nil
}

// hasControl reports whether p holds a C0 control other than \n and \t,
// DEL, or the lead byte of a UTF-8 encoded C1 control.
func hasControl(p []byte) bool {
	for i, c := range p {
		if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || (c == 0xc2 && i+1 < len(p) && p[i+1] < 0xa0) {
			return true
		}
	}
	return false
}
