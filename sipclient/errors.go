package sipclient

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// The errors below are what callers branch on (the CLI maps each to an exit
// code). Errors of the layers below pass through wrapped: isim.ErrMACFailure
// (the network failed authentication), *isim.SyncFailure, the mt sec-agree
// errors, ipsec.ErrUnsupported.

// ErrNoAnswer is wrapped by every error that means the P-CSCF did not answer:
// Timer F expired, the destination was unreachable, or a TCP connection could
// not be set up or broke before the final response (the transport's
// sipnet.ErrNoAnswer).
var ErrNoAnswer = sipnet.ErrNoAnswer

// ErrResyncFailed means the network kept sending challenges whose SQN the
// ISIM refused, even after a resynchronisation (TS 33.102 §6.3.5): the HSS
// did not take the AUTS into account.
var ErrResyncFailed = errors.New("SQN resynchronisation did not converge")

// ErrNoSecurityServer is returned when a 401 to a REGISTER that offered
// sec-agree carries no Security-Server (RFC 3329 §2.3.1). It wraps
// mt.ErrBadSecurityHeader, so it is a security agreement failure.
var ErrNoSecurityServer = fmt.Errorf("%w: 401 carries no Security-Server header", mt.ErrBadSecurityHeader)

// ErrAlgorithmDowngrade is returned when Config.AKAv2 is set and the network
// challenges with a weaker Digest algorithm (AKAv1-MD5 or MD5). As with
// sec-agree, a downgrade is refused rather than followed.
var ErrAlgorithmDowngrade = errors.New("network challenged with a weaker Digest algorithm than AKAv2-MD5")

// ErrBadChallenge wraps every problem with the WWW-Authenticate of a 401:
// absent, malformed, an unknown algorithm or qop, or a nonce that does not
// hold RAND and AUTN.
var ErrBadChallenge = errors.New("unusable WWW-Authenticate challenge")

// ErrNoPassword is returned when the network challenges with plain MD5
// Digest and Config.Password is empty (the profile has no password).
var ErrNoPassword = errors.New("network asks for MD5 Digest but no password is configured")

// ErrTerminated is returned by Run when the network ended the registration
// (reg-event NOTIFY with the registration or this contact terminated as
// rejected/unregistered, or a refresh rejected) and it must not be retried.
var ErrTerminated = errors.New("registration terminated by the network")

// ErrLocalAddress is wrapped by errors that mean the UE could not use its
// own address or port (a fixed unprotected port in use by another program,
// an address not on this host): a local configuration problem, not the
// network's silence (the transport's sipnet.ErrLocalAddress).
var ErrLocalAddress = sipnet.ErrLocalAddress

// ErrNotBound is returned when the 200 OK to a REGISTER does not register
// the UE: it lists no binding of the UE's contact (RFC 3261 §10.2.4), or
// grants it an expiry of 0. The CLI reports it as a rejection.
var ErrNotBound = errors.New("the 200 OK does not hold a binding of the UE's contact")

// ErrUnauthenticated is returned when the network answers the initial
// REGISTER with a 200 OK without challenging it: no Digest, no AKA, so the
// network was not authenticated and no SAs exist. The UE does not accept
// that unless Config.AllowUnauthenticated; the CLI reports it as a
// security agreement failure.
var ErrUnauthenticated = errors.New("the network registered the UE without authentication (no challenge, no SAs)")

// ErrClosed is returned by operations on a closed Client.
var ErrClosed = errors.New("sipclient: client closed")

// TimeoutError reports a transaction that got no final response within
// Timer F; TransportError a request that could not be delivered at all.
// Both wrap ErrNoAnswer. They are the transport's.
type (
	TimeoutError   = sipnet.TimeoutError
	TransportError = sipnet.TransportError
)

// RejectedError is a final non-2xx response that ended a procedure: 403 for
// a wrong response, 404 for an unknown identity, 5xx, and so on. A 401 that
// the UE could not act on is never a RejectedError.
type RejectedError struct {
	Method string
	Status int
	Reason string
	// RetryAfter is the Retry-After the response carried (RFC 3261
	// §20.33), 0 when none.
	RetryAfter time.Duration
	// Warning is the response's Warning header value, if any.
	Warning string
	// Err classifies the rejection further: ErrSecAgreeRefused for a 494,
	// or a 420 naming sec-agree; ErrRechallenged for a second new
	// challenge.
	Err error
	// Challenges are the WWW-Authenticate values of the 401s to the
	// protected REGISTER (ck and ik redacted), when it was challenged again.
	Challenges []string
}

func (e *RejectedError) Error() string {
	s := fmt.Sprintf("%s rejected: %d %s", e.Method, e.Status, e.Reason)
	if e.Warning != "" {
		s += " (Warning: " + e.Warning + ")"
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (Retry-After: %d s)", int64(e.RetryAfter/time.Second))
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *RejectedError) Unwrap() error { return e.Err }

// ErrRechallenged: the protected REGISTER was challenged again twice in
// one procedure; the UE authenticates again once (TS 24.229 §5.1.1.5.1),
// not in a loop. It is a rejection (exit 4).
var ErrRechallenged = errors.New("the protected REGISTER was challenged again twice")

// ErrSecAgreeRefused: the P-CSCF refused sec-agree itself: 494 Security
// Agreement Required (RFC 3329 §2.3.1: what the UE offered is not enough),
// or 420 Bad Extension with Unsupported: sec-agree (it does not do
// sec-agree at all). It is a security agreement failure (exit 7).
var ErrSecAgreeRefused = errors.New("the P-CSCF refused the security agreement")

// IPsecError reports that the Backend could not install the SA set planned
// from a 401 (or remove one). It wraps the Backend's error, which wraps
// ipsec.ErrUnsupported when the host cannot do ESP at all.
type IPsecError struct {
	Op  string // "install" or "remove"
	Set uint64
	Err error
}

func (e *IPsecError) Error() string {
	return fmt.Sprintf("ipsec %s of SA set %d: %v", e.Op, e.Set, e.Err)
}

func (e *IPsecError) Unwrap() error { return e.Err }

// Retry says whether registering again after err makes sense, and after
// how long: a rejection a P-CSCF or registrar may overcome (500, 503, 480,
// 504, RFC 3261 §21.5) waits its Retry-After when it gave one, else backs
// off as RFC 5626 §4.5 describes — min(1800 s, 30 s · 2^(failures-1)),
// taken at random between half and all of it — never at once. failures
// counts the consecutive failures, this one included. Other errors (403,
// sec-agree, a MAC failure, a local problem) are final.
func Retry(err error, failures int) (time.Duration, bool) {
	var rej *RejectedError
	if !errors.As(err, &rej) {
		return 0, false
	}
	switch rej.Status {
	case 500, 503, 480, 504:
	default:
		return 0, false
	}
	if rej.RetryAfter > 0 {
		return rej.RetryAfter, true
	}
	const base, maxWait = 30 * time.Second, 1800 * time.Second
	wait := maxWait
	if failures < 7 { // 30 s · 2^6 > 1800 s
		wait = min(maxWait, base<<max(failures-1, 0))
	}
	return wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1)), true
}
