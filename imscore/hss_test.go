package imscore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
)

// TestHSSVectorsTS35208 configures the HSS one SQN below each test set's SQN
// (same IND) and checks that the next vector, with the test set's RAND, is
// exactly the published AUTN, RES, CK and IK.
func TestHSSVectorsTS35208(t *testing.T) {
	sets := vectors.Milenage()
	if len(sets) == 0 {
		t.Fatal("no test sets")
	}
	for _, ts := range sets {
		t.Run(ts.Name, func(t *testing.T) {
			sqn := getSQN(ts.SQN)
			if sqn>>indBits == 0 {
				t.Skip("SEQ 0 cannot be the next SQN of any state")
			}
			h := newHSS([]Subscriber{{
				IMPI: "u@x", IMPUs: []string{"sip:u@x"},
				K: ts.K, OPc: ts.OPc, AMF: ts.AMF,
				SQN: sqn - 1<<indBits,
			}})
			h.rand = bytes.NewReader(ts.RAND[:])
			v, err := h.generate("u@x", vectorFault{})
			if err != nil {
				t.Fatal(err)
			}
			if v.SQN != sqn {
				t.Errorf("SQN %#x, want %#x", v.SQN, sqn)
			}
			if !bytes.Equal(v.AUTN[:], ts.AUTN[:]) {
				t.Errorf("AUTN %x, want %x", v.AUTN, ts.AUTN)
			}
			if !bytes.Equal(v.XRES[:], ts.RES[:]) {
				t.Errorf("XRES %x, want %x", v.XRES, ts.RES)
			}
			if !bytes.Equal(v.CK[:], ts.CK[:]) {
				t.Errorf("CK %x, want %x", v.CK, ts.CK)
			}
			if !bytes.Equal(v.IK[:], ts.IK[:]) {
				t.Errorf("IK %x, want %x", v.IK, ts.IK)
			}
		})
	}
}

// TestHSSSequence checks SEQ‖IND handling: SEQ increments by one, IND stays
// the configured one, and a stale vector repeats the last SQN.
func TestHSSSequence(t *testing.T) {
	const ind = 10
	h := newHSS([]Subscriber{{IMPI: "u@x", IMPUs: []string{"sip:u@x"}, SQN: 1<<indBits | ind}})
	want := []uint64{2<<indBits | ind, 3<<indBits | ind} // libosmocore's 42 → 74 → 106 pattern
	for i, w := range want {
		v, err := h.generate("u@x", vectorFault{})
		if err != nil {
			t.Fatal(err)
		}
		if v.SQN != w {
			t.Errorf("vector %d: SQN %d, want %d", i, v.SQN, w)
		}
	}
	v, err := h.generate("u@x", vectorFault{staleSQN: true})
	if err != nil {
		t.Fatal(err)
	}
	if v.SQN != want[len(want)-1] {
		t.Errorf("stale vector SQN %d, want the last issued %d", v.SQN, want[len(want)-1])
	}
	if _, err := h.generate("nobody@x", vectorFault{}); !errors.Is(err, errUnknownSubscriber) {
		t.Errorf("unknown IMPI: err %v", err)
	}
}

// TestHSSBadMAC checks that a badMAC vector fails the UE's MAC check while
// a normal one passes.
func TestHSSBadMAC(t *testing.T) {
	ts := vectors.Milenage()[0]
	k, opc := ts.K, ts.OPc
	h := newHSS([]Subscriber{{IMPI: "u@x", IMPUs: []string{"sip:u@x"}, K: k, OPc: opc}})
	ue := milenage.New(k, opc)
	for _, bad := range []bool{false, true} {
		v, err := h.generate("u@x", vectorFault{badMAC: bad})
		if err != nil {
			t.Fatal(err)
		}
		var ch milenage.Challenge
		r, a := [16]byte(v.RAND), [16]byte(v.AUTN)
		ue.Challenge(&r, &a, &ch)
		if ch.MACOK == bad {
			t.Errorf("badMAC=%v: UE MAC check %v", bad, ch.MACOK)
		}
	}
}

// TestHSSResync opens published AUTS values: test set 1's (SQN_MS = SQN)
// and libosmocore's (SQN_MS = 0x1f), and checks the next vector's SQN.
func TestHSSResync(t *testing.T) {
	set1 := vectors.Milenage()[0]
	type tc struct {
		name   string
		k, opc [16]byte
		rand   isim.RAND
		auts   isim.AUTS
		sqnMS  uint64
	}
	cases := []tc{{
		name: set1.Name, k: set1.K, opc: set1.OPc, rand: set1.RAND,
		auts: set1.AUTS, sqnMS: getSQN(set1.SQN),
	}}
	for _, e := range vectors.MilenageExtra() {
		if e.Kind == vectors.ExtraResync {
			cases = append(cases, tc{name: e.Name, k: e.K, opc: e.OPc, rand: e.RAND, auts: e.AUTS, sqnMS: getSQN(e.SQNMS)})
		}
	}
	if len(cases) < 2 {
		t.Fatalf("only %d AUTS vectors found", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHSS([]Subscriber{{IMPI: "u@x", IMPUs: []string{"sip:u@x"}, K: c.k, OPc: c.opc, SQN: 5 << indBits}})
			auts := c.auts
			got, err := h.resync("u@x", c.rand, auts)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.sqnMS {
				t.Errorf("SQN_MS %#x, want %#x", got, c.sqnMS)
			}
			v, err := h.generate("u@x", vectorFault{})
			if err != nil {
				t.Fatal(err)
			}
			if v.SQN>>indBits != c.sqnMS>>indBits+1 {
				t.Errorf("next SQN %#x: SEQ %d, want SEQ_MS+1 = %d", v.SQN, v.SQN>>indBits, c.sqnMS>>indBits+1)
			}
			auts[13] ^= 1
			if _, err := h.resync("u@x", c.rand, auts); !errors.Is(err, errBadAUTS) {
				t.Errorf("corrupted MAC-S: err %v, want errBadAUTS", err)
			}
		})
	}
}
