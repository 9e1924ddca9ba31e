package sipnet

import (
	"bytes"
	"fmt"
	"strconv"
)

// MaxMessage bounds one SIP message (header and body) on a stream.
const MaxMessage = 65535

// Frame finds the first SIP message on a stream (RFC 3261 §18.3). It
// returns how many leading bytes to discard (CRLFs before a start line:
// RFC 3261 §7.5, and the keep-alives of RFC 5626 §3.5.1) and the size of
// the complete message that follows them, or size 0 when more data is
// needed. A message must carry Content-Length on a stream; an absent one
// counts as 0. An error means the stream has no recoverable boundary.
func Frame(buf []byte) (skip, size int, err error) {
	for skip+1 < len(buf) && buf[skip] == '\r' && buf[skip+1] == '\n' {
		skip += 2
	}
	b := buf[skip:]
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > MaxMessage {
			return skip, 0, fmt.Errorf("no end of header within %d bytes", MaxMessage)
		}
		return skip, 0, nil
	}
	cl := 0
	for line := range bytes.SplitSeq(b[:end], []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("content-length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		v, perr := strconv.Atoi(string(bytes.TrimSpace(value)))
		if perr != nil || v < 0 {
			return skip, 0, fmt.Errorf("bad Content-Length %q", bytes.TrimSpace(value))
		}
		cl = v
	}
	total := end + 4 + cl
	if total > MaxMessage {
		return skip, 0, fmt.Errorf("message of %d bytes exceeds %d", total, MaxMessage)
	}
	if len(b) < total {
		return skip, 0, nil
	}
	return skip, total, nil
}
