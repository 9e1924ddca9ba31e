package ipsec

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Recorder is the Backend test double: it installs nothing, remembers which
// sets are live, and can be told to fail. It checks the Backend contract:
// a set installed twice, or SPIs reused among live sets, is an error.
type Recorder struct {
	mu       sync.Mutex
	live     map[uint64]*SASet
	Installs int
	Removes  int
	// Expiry is each live set's expiry as Extend last set it (absent:
	// never extended).
	Expiry   map[uint64]time.Time
	FailNext error // returned by the next Install, then cleared
}

func (r *Recorder) Name() string { return "recorder" }

func (r *Recorder) Install(_ context.Context, set *SASet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.FailNext; err != nil {
		r.FailNext = nil
		return err
	}
	if r.live == nil {
		r.live = map[uint64]*SASet{}
	}
	if _, ok := r.live[set.ID]; ok {
		return fmt.Errorf("recorder: SA set %d installed twice", set.ID)
	}
	for _, other := range r.live {
		for i := range other.SAs {
			for j := range set.SAs {
				if other.SAs[i].SPI == set.SAs[j].SPI && other.SAs[i].Dst.Addr() == set.SAs[j].Dst.Addr() {
					return fmt.Errorf("recorder: SPI %d already live in set %d", set.SAs[j].SPI, other.ID)
				}
			}
		}
	}
	r.live[set.ID] = set
	r.Installs++
	return nil
}

// Extend records the new expiry of a live set; a set not live is an error,
// as it is for the kernel.
func (r *Recorder) Extend(_ context.Context, set *SASet, until time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.live[set.ID]; !ok {
		return fmt.Errorf("recorder: extending SA set %d, which is not installed", set.ID)
	}
	if r.Expiry == nil {
		r.Expiry = map[uint64]time.Time{}
	}
	r.Expiry[set.ID] = until
	return nil
}

// Expires returns the expiry Extend last gave set id.
func (r *Recorder) Expires(id uint64) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.Expiry[id]
	return t, ok
}

func (r *Recorder) Remove(_ context.Context, set *SASet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.live[set.ID]; ok {
		delete(r.live, set.ID)
		delete(r.Expiry, set.ID)
		r.Removes++
	}
	return nil
}

func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.live {
		delete(r.live, id)
		r.Removes++
	}
	return nil
}

// Live returns the IDs of the sets installed and not yet removed.
func (r *Recorder) Live() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]uint64, 0, len(r.live))
	for id := range r.live {
		ids = append(ids, id)
	}
	return ids
}
