package isim

import (
	"encoding/hex"
	"testing"
)

func unhex(t testing.TB, s string, n int) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n {
		t.Fatalf("bad hex %q (want %d bytes): %v", s, n, err)
	}
	return b
}

func sqn6(t testing.TB, s string) SQN { return SQNFromBytes([6]byte(unhex(t, s, 6))) }

func TestSQNFields(t *testing.T) {
	tests := []struct {
		bytes    string
		seq      uint64
		ind      int
		asString string
	}{
		{"000000000000", 0, 0, "000000000000 (SEQ 0, IND 0)"},
		{"000000000021", 1, 1, "000000000021 (SEQ 1, IND 1)"},
		// libosmocore's IND = 10 example: 42, 74, 106 are SEQ 1, 2, 3.
		{"00000000002a", 1, 10, "00000000002a (SEQ 1, IND 10)"},
		{"00000000004a", 2, 10, "00000000004a (SEQ 2, IND 10)"},
		{"00000000006a", 3, 10, "00000000006a (SEQ 3, IND 10)"},
		{"00000000001f", 0, 31, "00000000001f (SEQ 0, IND 31)"},
		{"ffffffffffff", 1<<43 - 1, 31, "ffffffffffff (SEQ 8796093022207, IND 31)"},
		{"ffffffffffe0", 1<<43 - 1, 0, "ffffffffffe0 (SEQ 8796093022207, IND 0)"},
		{"ff9bb4d0b607", 0xff9bb4d0b607 >> 5, 7, "ff9bb4d0b607 (SEQ 8782631830960, IND 7)"},
	}
	for _, tt := range tests {
		s := sqn6(t, tt.bytes)
		if s.SEQ() != tt.seq || s.IND() != tt.ind {
			t.Errorf("%s: SEQ %d IND %d, want %d %d", tt.bytes, s.SEQ(), s.IND(), tt.seq, tt.ind)
		}
		if m := MakeSQN(tt.seq, tt.ind); m != s {
			t.Errorf("MakeSQN(%d, %d) = %v, want %v", tt.seq, tt.ind, m, s)
		}
		if b := s.Bytes(); string(b[:]) != string(unhex(t, tt.bytes, 6)) {
			t.Errorf("%s: Bytes() = %x", tt.bytes, b)
		}
		if s.String() != tt.asString {
			t.Errorf("String() = %q, want %q", s.String(), tt.asString)
		}
	}
}

// state builds an SQNState from IND → SEQ pairs.
func state(slots map[int]uint64) SQNState {
	var st SQNState
	for ind, seq := range slots {
		st.SEQ[ind] = seq
	}
	return st
}

func TestCheck(t *testing.T) {
	const two28 = 1 << 28
	noDelta := Policy{Delta: SEQMax}
	tests := []struct {
		name   string
		state  map[int]uint64
		policy Policy
		seq    uint64
		ind    int
		want   Freshness
	}{
		{"fresh ISIM, SEQ 1", nil, Policy{}, 1, 0, Fresh},
		{"fresh ISIM, SEQ 0 is never fresh", nil, Policy{}, 0, 5, Replayed},
		{"replay in the same slot", map[int]uint64{3: 10}, Policy{}, 10, 3, Replayed},
		{"lower SEQ in the same slot", map[int]uint64{3: 10}, Policy{}, 9, 3, Replayed},
		{"next SEQ in the same slot", map[int]uint64{3: 10}, Policy{}, 11, 3, Fresh},
		{"lower SEQ in another slot", map[int]uint64{3: 10}, Policy{}, 5, 4, Fresh},
		{"same SEQ in another slot", map[int]uint64{3: 10}, Policy{}, 10, 4, Fresh},
		{"lower SEQ in another slot still below its own", map[int]uint64{3: 10, 4: 6}, Policy{}, 5, 4, Replayed},
		{"Δ: exactly 2^28 ahead of a fresh ISIM", nil, Policy{}, two28, 0, Fresh},
		{"Δ: 2^28+1 ahead of a fresh ISIM", nil, Policy{}, two28 + 1, 0, TooFarAhead},
		{"Δ counts from SEQ_MS_max, not the slot", map[int]uint64{7: 100}, Policy{}, 100 + two28, 0, Fresh},
		{"Δ counts from SEQ_MS_max: one too far", map[int]uint64{7: 100}, Policy{}, 101 + two28, 0, TooFarAhead},
		{"custom Δ", map[int]uint64{1: 50}, Policy{Delta: 10}, 60, 2, Fresh},
		{"custom Δ exceeded", map[int]uint64{1: 50}, Policy{Delta: 10}, 61, 2, TooFarAhead},
		{"Δ off: a vector of TS 35.208", nil, noDelta, 0xff9bb4d0b607 >> 5, 7, Fresh},
		{"wrap: the all-ones SEQ is refused", nil, noDelta, SEQMax, 0, AboveLimit},
		{"wrap: one below all-ones is accepted", nil, noDelta, SEQMax - 1, 0, Fresh},
		{"wrap: a limit above the default is lowered", nil, Policy{Delta: SEQMax, MaxSEQ: SEQMax}, SEQMax, 0, AboveLimit},
		{"wrap: custom limit reached", nil, Policy{MaxSEQ: 1000}, 1000, 9, Fresh},
		{"wrap: custom limit exceeded", nil, Policy{MaxSEQ: 1000}, 1001, 9, AboveLimit},
		{"wrap: at the limit nothing is fresh", map[int]uint64{9: 1000}, Policy{MaxSEQ: 1000}, 1001, 9, AboveLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := state(tt.state)
			before := st
			got := st.Check(MakeSQN(tt.seq, tt.ind), tt.policy)
			if got != tt.want {
				t.Fatalf("Check(SEQ %d, IND %d) = %v, want %v", tt.seq, tt.ind, got, tt.want)
			}
			if st != before {
				t.Fatal("Check changed the state")
			}
		})
	}
}

func TestHighest(t *testing.T) {
	tests := []struct {
		name  string
		state map[int]uint64
		want  SQN
	}{
		{"fresh ISIM", nil, 0},
		{"one slot", map[int]uint64{3: 10}, 10<<5 | 3},
		{"highest SEQ wins over higher IND", map[int]uint64{3: 10, 31: 9}, 10<<5 | 3},
		{"tie on SEQ: the higher IND", map[int]uint64{3: 10, 7: 10}, 10<<5 | 7},
		{"slot 0", map[int]uint64{0: 1}, 1 << 5},
	}
	for _, tt := range tests {
		st := state(tt.state)
		if got := st.Highest(); got != tt.want {
			t.Errorf("%s: Highest() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestOutOfOrderINDs plays an HE that hands vectors for two serving nodes
// (IND 1 and IND 2) which the UE uses out of order: every vector is
// accepted once, and none twice.
func TestOutOfOrderINDs(t *testing.T) {
	var st SQNState
	// The HE's SEQ_HE counts 1, 2, 3, 4: 1 and 3 went to IND 1, 2 and 4 to IND 2.
	order := []SQN{MakeSQN(2, 2), MakeSQN(4, 2), MakeSQN(1, 1), MakeSQN(3, 1)}
	for _, s := range order {
		if v := st.Check(s, Policy{}); v != Fresh {
			t.Fatalf("first use of %v: %v", s, v)
		}
		st.Accept(s)
	}
	for _, s := range order {
		if v := st.Check(s, Policy{}); v != Replayed {
			t.Fatalf("replay of %v: %v, want Replayed", s, v)
		}
	}
	if h := st.Highest(); h != MakeSQN(4, 2) {
		t.Fatalf("SQN_MS = %v, want SEQ 4 IND 2", h)
	}
}
