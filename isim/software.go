package isim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/imsue/imsue/isim/milenage"
)

// ErrClosed is returned by an Authenticator used after Close.
var ErrClosed = errors.New("isim: authenticator is closed")

// Config is what a software ISIM is made of. K and OPc are Keys, which never
// print, so a Config in a log line does not leak them.
type Config struct {
	Identity Identity
	K        Key
	// OPc is the derived operator key. For a subscriber provisioned with OP,
	// derive it with milenage.OPc(K, OP).
	OPc Key
	// Store keeps SEQ_MS; a FileStore for a profile, a MemoryStore in tests.
	Store Store
	// Policy tunes the freshness check; the zero value is TS 33.102's
	// example (Δ = 2^28) with the wrap protection of DefaultMaxSEQ.
	Policy Policy
}

// Software is the software ISIM: MILENAGE (TS 35.206) with the SQN
// management of TS 33.102 Annex C.2 over a Store. It implements
// Authenticator.
//
// The AMF separation bit is not enforced: TS 33.401 requires it for EPS
// only, and IMS cores commonly send either value.
type Software struct {
	mu     sync.Mutex // guards cipher (scratch state) and closed
	id     Identity
	cipher *milenage.Cipher
	store  Store
	policy Policy
	closed bool
}

var _ Authenticator = (*Software)(nil)

// NewSoftware returns a software ISIM for cfg.
func NewSoftware(cfg Config) (*Software, error) {
	if cfg.Store == nil {
		return nil, errors.New("isim: software ISIM needs an SQN store")
	}
	id := cfg.Identity
	id.IMPUs = slices.Clone(id.IMPUs)
	return &Software{
		id:     id,
		cipher: milenage.New(cfg.K, cfg.OPc),
		store:  cfg.Store,
		policy: cfg.Policy,
	}, nil
}

// Identity returns the identity the ISIM was configured with.
func (s *Software) Identity(ctx context.Context) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Identity{}, ErrClosed
	}
	id := s.id
	id.IMPUs = slices.Clone(id.IMPUs)
	return id, nil
}

// Authenticate runs the AUTHENTICATE command of TS 31.103 §7.1.2 (IMS AKA
// context) on the software ISIM: MAC-A first (a failure leaves the state
// untouched and returns ErrMACFailure), then the freshness of the recovered
// SQN under the store's lock. A fresh SQN is recorded durably before RES, CK
// and IK are returned. A stale one yields an error that wraps a *SyncFailure
// whose AUTS carries SQN_MS = the highest SQN accepted so far (see
// SQNState.Highest) and says why the SQN was refused.
func (s *Software) Authenticate(ctx context.Context, rand RAND, autn AUTN) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Result{}, ErrClosed
	}
	var ch milenage.Challenge
	s.cipher.Challenge((*[16]byte)(&rand), (*[16]byte)(&autn), &ch)
	if !ch.MACOK {
		return Result{}, ErrMACFailure
	}
	sqn := SQNFromBytes(ch.SQN)
	var (
		verdict Freshness
		sqnMS   SQN
	)
	err := s.store.Update(ctx, func(st *SQNState) (bool, error) {
		verdict = st.Check(sqn, s.policy)
		if verdict != Fresh {
			sqnMS = st.Highest()
			return false, nil
		}
		st.Accept(sqn)
		return true, nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("isim: SQN state: %w", err)
	}
	if verdict != Fresh {
		auts := AUTS(s.cipher.AUTS(rand, sqnMS.Bytes()))
		return Result{}, fmt.Errorf("isim: SQN %v %v; SQN_MS is %v: %w", sqn, verdict, sqnMS, &SyncFailure{AUTS: auts})
	}
	return Result{RES: slices.Clone(ch.RES[:]), CK: ch.CK, IK: ch.IK}, nil
}

// Close ends the use of the ISIM; later calls return ErrClosed.
func (s *Software) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
