package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/ipsec/kernel"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/profile"
	"github.com/imsue/imsue/sipclient"
)

// classCases are errors of every class as the layers build them, with the
// outcome and exit code the README's exit code table gives them.
var classCases = []struct {
	name    string
	err     error
	outcome string
	code    int
}{
	{"interrupted", fmt.Errorf("%w: %w", errInterrupted, context.Canceled), "interrupted", exitNoAnswer},
	{"interrupted while waiting for an answer", fmt.Errorf("%w: %w", errInterrupted, &sipclient.TimeoutError{Method: "REGISTER", After: time.Second}), "interrupted", exitNoAnswer},

	{"Timer F", &sipclient.TimeoutError{Method: "REGISTER", After: 32 * time.Second}, "no_answer", exitNoAnswer},
	{"unreachable", &sipclient.TransportError{Method: "REGISTER", Err: syscall.ECONNREFUSED}, "no_answer", exitNoAnswer},
	{"MAC failure", isim.ErrMACFailure, "mac_failure", exitMAC},
	{"resync did not converge", fmt.Errorf("%w: refused again (%w)", sipclient.ErrResyncFailed, &isim.SyncFailure{}), "sync_failure", exitSync},
	{"AUTS", &isim.SyncFailure{AUTS: isim.AUTS{1, 2, 3}}, "sync_failure", exitSync},
	{"nothing acceptable", mt.ErrNoAcceptableMechanism, "sec_agree_failure", exitSecAgree},
	{"bad Security-Server", mt.ErrBadSecurityHeader, "sec_agree_failure", exitSecAgree},
	{"no Security-Server", sipclient.ErrNoSecurityServer, "sec_agree_failure", exitSecAgree},
	{"unsupported algorithm", mt.ErrUnsupportedAlgorithm, "sec_agree_failure", exitSecAgree},
	{"Digest downgrade", sipclient.ErrAlgorithmDowngrade, "sec_agree_failure", exitSecAgree},
	{"registered without a challenge", sipclient.ErrUnauthenticated, "sec_agree_failure", exitSecAgree},
	{"494", &sipclient.RejectedError{Method: "REGISTER", Status: 494, Err: sipclient.ErrSecAgreeRefused}, "sec_agree_failure", exitSecAgree},
	{"SA install", &sipclient.IPsecError{Op: "install", Set: 1, Err: &kernel.Error{Op: "add SA", Err: syscall.EPERM}}, "ipsec_failure", exitIPsec},
	{"no ESP", ipsec.ErrUnsupported, "ipsec_failure", exitIPsec},
	{"kernel backend not built", errKernelNotBuilt, "ipsec_failure", exitIPsec},
	{"kernel backend", &kernel.Error{Op: "open netns", Object: "/run/netns/x", Err: syscall.ENOENT}, "ipsec_failure", exitIPsec},
	{"403", &sipclient.RejectedError{Method: "REGISTER", Status: 403, Reason: "Forbidden"}, "rejected", exitRejected},
	{"bad challenge", fmt.Errorf("%w: 401 without WWW-Authenticate", sipclient.ErrBadChallenge), "bad_challenge", exitRejected},
	{"terminated", sipclient.ErrTerminated, "terminated", exitRejected},
	{"200 without the UE's binding", sipclient.ErrNotBound, "rejected", exitRejected},
	{"terminated by a rejected refresh", fmt.Errorf("%w: %w", sipclient.ErrTerminated, &sipclient.RejectedError{Method: "REGISTER", Status: 403}), "rejected", exitRejected},

	{"malformed PIN", fmt.Errorf("%w: 4 to 8 digits", cards.ErrBadPIN), "error", exitUsage},
	{"malformed PIN, as a card error", &cards.Error{Op: "VERIFY PIN", Err: fmt.Errorf("%w: 4 to 8 digits", cards.ErrBadPIN)}, "error", exitUsage},
	{"wrong PIN", &cards.Error{Op: "VERIFY PIN", Err: &cards.PINError{Retries: 2}}, "error", exitCard},
	{"no reader", &cards.Error{Op: "connect", Err: cards.ErrNoReader}, "error", exitCard},
	{"unexpected status word", &cards.Error{Op: "select ISIM", SW: apdu.SW(0x6a82)}, "error", exitCard},

	{"profile", &profile.Error{Path: "ue.yaml", Field: "k", Err: errors.New("not 32 hex digits")}, "error", exitUsage},
	{"SQN state", &isim.StateError{Path: "ue.sqn", Op: "read", Err: isim.ErrCorruptState}, "error", exitUsage},
	{"no password", sipclient.ErrNoPassword, "error", exitUsage},
	{"port in use", fmt.Errorf("sipclient: unprotected port: %w: %w", sipclient.ErrLocalAddress, syscall.EADDRINUSE), "error", exitUsage},

	{"anything else", errors.New("unexpected"), "error", exitInternal},
	{"success", nil, "registered", exitOK},
}

// TestErrorClasses walks the classification table: every row is the first
// match of at least one real error of its class, and every error gets the
// outcome and exit code of the contract, also when wrapped.
func TestErrorClasses(t *testing.T) {
	hit := make([]bool, len(errorClasses))
	for _, tt := range classCases {
		t.Run(tt.name, func(t *testing.T) {
			if got, code := classify(tt.err); got != tt.outcome || code != tt.code {
				t.Errorf("classify(%v) = %q, %d; want %q, %d", tt.err, got, code, tt.outcome, tt.code)
			}
			if got := Outcome(tt.err); got != tt.outcome {
				t.Errorf("Outcome(%v) = %q, want %q", tt.err, got, tt.outcome)
			}
			if got := exitCode(tt.err); got != tt.code {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.code)
			}
			for i, c := range errorClasses {
				if tt.err != nil && c.match(tt.err) {
					hit[i] = true
					break
				}
			}
			if tt.err == nil {
				return
			}
			// Wrapping changes nothing, once or twice, with %w or Join.
			for _, w := range []error{
				fmt.Errorf("imsue register: %w", tt.err),
				fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", tt.err)),
				errors.Join(tt.err),
			} {
				if got, code := classify(w); got != tt.outcome || code != tt.code {
					t.Errorf("classify(%v) = %q, %d; want %q, %d", w, got, code, tt.outcome, tt.code)
				}
				if got := exitCode(w); got != tt.code {
					t.Errorf("exitCode(%v) = %d, want %d", w, got, tt.code)
				}
			}
		})
	}
	for i, c := range errorClasses {
		if !hit[i] {
			t.Errorf("row %d (%s, exit %d) is the first match of no error in classCases", i, c.outcome, c.code)
		}
	}
}

// A code a command attaches (exitError) wins over the table: usage errors
// have no type of their own.
func TestExitErrorOverridesTheTable(t *testing.T) {
	if got := exitCode(usageError(errors.New("--t1: must be positive"))); got != exitUsage {
		t.Errorf("usage error: exit %d", got)
	}
	err := fmt.Errorf("--ipsec kernel: %w", withCode(exitIPsec, errors.New("netlink: EPERM")))
	if got := exitCode(err); got != exitIPsec {
		t.Errorf("wrapped exitError: exit %d", got)
	}
	if got := exitCode(withCode(exitUsage, &sipclient.TimeoutError{Method: "REGISTER"})); got != exitUsage {
		t.Errorf("exitError around a no-answer: exit %d, want the attached %d", got, exitUsage)
	}
}
