//go:build pcsc

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/cards/pcsc"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/profile"
)

func init() { openCard = openPCSCCard }

// openPCSCCard opens the card a profile names (card: pcsc or
// pcsc:<reader>) for aka and register. When the card wants PIN1 it is read
// from $IMSUE_PIN_FILE, else asked on the terminal when there is one; the
// last try is never spent here (use imsue card info --force-pin).
func openPCSCCard(spec string, p *profile.Profile) (isim.Authenticator, error) {
	ctx := context.Background()
	tr, err := pcsc.Open(ctx, pcsc.Options{Reader: p.CardReader()})
	if err != nil {
		return nil, err
	}
	c, err := cards.Open(ctx, tr, tr.Protocol(), cards.Options{})
	if err != nil {
		tr.Close()
		return nil, err
	}
	if err := presentPIN(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func presentPIN(ctx context.Context, c *cards.Card) error {
	st, err := c.PINStatus(ctx)
	if err != nil || st.State == cards.PINNotNeeded {
		return err
	}
	if st.State == cards.PINBlocked {
		return &cards.Error{Op: "VERIFY PIN", SW: 0x6983, Err: cards.ErrPINBlocked}
	}
	var pin []byte
	switch path := os.Getenv(envPINFile); {
	case path != "":
		pin, err = readPINFile(func(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...) }, "$"+envPINFile, path)
	case terminalAttached():
		pin, err = promptPIN(fmt.Sprintf("PIN1 of the card (%d tries left): ", st.Retries))
	default:
		return &cards.Error{Op: "VERIFY PIN", Err: fmt.Errorf("%w (set $%s, or run on a terminal)", cards.ErrPINRequired, envPINFile)}
	}
	if err != nil {
		return err
	}
	defer clear(pin)
	return c.VerifyPIN(ctx, pin, false)
}
