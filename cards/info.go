package cards

import (
	"context"
	"encoding/hex"
	"errors"

	"github.com/imsue/imsue/cards/uicc"
	"github.com/imsue/imsue/isim"
)

// AppInfo describes one EF.DIR entry.
type AppInfo struct {
	Kind  string `json:"kind"` // "ISIM", "USIM" or "other"
	AID   string `json:"aid"`  // lowercase hex
	Label string `json:"label,omitempty"`
}

// Info is what `imsue card info` reports about a card. Reader, ATR and
// Protocol are filled by the caller, who knows the transport.
type Info struct {
	Reader         string         `json:"reader,omitempty"`
	ATR            string         `json:"atr,omitempty"`
	Protocol       string         `json:"protocol,omitempty"`
	ICCID          string         `json:"iccid,omitempty"`
	Applications   []AppInfo      `json:"applications"`
	Selected       string         `json:"selected"`
	PIN            *PINStatus     `json:"pin,omitempty"`
	PINError       string         `json:"pin_error,omitempty"`
	Identity       *isim.Identity `json:"identity,omitempty"`
	IdentitySource string         `json:"identity_source,omitempty"` // "isim" or "imsi"
	IdentityError  string         `json:"identity_error,omitempty"`
	ISIMServices   []string       `json:"isim_services,omitempty"`
	PCSCF          []string       `json:"pcscf,omitempty"`
}

// Info gathers what can be read without failing the whole report: a file
// the PIN protects shows up as an error string next to the rest. Only a
// failure of the card itself (the transport) is returned as an error.
func (c *Card) Info(ctx context.Context) (Info, error) {
	in := Info{ICCID: c.iccid, Selected: c.app.Kind().String(), Applications: []AppInfo{}}
	for _, a := range c.apps {
		in.Applications = append(in.Applications, AppInfo{Kind: a.Kind().String(), AID: hex.EncodeToString(a.AID), Label: a.Label})
	}
	st, err := c.PINStatus(ctx)
	if err != nil {
		if !isStatus(err) {
			return in, err
		}
		in.PINError = err.Error()
	} else {
		in.PIN = &st
	}
	id, err := c.Identity(ctx)
	if err != nil {
		if !isStatus(err) {
			return in, err
		}
		in.IdentityError = err.Error()
	} else {
		in.Identity = &id
		in.IdentitySource = "imsi"
		if c.app.Kind() == uicc.AppISIM && id.IMSI == "" {
			in.IdentitySource = "isim"
		}
	}
	if c.app.Kind() == uicc.AppISIM {
		if b, err := c.readTransparent(ctx, "EF.IST", uicc.FIDIST); err == nil {
			for _, n := range uicc.Services(b) {
				in.ISIMServices = append(in.ISIMServices, uicc.ISIMServiceName(n))
			}
			if hasService(b, 1) {
				in.PCSCF = c.pcscf(ctx)
			}
		} else if !isStatus(err) {
			return in, err
		}
	}
	return in, nil
}

func hasService(table []byte, n int) bool {
	i := (n - 1) / 8
	return i < len(table) && table[i]&(1<<((n-1)%8)) != 0
}

// isStatus reports an error that is the card's answer (a status word, a
// malformed or empty file), as opposed to a failed exchange or a cancelled
// context, after which nothing more can be read.
func isStatus(err error) bool {
	var x *exchangeError
	return !errors.As(err, &x) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// PCSCF returns the P-CSCF addresses (FQDN or IP literal) of the ISIM's
// EF.P-CSCF (TS 31.103 §4.2.8), present when the ISIM offers service n°1
// (P-CSCF address, EF.IST); none on a USIM, or when the ISIM has no such
// service. Unreadable records are skipped.
func (c *Card) PCSCF(ctx context.Context) ([]string, error) {
	if c.app.Kind() != uicc.AppISIM {
		return nil, nil
	}
	b, err := c.readTransparent(ctx, "EF.IST", uicc.FIDIST)
	if err != nil {
		if isStatus(err) {
			return nil, nil
		}
		return nil, err
	}
	if !hasService(b, 1) {
		return nil, nil
	}
	return c.pcscf(ctx), nil
}

func (c *Card) pcscf(ctx context.Context) []string {
	var out []string
	recs, _ := c.readLinear(ctx, "EF.P-CSCF", uicc.FIDPCSCF)
	for _, r := range recs {
		if p, ok, err := uicc.ParsePCSCF(r); err == nil && ok {
			out = append(out, p.Address)
		}
	}
	return out
}
