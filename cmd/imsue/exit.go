package main

import (
	"errors"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim"
)

// Exit codes: the CLI contract (ARCHITECTURE.md §3).
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

// exitCode maps an error to the contract's exit code: an explicit exitError
// first, then the typed errors of the layers below.
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	var sync *isim.SyncFailure
	switch {
	case errors.Is(err, isim.ErrMACFailure):
		return exitMAC
	case errors.As(err, &sync):
		return exitSync
	case errors.Is(err, ipsec.ErrUnsupported):
		return exitIPsec
	}
	for _, m := range exitMappers {
		if code, ok := m(err); ok {
			return code
		}
	}
	return exitInternal
}

// exitMappers lets each command's file register the typed errors of its own
// layer (profile, sipclient, cards) without this file importing them all.
var exitMappers []func(error) (int, bool)
