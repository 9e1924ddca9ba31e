package cards

import (
	"errors"
	"fmt"
	"strings"

	"github.com/imsue/imsue/cards/apdu"
)

// Error is a card failure: no reader or card, a PIN problem, a status word
// the UE did not expect, or a response that does not parse. The CLI maps it
// to exit code 9. AKA outcomes are not Errors: Authenticate returns
// isim.ErrMACFailure and *isim.SyncFailure as the isim package defines them.
type Error struct {
	Op  string  // what imsue was doing: "select ISIM", "read EF.IMPI", "VERIFY PIN"
	SW  apdu.SW // the card's status word, 0 when the failure is not one
	Err error   // the cause; nil when SW says it all
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("card: ")
	b.WriteString(e.Op)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.SW != 0 {
		if e.Err != nil {
			b.WriteString(" (status " + e.SW.String() + ")")
		} else {
			b.WriteString(": status " + e.SW.String())
		}
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Causes carried in Error.Err, for errors.Is.
var (
	ErrNoService     = errors.New("no PC/SC service: is pcscd running?")
	ErrNoReader      = errors.New("no smart-card reader")
	ErrNoCard        = errors.New("no card in the reader")
	ErrNoApplication = errors.New("the card has neither an ISIM nor a USIM")
	ErrPINRequired   = errors.New("the card wants its PIN: give it in a file or at a prompt")
	ErrPINBlocked    = errors.New("PIN blocked: unblock it with the PUK")
	ErrPINLastTry    = errors.New("one PIN try left: imsue does not spend it unless forced (--force-pin)")
	ErrNoPCSC        = errors.New("imsue was built without PC/SC support (build with -tags pcsc)")
)

// ErrBadPIN reports a PIN that is not 4 to 8 digits. It is a usage error,
// not a card error: the card was not asked.
var ErrBadPIN = errors.New("bad PIN")

// PINError reports a wrong PIN (status 63Cx) and how many tries are left.
type PINError struct {
	Retries int
}

func (e *PINError) Error() string {
	return fmt.Sprintf("wrong PIN, %d tries left", e.Retries)
}

// ReaderError reports a reader choice that failed, naming every reader.
type ReaderError struct {
	Want    string   // the name or substring asked for; "" when none
	Readers []string // the readers PC/SC knows
	Reason  string   // "no reader matches", "several readers match", ...
}

func (e *ReaderError) Error() string {
	s := e.Reason
	if e.Want != "" {
		s += fmt.Sprintf(" %q", e.Want)
	}
	if len(e.Readers) == 0 {
		return s + "; no readers"
	}
	return s + "; readers: " + strings.Join(quoteAll(e.Readers), ", ")
}

func quoteAll(ss []string) []string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return q
}

// exchangeError marks a failure of the transport (reader gone, card
// removed, pcscd stopped) as opposed to an answer from the card.
type exchangeError struct{ err error }

func (e *exchangeError) Error() string { return e.err.Error() }
func (e *exchangeError) Unwrap() error { return e.err }

func exchangeErr(err error) error { return &exchangeError{err} }
