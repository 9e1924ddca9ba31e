//go:build pcsc

package pcsc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ebfe/scard"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/cards/apdu"
)

// Enabled reports whether this build has PC/SC support.
const Enabled = true

// Transport is a card connected through PC/SC, held exclusively: no other
// application can change the selected file or the PIN state while imsue
// uses it. It implements apdu.Transport and io.Closer.
type Transport struct {
	ctx    *scard.Context
	card   *scard.Card
	reader string
	atr    []byte
	proto  apdu.Protocol
}

// pollInterval bounds each GetStatusChange, so that a cancelled context
// is noticed.
const pollInterval = 250 * time.Millisecond

// scardErr turns a PC/SC error into a card error in imsue's terms.
func scardErr(op string, err error) error {
	return &cards.Error{Op: op, Err: mapErr(err)}
}

// mapErr names the cause of a PC/SC error in imsue's terms (for errors.Is),
// keeping the PC/SC text.
func mapErr(err error) error {
	var se scard.Error
	if !errors.As(err, &se) {
		return err
	}
	var cause error
	switch se {
	case scard.ErrNoService, scard.ErrServiceStopped:
		cause = cards.ErrNoService
	case scard.ErrNoReadersAvailable, scard.ErrUnknownReader, scard.ErrReaderUnavailable:
		cause = cards.ErrNoReader
	case scard.ErrNoSmartcard, scard.ErrRemovedCard:
		cause = cards.ErrNoCard
	case scard.ErrSharingViolation:
		cause = errors.New("the card is in use by another application")
	default:
		return fmt.Errorf("PC/SC: %w", se)
	}
	return fmt.Errorf("%w (PC/SC: %w)", cause, se)
}

// ListReaders returns the readers and whether each holds a card.
func ListReaders() ([]Reader, error) {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return nil, scardErr("connect to pcscd", err)
	}
	defer ctx.Release()
	return listReaders(ctx)
}

func listReaders(ctx *scard.Context) ([]Reader, error) {
	names, err := ctx.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	if err != nil {
		return nil, scardErr("list readers", err)
	}
	states := make([]scard.ReaderState, len(names))
	for i, n := range names {
		states[i] = scard.ReaderState{Reader: n, CurrentState: scard.StateUnaware}
	}
	if err := ctx.GetStatusChange(states, 0); err != nil && !errors.Is(err, scard.ErrTimeout) {
		return nil, scardErr("read reader states", err)
	}
	out := make([]Reader, len(names))
	for i, st := range states {
		present := st.EventState&scard.StatePresent != 0 && st.EventState&scard.StateMute == 0
		out[i] = Reader{Name: st.Reader, CardPresent: present, ATR: bytes.Clone(st.Atr)}
	}
	return out, nil
}

// Open chooses a reader (Options.Reader, or the only reader, or the only
// one holding a card), waits up to Options.Wait for its card, and connects
// with T=0 or T=1, whichever the ATR offers first.
func Open(ctx context.Context, opt Options) (*Transport, error) {
	if opt.Wait <= 0 {
		opt.Wait = DefaultWait
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, scardErr("connect to pcscd", err)
	}
	t, err := open(ctx, sc, opt)
	if err != nil {
		sc.Release()
		return nil, err
	}
	return t, nil
}

func open(ctx context.Context, sc *scard.Context, opt Options) (*Transport, error) {
	deadline := time.Now().Add(opt.Wait)
	for {
		readers, err := listReaders(sc)
		if err != nil {
			return nil, err
		}
		r, wait, err := choose(readers, opt.Reader)
		if err != nil {
			return nil, &cards.Error{Op: "choose reader", Err: err}
		}
		if !wait {
			return connect(sc, r.Name)
		}
		left := time.Until(deadline)
		if left <= 0 {
			where := "any reader"
			if r.Name != "" {
				where = fmt.Sprintf("reader %q", r.Name)
			}
			return nil, &cards.Error{Op: "wait for a card", Err: fmt.Errorf("%w: none in %s after %v", cards.ErrNoCard, where, opt.Wait)}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Sleep until a reader's state changes, or a poll interval passes.
		states := make([]scard.ReaderState, len(readers))
		for i, rd := range readers {
			cur := scard.StateEmpty
			if rd.CardPresent {
				cur = scard.StatePresent
			}
			states[i] = scard.ReaderState{Reader: rd.Name, CurrentState: cur}
		}
		err = sc.GetStatusChange(states, min(left, pollInterval))
		if err != nil && !errors.Is(err, scard.ErrTimeout) {
			return nil, scardErr("wait for a card", err)
		}
	}
}

func connect(sc *scard.Context, reader string) (*Transport, error) {
	op := fmt.Sprintf("connect to the card in %q", reader)
	card, err := sc.Connect(reader, scard.ShareExclusive, scard.ProtocolT0|scard.ProtocolT1)
	if err != nil {
		return nil, scardErr(op, err)
	}
	st, err := card.Status()
	if err != nil {
		_ = card.Disconnect(scard.LeaveCard)
		return nil, scardErr(op, err)
	}
	t := &Transport{ctx: sc, card: card, reader: reader, atr: bytes.Clone(st.Atr), proto: apdu.T1}
	if card.ActiveProtocol() == scard.ProtocolT0 {
		t.proto = apdu.T0
	}
	return t, nil
}

// Transmit implements apdu.Transport.
func (t *Transport) Transmit(cmd []byte) ([]byte, error) {
	rsp, err := t.card.Transmit(cmd)
	if err != nil {
		return nil, mapErr(err)
	}
	return rsp, nil
}

// Reader returns the reader's name.
func (t *Transport) Reader() string { return t.reader }

// ATR returns the card's answer to reset.
func (t *Transport) ATR() []byte { return t.atr }

// Protocol returns the protocol negotiated at connection.
func (t *Transport) Protocol() apdu.Protocol { return t.proto }

// Close resets the card, so that the PIN it verified for imsue is not left
// verified for the next application, and releases the PC/SC context.
func (t *Transport) Close() error {
	err := t.card.Disconnect(scard.ResetCard)
	if rerr := t.ctx.Release(); err == nil {
		err = rerr
	}
	if err != nil {
		return scardErr("disconnect", err)
	}
	return nil
}
