package isim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The SQN state file is text, one fact per line, so that a protocol engineer
// can read it; the last line is a SHA-256 over all the lines before it, so
// that a truncated or hand-edited file is detected instead of being taken
// for a fresh ISIM:
//
//	imsue-sqn-state 1
//	ind-bits 5
//	seq 0 <SEQ_MS[0] in decimal>
//	...
//	seq 31 <SEQ_MS[31]>
//	sha256 <64 lowercase hex digits>
//
// Every line, the last included, ends in a newline.

const (
	stateMagic   = "imsue-sqn-state 1"
	stateINDBits = "ind-bits 5"
	sumPrefix    = "sha256 "
	// maxStateSize bounds what the decoder reads: a valid file is under 1 KiB.
	maxStateSize = 64 << 10
)

// ErrCorruptState reports an SQN state that fails its self-check: truncated,
// edited, or not an imsue state file at all.
var ErrCorruptState = errors.New("corrupt SQN state")

// MarshalText encodes the state in the self-checking text form above.
func (st SQNState) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(1024)
	b.WriteString(stateMagic + "\n" + stateINDBits + "\n")
	for ind, seq := range st.SEQ {
		if seq > SEQMax {
			return nil, fmt.Errorf("SQN state: SEQ_MS[%d] = %d exceeds 43 bits", ind, seq)
		}
		b.WriteString("seq ")
		b.WriteString(strconv.Itoa(ind))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(seq, 10))
		b.WriteByte('\n')
	}
	sum := sha256.Sum256(b.Bytes())
	b.WriteString(sumPrefix)
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// UnmarshalText decodes a state written by MarshalText. Every error wraps
// ErrCorruptState and says which line failed; on error st is unchanged.
func (st *SQNState) UnmarshalText(data []byte) error {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptState, fmt.Sprintf(format, args...))
	}
	if len(data) == 0 {
		return corrupt("empty file")
	}
	if len(data) > maxStateSize {
		return corrupt("%d bytes, more than any state file holds", len(data))
	}
	if data[len(data)-1] != '\n' {
		return corrupt("no newline at the end (truncated?)")
	}
	// The checksum first: it tells truncation and editing apart from a
	// format problem, and nothing below runs on unverified bytes.
	body := data[:len(data)-1]
	cut := bytes.LastIndexByte(body, '\n') + 1
	last := string(body[cut:])
	if len(last) != len(sumPrefix)+2*sha256.Size || last[:len(sumPrefix)] != sumPrefix {
		return corrupt("last line is not a sha256 checksum (truncated?)")
	}
	var want [sha256.Size]byte
	sumHex := last[len(sumPrefix):]
	if strings.ToLower(sumHex) != sumHex {
		return corrupt("checksum line: not lowercase hex")
	}
	if _, err := hex.Decode(want[:], []byte(sumHex)); err != nil {
		return corrupt("checksum line: %v", err)
	}
	if sha256.Sum256(data[:cut]) != want {
		return corrupt("checksum mismatch (truncated or edited)")
	}

	lines := bytes.Split(data[:cut], []byte{'\n'})
	lines = lines[:len(lines)-1] // data[:cut] ends in '\n'
	if len(lines) == 0 || string(lines[0]) != stateMagic {
		return corrupt("line 1: want %q", stateMagic)
	}
	if len(lines) != 2+INDSlots {
		return corrupt("%d lines before the checksum, want %d", len(lines), 2+INDSlots)
	}
	if string(lines[1]) != stateINDBits {
		return corrupt("line 2: want %q", stateINDBits)
	}
	var out SQNState
	for ind := range out.SEQ {
		line := string(lines[2+ind])
		prefix := "seq " + strconv.Itoa(ind) + " "
		if len(line) <= len(prefix) || line[:len(prefix)] != prefix {
			return corrupt("line %d: want %q followed by a number", 3+ind, prefix)
		}
		seq, err := parseDecimal(line[len(prefix):])
		if err != nil || seq > SEQMax {
			return corrupt("line %d: SEQ must be a decimal number below 2^43", 3+ind)
		}
		out.SEQ[ind] = seq
	}
	*st = out
	return nil
}

// parseDecimal accepts only the canonical decimal form (no sign, no leading
// zeros), so each state has exactly one encoding.
func parseDecimal(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not canonical")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a digit")
		}
	}
	return strconv.ParseUint(s, 10, 64)
}
