package cards

import (
	"context"
	"fmt"

	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/cards/uicc"
)

const insVerify = 0x20

// pinRef is the key reference of PIN1 (the application PIN of the selected
// ADF, TS 102 221 §9.5.1).
const pinRef = 0x01

// PINState is what VERIFY without data tells about PIN1.
type PINState string

const (
	// PINNotNeeded: 9000, the PIN is disabled or already verified.
	PINNotNeeded PINState = "not_needed"
	// PINNeeded: 63Cx, verification required, x tries left.
	PINNeeded PINState = "needed"
	// PINBlocked: 6983, no tries left.
	PINBlocked PINState = "blocked"
)

// PINStatus is the state of PIN1 and, when it is needed, the tries left.
type PINStatus struct {
	State   PINState `json:"state"`
	Retries int      `json:"retries_left,omitempty"`
}

func (s PINStatus) String() string {
	switch s.State {
	case PINNeeded:
		return fmt.Sprintf("needed, %d tries left", s.Retries)
	case PINNotNeeded:
		return "not needed (verified or disabled)"
	}
	return string(s.State)
}

// PINStatus asks the card whether PIN1 must be verified, without spending a
// try: VERIFY with no data (TS 102 221 §11.1.9).
func (c *Card) PINStatus(ctx context.Context) (PINStatus, error) {
	const op = "query PIN state"
	if err := ctx.Err(); err != nil {
		return PINStatus{}, ctxErr(op, err)
	}
	r, err := c.conn.Transmit(apdu.Command{CLA: c.cla, INS: insVerify, P1: 0x00, P2: pinRef})
	if err != nil {
		return PINStatus{}, &Error{Op: op, Err: exchangeErr(err)}
	}
	switch {
	case r.SW == apdu.SWOK:
		return PINStatus{State: PINNotNeeded}, nil
	case r.SW&0xFFF0 == 0x63C0:
		if n := int(r.SW & 0x0F); n > 0 {
			return PINStatus{State: PINNeeded, Retries: n}, nil
		}
		return PINStatus{State: PINBlocked}, nil
	case r.SW == apdu.SWAuthBlocked:
		return PINStatus{State: PINBlocked}, nil
	}
	return PINStatus{}, &Error{Op: op, SW: r.SW}
}

// VerifyPIN presents PIN1 when the card needs it. It asks first (no try
// spent): a PIN already verified or disabled is not sent; a blocked PIN is
// ErrPINBlocked; with one try left it refuses unless force is set, because
// a wrong last try blocks the card. A wrong PIN is a *PINError with the
// tries left. pin must be 4 to 8 digits (else ErrBadPIN, the card not
// asked); the caller should wipe it afterwards.
func (c *Card) VerifyPIN(ctx context.Context, pin []byte, force bool) error {
	const op = "VERIFY PIN"
	blk, err := uicc.PINBlock(pin)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPIN, err)
	}
	defer clear(blk[:])
	st, err := c.PINStatus(ctx)
	if err != nil {
		return err
	}
	switch {
	case st.State == PINNotNeeded:
		return nil
	case st.State == PINBlocked:
		return &Error{Op: op, SW: apdu.SWAuthBlocked, Err: ErrPINBlocked}
	case st.Retries == 1 && !force:
		return &Error{Op: op, Err: ErrPINLastTry}
	}
	r, err := c.conn.Transmit(apdu.Command{CLA: c.cla, INS: insVerify, P1: 0x00, P2: pinRef, Data: blk[:]})
	c.conn.Wipe()
	if err != nil {
		return &Error{Op: op, Err: exchangeErr(err)}
	}
	switch {
	case r.SW == apdu.SWOK:
		c.ident = nil // the EFs may read differently now
		return nil
	case r.SW&0xFFF0 == 0x63C0 && r.SW&0x0F > 0:
		return &Error{Op: op, SW: r.SW, Err: &PINError{Retries: int(r.SW & 0x0F)}}
	case r.SW == apdu.SWAuthBlocked || r.SW == 0x63C0:
		return &Error{Op: op, SW: r.SW, Err: ErrPINBlocked}
	}
	return &Error{Op: op, SW: r.SW}
}
