package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/cards/pcsc"
	"github.com/imsue/imsue/cards/vcard"
)

func init() {
	commands = append(commands, newCardCmd)
}

// envPINFile names the PIN file for commands that open a card through a
// profile (aka, register): a PIN is never taken from the command line.
const envPINFile = "IMSUE_PIN_FILE"

const cardHelp = `The card's PIN1 is read from a file (--pin-file, or $IMSUE_PIN_FILE for
aka and register) or typed at a prompt (--pin-prompt; aka and register
prompt on the terminal when the card needs it and no file is given), never
from the command line. imsue asks the card first whether the PIN is needed,
without spending a try. It refuses to spend the last try unless
--force-pin is given (card info): a wrong last try blocks the card, and only
the PUK unblocks it.

Card failures (no pcscd, no reader, no card, wrong or blocked PIN, a status
word imsue did not expect) exit with code 9.`

func newCardCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "card",
		Short: "Real SIM/ISIM cards over PC/SC, and a virtual UICC for tests",
		Long: `card reads a UICC through PC/SC (pcscd) and serves a virtual one.

A profile with card: pcsc (or pcsc:<reader name substring>) makes aka and
register use the card's ISIM (or its USIM when it has no ISIM) instead of the
software ISIM. PC/SC support needs cgo and libpcsclite: it is in imsue built
with -tags pcsc. card emulate needs neither.

` + cardHelp,
		Args: usageNoArgs,
	}
	cmd.AddCommand(newCardInfoCmd(a), newCardEmulateCmd(a))
	return cmd
}

// pinFlags are the ways to give PIN1.
type pinFlags struct {
	file   string
	prompt bool
	force  bool
}

func (f *pinFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "pin-file", "", "read PIN1 from this file (first line)")
	cmd.Flags().BoolVar(&f.prompt, "pin-prompt", false, "ask for PIN1 on the terminal")
	cmd.Flags().BoolVar(&f.force, "force-pin", false, "spend the PIN's last try")
}

// verifyPIN presents the PIN the flags give, when the card needs one.
func (f *pinFlags) verify(ctx context.Context, a *app, c *cards.Card) error {
	if f.file == "" && !f.prompt {
		return nil
	}
	if f.file != "" && f.prompt {
		return usageError(errors.New("--pin-file and --pin-prompt: give one"))
	}
	st, err := c.PINStatus(ctx)
	if err != nil {
		return err
	}
	if st.State != cards.PINNeeded {
		if st.State == cards.PINBlocked {
			return &cards.Error{Op: "VERIFY PIN", SW: 0x6983, Err: cards.ErrPINBlocked}
		}
		return nil
	}
	var pin []byte
	if f.file != "" {
		pin, err = readPINFile(a.logf, "--pin-file", f.file)
	} else {
		pin, err = promptPIN(fmt.Sprintf("PIN1 (%d tries left): ", st.Retries))
	}
	if err != nil {
		return err
	}
	defer clear(pin)
	return c.VerifyPIN(ctx, pin, f.force)
}

// readPINFile reads a PIN from the first line of path. The PIN is never
// echoed in errors.
func readPINFile(warnf func(string, ...any), what, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s: %w", what, err))
	}
	if fi.Mode().Perm()&0o077 != 0 {
		warnf("imsue: warning: PIN file %s is readable by group or others (mode %04o)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s: %w", what, err))
	}
	defer clear(b)
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pin := bytes.Clone(bytes.TrimSpace(line))
	if len(pin) == 0 {
		return nil, usageError(fmt.Errorf("%s: %s holds no PIN", what, path))
	}
	return pin, nil
}

type readerView struct {
	Name        string `json:"name"`
	CardPresent bool   `json:"card_present"`
	ATR         string `json:"atr,omitempty"`
}

type cardInfoView struct {
	Readers []readerView `json:"readers"`
	cards.Info
}

func newCardInfoCmd(a *app) *cobra.Command {
	var reader string
	var wait time.Duration
	var usim bool
	var pf pinFlags
	cmd := &cobra.Command{
		Use:   "info [--reader NAME] [--pin-file FILE | --pin-prompt] [--json]",
		Short: "Show the readers, the card's ATR, applications, identities and PIN state",
		Long: `info lists the PC/SC readers and reports on the card in the chosen one: ATR,
protocol, ICCID, the applications of EF.DIR, which one imsue uses (the ISIM,
else the USIM), the state of PIN1 (asked without spending a try), the
identities (EF.IMPI, EF.DOMAIN, EF.IMPU of the ISIM, or derived from the
USIM's IMSI per TS 23.003 §13), the ISIM's services and P-CSCF addresses.

Reader choice: --reader is a substring of the reader's name; without it, the
only reader, or the only one holding a card. imsue waits up to --wait for
a card. Files the PIN protects are reported as unreadable unless the PIN is
given.

` + cardHelp,
		Args: usageNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			readers, err := pcsc.ListReaders()
			if err != nil {
				return err
			}
			tr, err := pcsc.Open(ctx, pcsc.Options{Reader: reader, Wait: wait})
			if err != nil {
				return err
			}
			defer tr.Close()
			c, err := cards.Open(ctx, tr, tr.Protocol(), cards.Options{PreferUSIM: usim})
			if err != nil {
				return err
			}
			if err := pf.verify(ctx, a, c); err != nil {
				return err
			}
			in, err := c.Info(ctx)
			if err != nil {
				return err
			}
			in.Reader, in.ATR, in.Protocol = tr.Reader(), hex.EncodeToString(tr.ATR()), tr.Protocol().String()
			v := cardInfoView{Info: in, Readers: []readerView{}}
			for _, r := range readers {
				v.Readers = append(v.Readers, readerView{Name: r.Name, CardPresent: r.CardPresent, ATR: hex.EncodeToString(r.ATR)})
			}
			return a.emit(v, func(w io.Writer) { printCardInfo(w, &v) })
		},
	}
	cmd.Flags().StringVar(&reader, "reader", "", "reader name substring (default: the only reader, or the only one with a card)")
	cmd.Flags().DurationVar(&wait, "wait", pcsc.DefaultWait, "how long to wait for a card")
	cmd.Flags().BoolVar(&usim, "usim", false, "use the USIM even when the card has an ISIM")
	pf.add(cmd)
	return cmd
}

func printCardInfo(w io.Writer, v *cardInfoView) {
	fmt.Fprintln(w, "Readers:")
	for _, r := range v.Readers {
		mark, card := " ", ""
		if r.Name == v.Reader {
			mark = "*"
		}
		if r.CardPresent {
			card = "  (card)"
		}
		fmt.Fprintf(w, "  %s %s%s\n", mark, r.Name, card)
	}
	row := func(k, val string) {
		if val != "" {
			fmt.Fprintf(w, "%-14s %s\n", k+":", val)
		}
	}
	row("ATR", v.ATR)
	row("Protocol", v.Protocol)
	row("ICCID", v.ICCID)
	fmt.Fprintln(w, "Applications:")
	for _, app := range v.Applications {
		sel := ""
		if app.Kind == v.Selected {
			sel = "  (used)"
		}
		fmt.Fprintf(w, "  %-5s %s %s%s\n", app.Kind, app.AID, app.Label, sel)
	}
	if len(v.Applications) == 0 {
		fmt.Fprintf(w, "  (no EF.DIR; %s selected by its AID prefix)\n", v.Selected)
	}
	if v.PIN != nil {
		row("PIN1", v.PIN.String())
	}
	row("PIN1", v.PINError)
	if id := v.Identity; id != nil {
		row("IMPI", id.IMPI)
		for _, u := range id.IMPUs {
			row("IMPU", u)
		}
		row("Domain", id.Domain)
		row("IMSI", id.IMSI)
		src := "ISIM files (EF.IMPI, EF.DOMAIN, EF.IMPU)"
		if v.IdentitySource == "imsi" {
			src = "derived from the IMSI (TS 23.003 §13)"
		}
		row("Identities", src)
	}
	row("Identities", v.IdentityError)
	row("ISIM services", strings.Join(v.ISIMServices, ", "))
	row("P-CSCF", strings.Join(v.PCSCF, ", "))
}

type emulateView struct {
	Result string      `json:"result"`
	ATR    string      `json:"atr"`
	Stats  vcard.Stats `json:"stats"`
}

func newCardEmulateCmd(a *app) *cobra.Command {
	var profilePath, addr, pinFile string
	var usimOnly, t061, t06c, once bool
	var tries int
	cmd := &cobra.Command{
		Use:   "emulate --profile FILE [--vpcd HOST:PORT] [--usim-only] [--t0-61xx] [--t0-6cxx]",
		Short: "Serve a virtual UICC (ISIM+USIM) with the profile's software ISIM through vpcd",
		Long: `emulate is a virtual UICC for tests: it dials the vpcd virtual reader of
pcscd (package vsmartcard-vpcd; slot 0 listens on port 35963) and answers as
a UICC with an ISIM and a USIM whose files hold the profile's identities
(imsi and mnc_length are required for EF.IMSI and EF.AD) and whose
AUTHENTICATE runs the profile's software ISIM (k, opc, SQN state file). The
ATR has one random byte, so that tests can tell their card.

--t0-61xx and --t0-6cxx make it a T=0 card that answers case-4 commands with
61xx (data by GET RESPONSE) and a wrong Le with 6Cxx, as real T=0 cards do.
--pin-file sets the card's PIN1 (default: no PIN).

It runs until interrupted, dialling vpcd again when vpcd goes away (with
--once it stops then). Needs neither cgo nor PC/SC on this side.`,
		Args: usageNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProfile(a, profilePath)
			if err != nil {
				return err
			}
			switch {
			case tries < 1 || tries > 15:
				return usageError(fmt.Errorf("--pin-tries: want 1 to 15, got %d", tries))
			case p.Identity.IMSI == "":
				return usageError(fmt.Errorf("profile %s: imsi: required by card emulate (EF.IMSI)", p.Path))
			case p.MNCLength == 0:
				return usageError(fmt.Errorf("profile %s: mnc_length: required by card emulate (EF.AD)", p.Path))
			}
			cfg := vcard.Config{Identity: p.Identity, MNCLength: p.MNCLength, USIMOnly: usimOnly,
				T0GetResponse: t061, T0WrongLe: t06c, PINTries: tries}
			if pinFile != "" {
				if cfg.PIN, err = readPINFile(a.logf, "--pin-file", pinFile); err != nil {
					return err
				}
			}
			sw, err := p.OpenSoftware()
			if err != nil {
				return err
			}
			defer sw.Close()
			cfg.Auth = sw
			card, err := vcard.New(cfg)
			clear(cfg.PIN)
			if err != nil {
				return usageError(err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			apps := "ISIM+USIM"
			if usimOnly {
				apps = "USIM only"
			}
			a.logf("imsue: virtual UICC (%s, %v), ATR %x; dialling vpcd at %s", apps, card.Protocol(), card.ATR(), addr)
			waiting := false
			for ctx.Err() == nil {
				err := card.Dial(ctx, addr)
				switch {
				case ctx.Err() != nil:
				case err != nil && !waiting:
					a.logf("imsue: %v; retrying every second", err)
					waiting = true
				case err == nil:
					a.logf("imsue: vpcd closed the connection (card removed)")
					waiting = false
					if once {
						stop()
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			return a.emit(emulateView{Result: "stopped", ATR: hex.EncodeToString(card.ATR()), Stats: card.Stats()},
				func(w io.Writer) { fmt.Fprintf(w, "virtual UICC stopped: %+v\n", card.Stats()) })
		},
	}
	cmd.Flags().StringVar(&profilePath, "profile", "", "profile with imsi, mnc_length, k and opc (required)")
	cmd.Flags().StringVar(&addr, "vpcd", "127.0.0.1:35963", "vpcd's address (HOST:PORT)")
	cmd.Flags().BoolVar(&usimOnly, "usim-only", false, "a card with a USIM and no ISIM")
	cmd.Flags().BoolVar(&t061, "t0-61xx", false, "T=0: answer case-4 commands with 61xx")
	cmd.Flags().BoolVar(&t06c, "t0-6cxx", false, "T=0: answer a wrong Le with 6Cxx")
	cmd.Flags().StringVar(&pinFile, "pin-file", "", "the card's PIN1, from this file (default: PIN disabled)")
	cmd.Flags().IntVar(&tries, "pin-tries", 3, "PIN1 retry counter")
	cmd.Flags().BoolVar(&once, "once", false, "stop when vpcd closes the connection")
	return cmd
}
