package mt

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// PortRange is an inclusive range of protected ports.
type PortRange struct {
	Min, Max uint16
}

// DefaultPortRange is where protected ports come from unless configured:
// 61000–65535. It lies in the IANA dynamic range (49152–65535) and above
// Linux's default ip_local_port_range (32768–60999), so the kernel never
// hands these ports to someone's ephemeral bind or connect and PortBusy
// stays rare. 4536 ports are far more than the three or four a UE holds.
var DefaultPortRange = PortRange{Min: 61000, Max: 65535}

// ErrExhausted: the Allocator found no free SPI or port.
var ErrExhausted = errors.New("mt: no free SPI or protected port")

// draws is how many random values the Allocator tries before it gives up on
// an SPI (2^32 values: only a broken randomness source gets there) or falls
// back to scanning for a port.
const draws = 64

// Allocator chooses the SPIs and protected ports one side announces in its
// Security-Client (UE) or Security-Server (P-CSCF): Params.PortS is the
// server port (port_us, port_ps), chosen once and kept; Params.PortC is the
// client port (port_uc, port_pc), new at every (re-)registration as
// TS 33.203 §7.4 requires.
//
// SPIs are random (from crypto/rand unless another source is injected),
// at least 256 (0..255 are reserved, RFC 4303 §2.1) and unique among the
// allocations not yet released. A new client port differs from the server
// port, from the previous client port and from every client port still
// held. The Allocator does no I/O: the caller binds the ports and reports a
// busy one with PortBusy. It is safe for concurrent use.
type Allocator struct {
	mu    sync.Mutex
	rnd   io.Reader
	ports PortRange
	kept  uint16   // PortS once chosen
	prevC uint16   // the last PortC handed out
	live  []Params // allocations not yet released, oldest first
	busy  map[uint16]struct{}
}

// NewAllocator returns an Allocator drawing ports from r (the zero
// PortRange means DefaultPortRange) and randomness from rnd (nil means
// crypto/rand). The range must hold at least three ports: the server port
// and two client ports that alternate.
func NewAllocator(r PortRange, rnd io.Reader) (*Allocator, error) {
	if r == (PortRange{}) {
		r = DefaultPortRange
	}
	if r.Min == 0 || r.Max < r.Min || int(r.Max)-int(r.Min) < 2 {
		return nil, fmt.Errorf("mt: protected port range %d-%d: need at least 3 ports, none of them 0", r.Min, r.Max)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return &Allocator{rnd: rnd, ports: r, busy: map[uint16]struct{}{}}, nil
}

// Allocate returns the Params for a new registration or re-registration:
// two new SPIs (SPIc, SPIs), a new client port and the kept server port
// (chosen at the first call). Release them when their SA set is dropped, or
// when the registration attempt ends without one.
func (a *Allocator) Allocate() (Params, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.kept == 0 {
		p, err := a.port()
		if err != nil {
			return Params{}, err
		}
		a.kept = p
	}
	p, err := a.spis()
	if err != nil {
		return Params{}, err
	}
	if p.PortC, err = a.port(); err != nil {
		return Params{}, err
	}
	p.PortS = a.kept
	a.prevC = p.PortC
	a.live = append(a.live, p)
	return p, nil
}

// AllocateAt is Allocate with the client port chosen by the caller (a
// fixed port_uc for reproducible captures): it must lie outside every
// allocation still held and differ from the kept server port. Later
// allocations get new client ports as usual (TS 33.203 §7.4).
func (a *Allocator) AllocateAt(portC uint16) (Params, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if portC == 0 {
		return Params{}, errors.New("mt: client port 0")
	}
	if portC == a.kept {
		return Params{}, fmt.Errorf("mt: client port %d is the server port", portC)
	}
	for _, l := range a.live {
		if l.PortC == portC {
			return Params{}, fmt.Errorf("mt: client port %d is held by a live allocation", portC)
		}
	}
	p, err := a.spis()
	if err != nil {
		return Params{}, err
	}
	if a.kept == 0 {
		for {
			if a.kept, err = a.port(); err != nil {
				return Params{}, err
			}
			if a.kept != portC {
				break
			}
		}
	}
	p.PortC, p.PortS = portC, a.kept
	a.prevC = portC
	a.live = append(a.live, p)
	return p, nil
}

// spis draws the two SPIs of a new allocation. a.mu must be held.
func (a *Allocator) spis() (p Params, err error) {
	if p.SPIc, err = a.spi(0); err != nil {
		return Params{}, err
	}
	if p.SPIs, err = a.spi(p.SPIc); err != nil {
		return Params{}, err
	}
	return p, nil
}

// PortBusy tells the Allocator that port p of the latest allocation could
// not be bound. p is never handed out again; the latest allocation gets a
// new port in its place (a new server port if p was the kept one), and the
// updated Params are returned. On error the latest allocation is returned
// unchanged, so that the caller can still Release it.
func (a *Allocator) PortBusy(p uint16) (Params, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.live) == 0 {
		return Params{}, fmt.Errorf("mt: port %d reported busy, but no allocation is pending", p)
	}
	latest := &a.live[len(a.live)-1]
	if p != latest.PortC && p != latest.PortS {
		return *latest, fmt.Errorf("mt: port %d reported busy is not one of the latest allocation's (%d, %d)", p, latest.PortC, latest.PortS)
	}
	a.busy[p] = struct{}{}
	np, err := a.port()
	if err != nil {
		return *latest, err
	}
	if p == latest.PortS {
		a.kept, latest.PortS = np, np
	} else {
		a.prevC, latest.PortC = np, np
	}
	return *latest, nil
}

// Release returns the SPIs and client port of an allocation (found by its
// SPIs) to the pool. Releasing what is not held is a no-op. The server port
// stays kept.
func (a *Allocator) Release(p Params) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, l := range a.live {
		if l.SPIc == p.SPIc && l.SPIs == p.SPIs {
			a.live = append(a.live[:i], a.live[i+1:]...)
			return
		}
	}
}

// Held returns the allocations not yet released, oldest first.
func (a *Allocator) Held() []Params {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Params(nil), a.live...)
}

// spi draws an SPI ≥ 256 that no live allocation holds and that is not other.
func (a *Allocator) spi(other uint32) (uint32, error) {
	for range draws {
		v, err := a.uint32()
		if err != nil {
			return 0, err
		}
		if v >= minSPI && v != other && !a.spiLive(v) {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: %d random SPIs were all reserved or in use (broken randomness source?)", ErrExhausted, draws)
}

func (a *Allocator) spiLive(v uint32) bool {
	for _, l := range a.live {
		if l.SPIc == v || l.SPIs == v {
			return true
		}
	}
	return false
}

// port draws a free port: not kept, not the previous client port, not a
// live client port, not busy. After draws failures it scans the range from
// a random place, so a nearly full range still yields its free ports.
func (a *Allocator) port() (uint16, error) {
	n := uint32(a.ports.Max-a.ports.Min) + 1
	var start uint32
	for range draws {
		v, err := a.uniform(n)
		if err != nil {
			return 0, err
		}
		start = v
		if p := a.ports.Min + uint16(v); a.portFree(p) {
			return p, nil
		}
	}
	for i := range n {
		if p := a.ports.Min + uint16((start+i)%n); a.portFree(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: every port in %d-%d is in use or busy", ErrExhausted, a.ports.Min, a.ports.Max)
}

func (a *Allocator) portFree(p uint16) bool {
	if p == a.kept || p == a.prevC {
		return false
	}
	if _, ok := a.busy[p]; ok {
		return false
	}
	for _, l := range a.live {
		if l.PortC == p {
			return false
		}
	}
	return true
}

// uniform returns a uniform value in [0, n) by rejection sampling.
func (a *Allocator) uniform(n uint32) (uint32, error) {
	limit := (1 << 32) / uint64(n) * uint64(n)
	for range draws {
		v, err := a.uint32()
		if err != nil {
			return 0, err
		}
		if uint64(v) < limit {
			return v % n, nil
		}
	}
	return 0, fmt.Errorf("mt: allocator: randomness source keeps returning the top of the range")
}

func (a *Allocator) uint32() (uint32, error) {
	var b [4]byte
	if _, err := io.ReadFull(a.rnd, b[:]); err != nil {
		return 0, fmt.Errorf("mt: allocator: reading randomness: %w", err)
	}
	return binary.BigEndian.Uint32(b[:]), nil
}
