// Package pcsc opens a card through the PC/SC daemon (pcsc-lite's pcscd) and
// offers it as an apdu.Transport for package cards.
//
// The PC/SC calls use github.com/ebfe/scard, which needs cgo and
// libpcsclite: they are built only with the build tag pcsc (go build -tags
// pcsc). Without the tag, Open reports cards.ErrNoPCSC, so that a plain go
// build or go install works on a machine without libpcsclite-dev. The
// reader choice is pure and built either way.
package pcsc

import (
	"strings"
	"time"

	"github.com/imsue/imsue/cards"
)

// Reader is one reader PC/SC knows, with its card if any.
type Reader struct {
	Name        string `json:"name"`
	CardPresent bool   `json:"card_present"`
	ATR         []byte `json:"-"`
}

// Options choose the reader and how long to wait for its card.
type Options struct {
	// Reader is a substring of the reader's name (case-insensitive). Empty
	// means the only reader, or the only one holding a card.
	Reader string
	// Wait bounds the wait for a card (default DefaultWait).
	Wait time.Duration
}

// DefaultWait is how long Open waits for a card: pcscd notices an inserted
// card within its polling interval (about 0.4 s for vpcd).
const DefaultWait = 5 * time.Second

// choose picks the reader to connect to. wait reports that a suitable
// reader has no card yet (and names it, or "" when any reader may get
// one); err is final.
func choose(readers []Reader, want string) (r Reader, wait bool, err error) {
	names := make([]string, len(readers))
	for i, rd := range readers {
		names[i] = rd.Name
	}
	if len(readers) == 0 {
		return Reader{}, false, cards.ErrNoReader
	}
	cand := readers
	if want != "" {
		cand = nil
		w := strings.ToLower(want)
		for _, rd := range readers {
			if strings.Contains(strings.ToLower(rd.Name), w) {
				cand = append(cand, rd)
			}
		}
		switch {
		case len(cand) == 0:
			return Reader{}, false, &cards.ReaderError{Want: want, Readers: names, Reason: "no reader matches"}
		case len(cand) > 1:
			var exact []Reader
			for _, rd := range cand {
				if strings.EqualFold(rd.Name, want) {
					exact = append(exact, rd)
				}
			}
			if len(exact) != 1 {
				return Reader{}, false, &cards.ReaderError{Want: want, Readers: names, Reason: "several readers match"}
			}
			cand = exact
		}
	}
	if len(cand) == 1 {
		return cand[0], !cand[0].CardPresent, nil
	}
	var withCard []Reader
	for _, rd := range cand {
		if rd.CardPresent {
			withCard = append(withCard, rd)
		}
	}
	switch len(withCard) {
	case 0:
		return Reader{}, true, nil
	case 1:
		return withCard[0], false, nil
	}
	held := make([]string, len(withCard))
	for i, rd := range withCard {
		held[i] = rd.Name
	}
	return Reader{}, false, &cards.ReaderError{Readers: held, Reason: "several readers hold a card: name one (card: pcsc:<reader>, or --reader)"}
}
