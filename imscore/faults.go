package imscore

import (
	"strings"
	"sync"
	"time"
)

// Faults injects failures into a running core so that UE tests can exercise
// every error path: lost and late messages, a network that fails
// authentication, an SQN the UE must refuse, rejections, malformed or missing
// headers and a core that stays silent. The zero value injects nothing. All
// methods are safe for concurrent use with the core; one-shot faults apply to
// the next matching message only and then disarm.
type Faults struct {
	mu sync.Mutex

	dropMethod string // "" matches every method
	dropN      int
	delay      time.Duration
	silent     bool

	badMAC, staleSQN    bool
	rejectCode          int
	malformedSecServer  bool
	omitSecServer       bool
	secServer           string
	hasSecServer        bool
	malformedWWWAuth    bool
	retransmitChallenge bool
	rechallenge         int    // correct protected REGISTERs answered with a new challenge
	dropped             uint64 // requests dropped (Stats.FaultDrops)
}

// Rechallenge makes the S-CSCF answer the next n correct responses to its
// challenges with a new challenge instead of a 200, as an S-CSCF whose
// reg-await-auth ran out would (TS 24.229 §5.1.1.5.1): the UE must
// authenticate again over a new temporary SA set. n <= 0 disarms.
func (f *Faults) Rechallenge(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rechallenge = max(n, 0)
}

func (f *Faults) takeRechallenge() bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rechallenge == 0 {
		return false
	}
	f.rechallenge--
	return true
}

// DropRequests drops the next n received requests whose method is method
// (case-insensitive; "" for any method) without answering them, as if they
// were lost on the way. n <= 0 disarms.
func (f *Faults) DropRequests(method string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropMethod, f.dropN = strings.ToUpper(method), max(n, 0)
}

// DelayResponses delays every response the core sends by d (0 disarms); the
// core keeps serving other messages meanwhile.
func (f *Faults) DelayResponses(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = max(d, 0)
}

// Silent makes the core drop every request it receives (on) or serve again (off).
func (f *Faults) Silent(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.silent = on
}

// BadMAC corrupts MAC-A in the AUTN of the next challenge: the UE must
// report a MAC failure (TS 33.102 §6.3.3).
func (f *Faults) BadMAC() { f.set(&f.badMAC) }

// StaleSQN makes the next challenge reuse the last SQN the HSS issued
// instead of a fresh one, which a UE that accepted it must refuse with a
// synchronisation failure (AUTS).
func (f *Faults) StaleSQN() { f.set(&f.staleSQN) }

// Reject answers the next REGISTER with code (e.g. 403, 500, 503) before any
// authentication. A code outside 300..699 disarms.
func (f *Faults) Reject(code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if code < 300 || code > 699 {
		code = 0
	}
	f.rejectCode = code
}

// MalformedSecurityServer makes the next 401 carry a Security-Server that
// does not parse (RFC 3329 grammar broken).
func (f *Faults) MalformedSecurityServer() { f.set(&f.malformedSecServer) }

// OmitSecurityServer makes the next 401 carry no Security-Server at all.
func (f *Faults) OmitSecurityServer() { f.set(&f.omitSecServer) }

// SecurityServer makes the next 401 carry exactly value as its
// Security-Server (e.g. a mechanism the UE never offered, to test downgrade
// protection). The core's own state is unchanged: it still installs the SA
// set it would have announced.
func (f *Faults) SecurityServer(value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secServer, f.hasSecServer = value, true
}

// MalformedWWWAuthenticate makes the next 401 carry a WWW-Authenticate that
// does not parse.
func (f *Faults) MalformedWWWAuthenticate() { f.set(&f.malformedWWWAuth) }

// RetransmitChallenge makes the core send the next 401 twice, as a
// retransmission in the network would; the UE must run AKA once and build
// one SA set.
func (f *Faults) RetransmitChallenge() { f.set(&f.retransmitChallenge) }

func (f *Faults) set(b *bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*b = true
}

// take reads and disarms a one-shot fault.
func (f *Faults) take(b *bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := *b
	*b = false
	return v
}

// drop reports whether a received request of method must be dropped.
func (f *Faults) drop(method string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.silent {
		f.dropped++
		return true
	}
	if f.dropN > 0 && (f.dropMethod == "" || f.dropMethod == strings.ToUpper(method)) {
		f.dropN--
		f.dropped++
		return true
	}
	return false
}

func (f *Faults) responseDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay
}

func (f *Faults) takeReject() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.rejectCode
	f.rejectCode = 0
	return c
}

func (f *Faults) takeSecurityServer() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.secServer, f.hasSecServer
	f.secServer, f.hasSecServer = "", false
	return v, ok
}
