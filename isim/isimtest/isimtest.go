// Package isimtest provides a scripted isim.Authenticator for the tests of
// the layers above the ISIM (sipclient, the lab core, the command line): it
// answers each challenge with the next queued outcome, records the
// challenges it was given, and checks the Authenticator contract (no call
// after Close, a context already done is honoured).
package isimtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/imsue/imsue/isim"
)

// Call is one Authenticate call as the double saw it.
type Call struct {
	RAND isim.RAND
	AUTN isim.AUTN
}

type answer struct {
	res isim.Result
	err error
}

// Authenticator is the scripted double. Queue outcomes with Succeed,
// SyncFail, MACFail and Fail; each Authenticate takes the next one. With the
// queue empty it calls Respond, or fails with an error saying the script ran
// out (so an unexpected extra challenge shows up in the test).
//
// It is safe for concurrent use, so a test may inspect it while the code
// under test runs.
type Authenticator struct {
	// Respond answers when the queue is empty; nil means "unexpected call".
	Respond func(rand isim.RAND, autn isim.AUTN) (isim.Result, error)

	mu     sync.Mutex
	id     isim.Identity
	idErr  error
	queue  []answer
	calls  []Call
	closed bool
}

var _ isim.Authenticator = (*Authenticator)(nil)

// New returns a double with identity id and an empty script.
func New(id isim.Identity) *Authenticator { return &Authenticator{id: id} }

// Succeed queues a successful authentication returning res.
func (a *Authenticator) Succeed(res isim.Result) *Authenticator {
	res.RES = slices.Clone(res.RES)
	return a.push(answer{res: res})
}

// SyncFail queues a synchronisation failure carrying auts.
func (a *Authenticator) SyncFail(auts isim.AUTS) *Authenticator {
	return a.push(answer{err: &isim.SyncFailure{AUTS: auts}})
}

// MACFail queues a MAC failure (isim.ErrMACFailure).
func (a *Authenticator) MACFail() *Authenticator {
	return a.push(answer{err: isim.ErrMACFailure})
}

// Fail queues an arbitrary error, e.g. a card or state-file failure.
func (a *Authenticator) Fail(err error) *Authenticator {
	return a.push(answer{err: err})
}

// FailIdentity makes Identity return err.
func (a *Authenticator) FailIdentity(err error) *Authenticator {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.idErr = err
	return a
}

func (a *Authenticator) push(ans answer) *Authenticator {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queue = append(a.queue, ans)
	return a
}

// Calls returns the challenges received so far, in order.
func (a *Authenticator) Calls() []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// Pending returns how many queued outcomes are still unused; a test can
// assert it is zero to prove the code under test asked as often as scripted.
func (a *Authenticator) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue)
}

// Closed reports whether Close was called.
func (a *Authenticator) Closed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// Identity implements isim.Authenticator.
func (a *Authenticator) Identity(ctx context.Context) (isim.Identity, error) {
	if err := ctx.Err(); err != nil {
		return isim.Identity{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return isim.Identity{}, isim.ErrClosed
	}
	if a.idErr != nil {
		return isim.Identity{}, a.idErr
	}
	id := a.id
	id.IMPUs = slices.Clone(id.IMPUs)
	return id, nil
}

// ErrUnscripted is returned for a challenge the script did not expect.
var ErrUnscripted = errors.New("isimtest: no scripted answer")

// Authenticate implements isim.Authenticator. A call with a context already
// done is not recorded and consumes nothing.
func (a *Authenticator) Authenticate(ctx context.Context, rand isim.RAND, autn isim.AUTN) (isim.Result, error) {
	if err := ctx.Err(); err != nil {
		return isim.Result{}, err
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return isim.Result{}, isim.ErrClosed
	}
	a.calls = append(a.calls, Call{RAND: rand, AUTN: autn})
	n := len(a.calls)
	if len(a.queue) > 0 {
		ans := a.queue[0]
		a.queue = a.queue[1:]
		a.mu.Unlock()
		ans.res.RES = slices.Clone(ans.res.RES)
		return ans.res, ans.err
	}
	respond := a.Respond
	a.mu.Unlock()
	if respond == nil {
		return isim.Result{}, fmt.Errorf("%w for challenge %d", ErrUnscripted, n)
	}
	return respond(rand, autn)
}

// Close implements isim.Authenticator; later calls return isim.ErrClosed.
func (a *Authenticator) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	return nil
}
