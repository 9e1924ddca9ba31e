package mt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// seqReader yields the given uint32 values big-endian, then io.EOF.
type seqReader struct{ vals []uint32 }

func (r *seqReader) Read(p []byte) (int, error) {
	n := 0
	for len(p)-n >= 4 && len(r.vals) > 0 {
		binary.BigEndian.PutUint32(p[n:], r.vals[0])
		r.vals = r.vals[1:]
		n += 4
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func seq(vals ...uint32) *seqReader { return &seqReader{vals} }

func TestAllocatorSequence(t *testing.T) {
	// Ports 100..104 (n = 5): a draw v gives port 100 + v%5.
	a, err := NewAllocator(PortRange{100, 104}, seq(
		2,      // kept server port: 102
		7, 300, // SPIc: 7 is reserved, 300
		300, 301, // SPIs: 300 equals SPIc, 301
		2, 3, // client port: 102 is the server port, 103
		300, 400, // 2nd SPIc: 300 is live, 400
		401,     // 2nd SPIs
		3, 2, 0, // 2nd client port: 103 is the previous one (and live), 102 kept, 100
		500, 501, // 3rd SPIs (after the first allocation was released)
		0, 3, // 3rd client port: 100 is the previous one, 103 is free again
	))
	if err != nil {
		t.Fatal(err)
	}
	p1, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Params{SPIc: 300, SPIs: 301, PortC: 103, PortS: 102}); p1 != want {
		t.Fatalf("first allocation %+v, want %+v", p1, want)
	}
	p2, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Params{SPIc: 400, SPIs: 401, PortC: 100, PortS: 102}); p2 != want {
		t.Fatalf("second allocation %+v, want %+v", p2, want)
	}
	a.Release(p1)
	a.Release(p1) // no-op
	p3, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Params{SPIc: 500, SPIs: 501, PortC: 103, PortS: 102}); p3 != want {
		t.Fatalf("third allocation %+v, want %+v", p3, want)
	}
	if held := a.Held(); len(held) != 2 || held[0] != p2 || held[1] != p3 {
		t.Errorf("Held() = %+v, want [%+v %+v]", held, p2, p3)
	}
	// The randomness is used up: the next allocation fails cleanly.
	if _, err := a.Allocate(); err == nil || !strings.Contains(err.Error(), "reading randomness") {
		t.Errorf("Allocate with an empty source: %v", err)
	}
}

func TestAllocatorSPIsAfterRelease(t *testing.T) {
	a, err := NewAllocator(PortRange{100, 104}, seq(0, 1000, 1001, 1, 1000, 1002, 1003, 2, 1000, 1001, 3))
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := a.Allocate() // 1000, 1001
	// 1000 is live: the draw skips it.
	if p2, err := a.Allocate(); err != nil || p2.SPIc != 1002 {
		t.Fatalf("second allocation %+v, %v: want SPIc 1002", p2, err)
	} else {
		a.Release(p2)
	}
	a.Release(p1)
	if p3, err := a.Allocate(); err != nil || p3.SPIc != 1000 || p3.SPIs != 1001 {
		t.Fatalf("after release %+v, %v: want SPIs 1000/1001 back", p3, err)
	}
}

func TestAllocatorNeverRepeatsClientPort(t *testing.T) {
	// Even when the previous allocation is already released, the next
	// client port differs from it (TS 33.203 §7.4: port_uc changes).
	a, err := NewAllocator(PortRange{100, 104}, seq(0, 1000, 1001, 1, 2000, 2001, 1, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := a.Allocate()
	a.Release(p1)
	p2, err := a.Allocate()
	if err != nil || p1.PortC != 101 || p2.PortC != 102 {
		t.Fatalf("client ports %d then %d (%v), want 101 then 102", p1.PortC, p2.PortC, err)
	}
}

func TestAllocatorPortBusy(t *testing.T) {
	a, err := NewAllocator(PortRange{100, 109}, seq(
		0, // server port 100
		1000, 1001,
		1,    // client port 101
		2,    // replacement server port 102
		3,    // replacement client port 103
		1, 4, // second replacement client port: 101 is busy, 104
	))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PortBusy(100); err == nil {
		t.Error("PortBusy before any allocation accepted")
	}
	p, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if p.PortS != 100 || p.PortC != 101 {
		t.Fatalf("allocation %+v", p)
	}
	if p, err = a.PortBusy(100); err != nil || p.PortS != 102 || p.PortC != 101 {
		t.Fatalf("after server port busy: %+v, %v", p, err)
	}
	if p, err = a.PortBusy(101); err != nil || p.PortC != 103 || p.PortS != 102 {
		t.Fatalf("after client port busy: %+v, %v", p, err)
	}
	if p, err = a.PortBusy(103); err != nil || p.PortC != 104 {
		t.Fatalf("after second client port busy: %+v, %v", p, err)
	}
	if got, err := a.PortBusy(107); err == nil || got != p {
		t.Errorf("PortBusy of a port not in the allocation: %+v, %v; want an error and %+v", got, err, p)
	}
	if held := a.Held(); len(held) != 1 || held[0] != p {
		t.Errorf("Held() = %+v, want [%+v]", held, p)
	}
}

func TestAllocatorExhausted(t *testing.T) {
	// Three ports: the server port and two alternating client ports.
	a, err := NewAllocator(PortRange{100, 102}, bytes.NewReader(bytes.Repeat([]byte{0, 0, 1, 0}, 1000)))
	if err != nil {
		t.Fatal(err)
	}
	// Every draw is 256: SPIc = 256, then SPIs never finds a second value.
	if _, err := a.Allocate(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("constant randomness: %v, want ErrExhausted", err)
	}
	a, _ = NewAllocator(PortRange{100, 102}, nil)
	p1, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	// The third port is the server port, p1's client port is still held
	// and p2's is the previous one: nothing left.
	if _, err := a.Allocate(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full range: %v, want ErrExhausted", err)
	}
	// A busy client port with nothing to replace it: the allocation comes
	// back unchanged, for the caller to release.
	if got, err := a.PortBusy(p2.PortC); !errors.Is(err, ErrExhausted) || got != p2 {
		t.Fatalf("PortBusy on a full range: %+v, %v; want ErrExhausted and %+v", got, err, p2)
	}
	a.Release(p2)
	a.Release(p1)
	p3, err := a.Allocate()
	if err != nil || p3.PortC != p1.PortC || p3.PortS != p2.PortS {
		t.Fatalf("after release: %+v, %v; want client port %d back", p3, err, p1.PortC)
	}
}

func TestAllocatorZeroRandomness(t *testing.T) {
	a, _ := NewAllocator(PortRange{}, bytes.NewReader(make([]byte, 4096)))
	_, err := a.Allocate()
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "SPIs") {
		t.Fatalf("all-zero randomness: %v", err)
	}
}

func TestNewAllocatorRanges(t *testing.T) {
	for _, r := range []PortRange{{0, 10}, {10, 9}, {10, 11}, {65535, 65535}} {
		if _, err := NewAllocator(r, nil); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
	for _, r := range []PortRange{{}, {10, 12}, {65533, 65535}} {
		if _, err := NewAllocator(r, nil); err != nil {
			t.Errorf("range %v: %v", r, err)
		}
	}
}

// TestAllocatorRegistrations plays many re-registrations with crypto/rand
// and checks the invariants after each: SPIs ≥ 256 and unique among held
// allocations, the server port kept, a new client port every time that is
// neither the previous one nor the server port, everything in range.
func TestAllocatorRegistrations(t *testing.T) {
	r := PortRange{61000, 61009}
	a, err := NewAllocator(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	var prev Params
	for i := range 2000 {
		p, err := a.Allocate()
		if err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
		if p.SPIc < 256 || p.SPIs < 256 || p.SPIc == p.SPIs {
			t.Fatalf("registration %d: SPIs %d %d", i, p.SPIc, p.SPIs)
		}
		if p.PortC < r.Min || p.PortC > r.Max || p.PortS < r.Min || p.PortS > r.Max {
			t.Fatalf("registration %d: ports %d %d outside %v", i, p.PortC, p.PortS, r)
		}
		if i > 0 && (p.PortS != prev.PortS || p.PortC == prev.PortC) {
			t.Fatalf("registration %d: %+v after %+v", i, p, prev)
		}
		if p.PortC == p.PortS {
			t.Fatalf("registration %d: client port = server port %d", i, p.PortC)
		}
		held := a.Held()
		seen := map[uint32]bool{}
		for _, h := range held {
			if seen[h.SPIc] || seen[h.SPIs] {
				t.Fatalf("registration %d: SPI reused among %+v", i, held)
			}
			seen[h.SPIc], seen[h.SPIs] = true, true
		}
		// Old and new set overlap, then the old one goes.
		if i > 0 {
			a.Release(prev)
		}
		prev = p
	}
}

// AllocateAt hands out the chosen client port once; the next allocation
// gets another one (TS 33.203 §7.4), and a held or server port is refused.
func TestAllocateAt(t *testing.T) {
	a, err := NewAllocator(PortRange{Min: 61000, Max: 61010}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.AllocateAt(61005)
	if err != nil || p.PortC != 61005 || p.PortS == 61005 || p.PortS == 0 {
		t.Fatalf("AllocateAt(61005) = %+v, %v", p, err)
	}
	if _, err := a.AllocateAt(61005); err == nil {
		t.Error("a held client port handed out twice")
	}
	if _, err := a.AllocateAt(p.PortS); err == nil {
		t.Error("the server port handed out as a client port")
	}
	q, err := a.Allocate()
	if err != nil || q.PortC == 61005 || q.PortS != p.PortS {
		t.Errorf("next Allocate = %+v, %v; want another client port, the same server port", q, err)
	}
	a.Release(p)
	if r, err := a.AllocateAt(61005); err != nil || r.PortC != 61005 {
		t.Errorf("AllocateAt after Release = %+v, %v", r, err)
	}
}
