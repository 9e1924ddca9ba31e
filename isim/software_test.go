package isim

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim/milenage"
)

var ctx = context.Background()

func newSoft(t testing.TB, k, opc Key, store Store, p Policy) *Software {
	t.Helper()
	s, err := NewSoftware(Config{Identity: Identity{IMPI: "u@d", IMPUs: []string{"sip:u@d"}, Domain: "d"}, K: k, OPc: opc, Store: store, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func syncAUTS(t testing.TB, err error) AUTS {
	t.Helper()
	var sf *SyncFailure
	if !errors.As(err, &sf) {
		t.Fatalf("want a *SyncFailure, got %v", err)
	}
	if errors.Is(err, ErrMACFailure) {
		t.Fatalf("sync failure also claims a MAC failure: %v", err)
	}
	return sf.AUTS
}

// TestSoftwareVectors runs the 15 TS 35.208 sets through the software ISIM,
// keyed from OPc and, separately, from OP: the first challenge is accepted
// with the expected RES/CK/IK, the replay gives exactly the vector's AUTS
// for SQN_MS = SQN, and a one-bit change of AUTN's MAC is a MAC failure.
// The sets' SQNs are far above a fresh ISIM's, so Δ is off here.
func TestSoftwareVectors(t *testing.T) {
	noDelta := Policy{Delta: SEQMax}
	for _, ts := range vectors.Milenage() {
		k := Key(ts.K)
		for _, from := range []string{"OPc", "OP"} {
			t.Run(ts.Name+"/"+from, func(t *testing.T) {
				opc := Key(ts.OPc)
				if from == "OP" {
					opc = milenage.OPc(k, ts.OP)
				}
				store := NewMemoryStore(SQNState{})
				s := newSoft(t, k, opc, store, noDelta)
				rand, autn := RAND(ts.RAND), AUTN(ts.AUTN)

				bad := autn
				bad[15] ^= 1
				if _, err := s.Authenticate(ctx, rand, bad); !errors.Is(err, ErrMACFailure) {
					t.Fatalf("tampered MAC: %v, want ErrMACFailure", err)
				}
				if store.State() != (SQNState{}) {
					t.Fatal("a MAC failure changed the SQN state")
				}

				res, err := s.Authenticate(ctx, rand, autn)
				if err != nil {
					t.Fatalf("first challenge: %v", err)
				}
				if !bytes.Equal(res.RES, ts.RES[:]) || res.CK != ts.CK || res.IK != ts.IK {
					t.Fatalf("RES %x CK %x IK %x, want %x %x %x", res.RES, res.CK, res.IK, ts.RES, ts.CK, ts.IK)
				}
				if got, want := store.State().Highest(), SQNFromBytes(ts.SQN); got != want {
					t.Fatalf("state holds %v, want the vector's SQN %v", got, want)
				}

				_, err = s.Authenticate(ctx, rand, autn)
				if got, want := syncAUTS(t, err), AUTS(ts.AUTS); got != want {
					t.Fatalf("replay: AUTS %x, want %x", got, want)
				}
			})
		}
	}
}

// TestSoftwareLibosmocore: an independent implementation's vector for a
// small SQN (0x22 = SEQ 1, IND 2), which a fresh ISIM accepts under the
// default policy.
func TestSoftwareLibosmocore(t *testing.T) {
	var x *vectors.ExtraVector
	v := vectors.MilenageExtra()
	for i := range v {
		if v[i].Kind == vectors.ExtraChallenge {
			x = &v[i]
		}
	}
	if x == nil {
		t.Fatal("no libosmocore AUTN vector")
	}
	store := NewMemoryStore(SQNState{})
	s := newSoft(t, x.K, x.OPc, store, Policy{})
	res, err := s.Authenticate(ctx, x.RAND, x.AUTN)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.RES, x.RES[:]) || res.CK != x.CK || res.IK != x.IK {
		t.Fatalf("RES %x CK %x IK %x", res.RES, res.CK, res.IK)
	}
	if want := SQNFromBytes(x.SQN); store.State().Highest() != want {
		t.Fatalf("SQN_MS %v, want %v", store.State().Highest(), want)
	}
}

// network is the HE side of a test: it builds challenges with the
// MILENAGE package and opens AUTS the way an HSS does.
type network struct {
	c    *milenage.Cipher
	amf  [2]byte
	rand RAND
}

func newNetwork(k, opc Key) *network {
	return &network{c: milenage.New(k, opc), amf: [2]byte{0x80, 0x00}}
}

func (n *network) challenge(s SQN) (RAND, AUTN) {
	n.rand[0]++ // a new RAND per challenge
	return n.rand, AUTN(n.c.AUTN(n.rand, s.Bytes(), n.amf))
}

func (n *network) open(t testing.TB, rand RAND, auts AUTS) SQN {
	t.Helper()
	sqnMS, ok := n.c.OpenAUTS(rand, auts)
	if !ok {
		t.Fatalf("MAC-S of AUTS %x does not verify", auts)
	}
	return SQNFromBytes(sqnMS)
}

func testKeys() (Key, Key) {
	return Key{0x46, 0x5b, 0x5c, 0xe8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		Key{0xcd, 0x63, 0xcb, 0x71, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
}

// TestSoftwareScenario is the end-to-end story at the package level.
func TestSoftwareScenario(t *testing.T) {
	k, opc := testKeys()
	net := newNetwork(k, opc)
	store := NewMemoryStore(SQNState{})
	s := newSoft(t, k, opc, store, Policy{})

	type step struct {
		name   string
		sqn    SQN
		replay bool // reuse the previous step's RAND and AUTN
		wantOK bool
		sqnMS  SQN // expected SQN_MS in the AUTS when refused
	}
	steps := []step{
		{"fresh ISIM accepts SEQ 5 IND 3", MakeSQN(5, 3), false, true, 0},
		{"replay is refused, SQN_MS = the accepted SQN", MakeSQN(5, 3), true, false, MakeSQN(5, 3)},
		{"lower SEQ in another IND slot is accepted", MakeSQN(2, 4), false, true, 0},
		{"lower SEQ on the same IND is refused", MakeSQN(4, 3), false, false, MakeSQN(5, 3)},
		{"next SEQ on IND 3", MakeSQN(6, 3), false, true, 0},
		{"too far ahead (Δ)", MakeSQN(6+DefaultDelta+1, 0), false, false, MakeSQN(6, 3)},
		{"exactly Δ ahead", MakeSQN(6+DefaultDelta, 0), false, true, 0},
	}
	var rand RAND
	var autn AUTN
	for _, st := range steps {
		if !st.replay {
			rand, autn = net.challenge(st.sqn)
		}
		before := store.State()
		res, err := s.Authenticate(ctx, rand, autn)
		if st.wantOK {
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			wantRES, wantCK, wantIK, _ := net.c.F2345(rand)
			if !bytes.Equal(res.RES, wantRES[:]) || res.CK != wantCK || res.IK != wantIK {
				t.Fatalf("%s: wrong RES/CK/IK", st.name)
			}
			if store.State().SEQ[st.sqn.IND()] != st.sqn.SEQ() {
				t.Fatalf("%s: slot %d holds %d", st.name, st.sqn.IND(), store.State().SEQ[st.sqn.IND()])
			}
			continue
		}
		auts := syncAUTS(t, err)
		if got := net.open(t, rand, auts); got != st.sqnMS {
			t.Fatalf("%s: AUTS carries SQN_MS %v, want %v", st.name, got, st.sqnMS)
		}
		if store.State() != before {
			t.Fatalf("%s: a refused SQN changed the state", st.name)
		}
		if !strings.Contains(err.Error(), st.sqn.String()) {
			t.Fatalf("%s: error does not name the refused SQN: %v", st.name, err)
		}
	}
}

// TestSoftwareResync: after a sync failure, an HSS that restarts above the
// SQN_MS it recovered is accepted at once, whatever IND it uses.
func TestSoftwareResync(t *testing.T) {
	k, opc := testKeys()
	net := newNetwork(k, opc)
	var st SQNState
	st.SEQ[7], st.SEQ[2] = 1000, 400
	s := newSoft(t, k, opc, NewMemoryStore(st), Policy{})
	rand, autn := net.challenge(MakeSQN(3, 7)) // an HSS that lost its state
	_, err := s.Authenticate(ctx, rand, autn)
	sqnMS := net.open(t, rand, syncAUTS(t, err))
	if sqnMS != MakeSQN(1000, 7) {
		t.Fatalf("SQN_MS %v, want SEQ 1000 IND 7", sqnMS)
	}
	for ind := range INDSlots {
		s := newSoft(t, k, opc, NewMemoryStore(st), Policy{})
		rand, autn := net.challenge(MakeSQN(sqnMS.SEQ()+1, ind))
		if _, err := s.Authenticate(ctx, rand, autn); err != nil {
			t.Fatalf("IND %d after resync: %v", ind, err)
		}
	}
}

type failingStore struct{ err error }

func (f failingStore) Update(context.Context, func(*SQNState) (bool, error)) error { return f.err }

func TestSoftwareStoreFailure(t *testing.T) {
	k, opc := testKeys()
	net := newNetwork(k, opc)
	boom := &StateError{Path: "x.sqn", Op: "write", Err: errors.New("disk full")}
	s := newSoft(t, k, opc, failingStore{boom}, Policy{})
	rand, autn := net.challenge(MakeSQN(1, 0))
	_, err := s.Authenticate(ctx, rand, autn)
	var se *StateError
	var sf *SyncFailure
	if !errors.As(err, &se) || errors.As(err, &sf) || errors.Is(err, ErrMACFailure) {
		t.Fatalf("want only the store's error, got %v", err)
	}
}

func TestSoftwareClose(t *testing.T) {
	k, opc := testKeys()
	s := newSoft(t, k, opc, NewMemoryStore(SQNState{}), Policy{})
	if _, err := s.Identity(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, RAND{}, AUTN{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := s.Identity(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Identity after Close: %v", err)
	}
}

func TestSoftwareIdentityIsACopy(t *testing.T) {
	k, opc := testKeys()
	s := newSoft(t, k, opc, NewMemoryStore(SQNState{}), Policy{})
	id, _ := s.Identity(ctx)
	id.IMPUs[0] = "sip:changed@x"
	again, _ := s.Identity(ctx)
	if again.IMPUs[0] != "sip:u@d" {
		t.Fatal("the caller could change the ISIM's identity")
	}
}

func TestNewSoftwareNeedsStore(t *testing.T) {
	if _, err := NewSoftware(Config{}); err == nil {
		t.Fatal("NewSoftware without a store succeeded")
	}
}

// TestKeyNeverPrints checks every fmt path and the text marshalling.
func TestKeyNeverPrints(t *testing.T) {
	k, _ := testKeys()
	cfg := Config{K: k, OPc: k}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		for _, v := range []any{k, &k, cfg, &cfg} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(strings.ToLower(out), "465b5ce8") || strings.Contains(out, "70 91 92") || strings.Contains(out, "[70") {
				t.Errorf("%s of %T prints the key: %s", verb, v, out)
			}
		}
	}
	if b, _ := k.MarshalText(); string(b) != "[redacted]" {
		t.Errorf("MarshalText = %q", b)
	}
	if k.Hex() != "465b5ce80102030405060708090a0b0c" {
		t.Errorf("Hex() = %s", k.Hex())
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		in, err string
	}{
		{"465B5CE8B199B49FAA5F0A2EE238A6BC", ""},
		{"465b5ce8b199b49faa5f0a2ee238a6bc", ""},
		{"465b5ce8b199b49faa5f0a2ee238a6", "want 32 hex digits, got 30"},
		{"465b5ce8b199b49faa5f0a2ee238a6bcd0", "got 34"},
		{"465b5ce8b199b49faa5f0a2ee238a6bg", "bad character at position 32"},
		{"", "got 0"},
	}
	for _, tt := range tests {
		k, err := ParseKey(tt.in)
		if tt.err == "" {
			if err != nil || k.Hex() != strings.ToLower(tt.in) {
				t.Errorf("ParseKey(%q) = %s, %v", tt.in, k.Hex(), err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseKey(%q): err %v, want %q", tt.in, err, tt.err)
		}
		if err != nil && len(tt.in) > 8 && strings.Contains(err.Error(), tt.in[:8]) {
			t.Errorf("ParseKey error quotes the input: %v", err)
		}
	}
}

// FuzzDecodeHex: the hex parser behind every key and flag never panics,
// accepts exactly the 2·n hex digits, and never quotes its input.
func FuzzDecodeHex(f *testing.F) {
	f.Add("465B5CE8B199B49FAA5F0A2EE238A6BC")
	f.Add("465b5ce8b199b49faa5f0a2ee238a6b")
	f.Add("zz")
	f.Add("éé0000000000000000000000000000")
	f.Fuzz(func(t *testing.T, s string) {
		var dst [16]byte
		err := DecodeHex(dst[:], s)
		if err == nil {
			if hex.EncodeToString(dst[:]) != strings.ToLower(s) {
				t.Fatalf("decoded %q as %x", s, dst)
			}
			return
		}
		if len(s) >= 6 && strings.Contains(err.Error(), s) {
			t.Fatalf("error quotes the input: %v", err)
		}
	})
}
