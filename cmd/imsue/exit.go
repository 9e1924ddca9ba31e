package main

import (
	"errors"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/ipsec/kernel"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/profile"
	"github.com/imsue/imsue/sipclient"
)

// Exit codes: the CLI contract (the README's exit code table).
const (
	exitOK       = 0
	exitInternal = 1
	exitUsage    = 2
	exitNoAnswer = 3
	exitRejected = 4
	exitMAC      = 5
	exitSync     = 6
	exitSecAgree = 7
	exitIPsec    = 8
	exitCard     = 9
)

// errorClass is one row of the classification table: the errors match
// accepts, the result a registration that ended with one reports (--json's
// "result"), and the exit code.
type errorClass struct {
	match   func(error) bool
	outcome string
	code    int
}

// errorClasses classifies the errors of the layers below, once, for every
// command: exitCode and Outcome both read it. The first matching row wins,
// which matters only for an error of several classes: the interruption
// wraps whatever the registration was doing when the signal came. Errors
// that match no row are internal errors ("error", exit 1).
var errorClasses = []errorClass{
	{is(errInterrupted), "interrupted", exitNoAnswer},

	// The network's answers, or their absence (sipclient).
	{is(sipclient.ErrNoAnswer), "no_answer", exitNoAnswer}, // *TimeoutError, *TransportError
	{is(isim.ErrMACFailure), "mac_failure", exitMAC},
	{is(sipclient.ErrResyncFailed), "sync_failure", exitSync},
	{as[*isim.SyncFailure](), "sync_failure", exitSync},
	{is(mt.ErrNoAcceptableMechanism), "sec_agree_failure", exitSecAgree},
	{is(mt.ErrBadSecurityHeader), "sec_agree_failure", exitSecAgree}, // sipclient.ErrNoSecurityServer too
	{is(mt.ErrUnsupportedAlgorithm), "sec_agree_failure", exitSecAgree},
	{is(sipclient.ErrAlgorithmDowngrade), "sec_agree_failure", exitSecAgree},
	{is(sipclient.ErrUnauthenticated), "sec_agree_failure", exitSecAgree},
	{is(sipclient.ErrSecAgreeRefused), "sec_agree_failure", exitSecAgree}, // 494, 420 sec-agree
	{as[*sipclient.IPsecError](), "ipsec_failure", exitIPsec},
	{is(ipsec.ErrUnsupported), "ipsec_failure", exitIPsec},
	{as[*kernel.Error](), "ipsec_failure", exitIPsec}, // every error of the kernel backend
	{as[*sipclient.RejectedError](), "rejected", exitRejected},
	{is(sipclient.ErrBadChallenge), "bad_challenge", exitRejected},
	{is(sipclient.ErrTerminated), "terminated", exitRejected},
	{is(sipclient.ErrNotBound), "rejected", exitRejected},

	// The card: a malformed PIN is the user's (the card was not asked).
	{is(cards.ErrBadPIN), "error", exitUsage},
	{as[*cards.Error](), "error", exitCard},

	// Local configuration: profile, SQN state file, password, address.
	{as[*profile.Error](), "error", exitUsage},
	{as[*isim.StateError](), "error", exitUsage},
	{is(sipclient.ErrNoPassword), "error", exitUsage},
	{is(sipclient.ErrLocalAddress), "error", exitUsage},
}

// is matches the errors that wrap target.
func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// as matches the errors that wrap an E.
func as[E error]() func(error) bool {
	return func(err error) bool {
		var e E
		return errors.As(err, &e)
	}
}

// classify returns the outcome and exit code of err: "registered" and 0 for
// nil, else those of its row in errorClasses.
func classify(err error) (outcome string, code int) {
	if err == nil {
		return "registered", exitOK
	}
	for _, c := range errorClasses {
		if c.match(err) {
			return c.outcome, c.code
		}
	}
	return "error", exitInternal
}

// Outcome names the class of err as Result.Result does.
func Outcome(err error) string {
	outcome, _ := classify(err)
	return outcome
}

// exitCode maps an error to the contract's exit code: the code a command
// attached (exitError) first, then the classification table.
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	_, code := classify(err)
	return code
}

// exitError attaches an exit code to an error. printed says the command
// already wrote its own JSON object, so run must not add an error object.
type exitError struct {
	code    int
	err     error
	printed bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usageError(err error) error { return withCode(exitUsage, err) }

// printedJSON reports whether the failing command already printed its JSON result.
func printedJSON(err error) bool {
	var e *exitError
	return errors.As(err, &e) && e.printed
}
