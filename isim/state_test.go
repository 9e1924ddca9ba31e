package isim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// testdata/state_v1.sqn was written by a script outside this package (its
// checksum computed independently): it pins the file format.
func goldenState() SQNState {
	var st SQNState
	st.SEQ[1], st.SEQ[10], st.SEQ[31] = 1, 3, SEQMax-1
	return st
}

func TestStateGolden(t *testing.T) {
	golden, err := os.ReadFile("testdata/state_v1.sqn")
	if err != nil {
		t.Fatal(err)
	}
	var st SQNState
	if err := st.UnmarshalText(golden); err != nil {
		t.Fatalf("decode golden file: %v", err)
	}
	if st != goldenState() {
		t.Fatalf("decoded %v, want %v", st.SEQ, goldenState().SEQ)
	}
	enc, err := goldenState().MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, golden) {
		t.Fatalf("encoding differs from the golden file:\n%s\nwant:\n%s", enc, golden)
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, st := range []SQNState{{}, goldenState(), state(map[int]uint64{0: SEQMax, 5: 12345})} {
		b, err := st.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got SQNState
		if err := got.UnmarshalText(b); err != nil {
			t.Fatalf("decode own encoding: %v\n%s", err, b)
		}
		if got != st {
			t.Fatalf("round trip changed the state: %v → %v", st.SEQ, got.SEQ)
		}
	}
}

func TestStateMarshalRefusesOverflow(t *testing.T) {
	st := state(map[int]uint64{4: SEQMax + 1})
	if _, err := st.MarshalText(); err == nil || !strings.Contains(err.Error(), "SEQ_MS[4]") {
		t.Fatalf("want an error naming SEQ_MS[4], got %v", err)
	}
}

// Every truncation and every single-byte change of a valid file must be
// detected: a damaged state must never pass for some other valid state.
func TestStateDetectsDamage(t *testing.T) {
	good, err := goldenState().MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(good); n++ {
		var st SQNState
		if err := st.UnmarshalText(good[:n]); !errors.Is(err, ErrCorruptState) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrCorruptState", n, err)
		}
	}
	for i := range good {
		for _, x := range []byte{0x01, 0x20, 0x80} {
			bad := bytes.Clone(good)
			bad[i] ^= x
			st := goldenState()
			if err := st.UnmarshalText(bad); !errors.Is(err, ErrCorruptState) {
				t.Fatalf("byte %d ^ %#x: err = %v, want ErrCorruptState", i, x, err)
			}
			if st != goldenState() {
				t.Fatalf("byte %d ^ %#x: a failed decode changed the state", i, x)
			}
		}
	}
}

// withSum re-checksums a hand-made body, to test the checks behind the
// checksum.
func withSum(body string) []byte {
	sum := sha256.Sum256([]byte(body))
	return []byte(body + "sha256 " + hex.EncodeToString(sum[:]) + "\n")
}

func TestStateFormatErrors(t *testing.T) {
	zero := func(from int) string {
		var s strings.Builder
		for i := from; i < INDSlots; i++ {
			s.WriteString("seq " + strconv.Itoa(i) + " 0\n")
		}
		return s.String()
	}
	head := "imsue-sqn-state 1\nind-bits 5\n"
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"no final newline", []byte(strings.TrimSuffix(head, "\n")), "no newline"},
		{"no checksum", []byte(head + zero(0)), "not a sha256 checksum"},
		{"other version", withSum("imsue-sqn-state 2\nind-bits 5\n" + zero(0)), "line 1"},
		{"other IND bits", withSum("imsue-sqn-state 1\nind-bits 4\n" + zero(0)), "line 2"},
		{"missing slot", withSum(head + zero(1)), "lines before the checksum"},
		{"slot out of order", withSum(head + "seq 1 0\nseq 0 0\n" + zero(2)), "line 3"},
		{"leading zero", withSum(head + "seq 0 01\n" + zero(1)), "line 3"},
		{"sign", withSum(head + "seq 0 +1\n" + zero(1)), "line 3"},
		{"SEQ over 43 bits", withSum(head + "seq 0 8796093022208\n" + zero(1)), "line 3"},
		{"not a number", withSum(head + "seq 0 x\n" + zero(1)), "line 3"},
		{"extra space", withSum(head + "seq 0  1\n" + zero(1)), "line 3"},
		{"too big", bytes.Repeat([]byte("a\n"), maxStateSize), "more than any state file"},
	}
	for _, tt := range tests {
		var st SQNState
		err := st.UnmarshalText(tt.data)
		if !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want ErrCorruptState mentioning %q", tt.name, err, tt.want)
		}
	}
}

// FuzzStateDecode: the decoder never panics, and whatever it accepts
// re-encodes to exactly the same bytes (one encoding per state).
func FuzzStateDecode(f *testing.F) {
	golden, _ := goldenState().MarshalText()
	zero, _ := SQNState{}.MarshalText()
	f.Add(golden)
	f.Add(zero)
	f.Add(golden[:len(golden)/2])
	f.Add([]byte("imsue-sqn-state 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st SQNState
		if err := st.UnmarshalText(data); err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("error does not wrap ErrCorruptState: %v", err)
			}
			return
		}
		enc, err := st.MarshalText()
		if err != nil {
			t.Fatalf("accepted state does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("accepted a non-canonical encoding:\n%q\nre-encodes as\n%q", data, enc)
		}
	})
}

// FuzzStateBody fuzzes the lines behind a valid checksum, which random
// bytes almost never reach: the parser must still refuse anything but the
// canonical form, and never panic.
func FuzzStateBody(f *testing.F) {
	golden, _ := goldenState().MarshalText()
	body := golden[:bytes.LastIndex(golden[:len(golden)-1], []byte{'\n'})+1]
	f.Add(body)
	f.Add([]byte("imsue-sqn-state 1\nind-bits 5\nseq 0 1\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		data := withSum(string(body))
		var st SQNState
		if err := st.UnmarshalText(data); err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("error does not wrap ErrCorruptState: %v", err)
			}
			return
		}
		enc, err := st.MarshalText()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("accepted a non-canonical body %q (%v)", body, err)
		}
	})
}
