package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
)

func init() { commands = append(commands, newAKACmd) }

// akaResult is the JSON form of `imsue aka`: exactly one of the three
// shapes of the CLI contract.
type akaResult struct {
	Result string `json:"result"` // success | sync_failure | mac_failure
	RES    string `json:"res,omitempty"`
	CK     string `json:"ck,omitempty"`
	IK     string `json:"ik,omitempty"`
	AUTS   string `json:"auts,omitempty"`
	// SQNMS is the SQN_MS inside AUTS, shown when the profile holds the
	// keys to open it (always for the software ISIM).
	SQNMS string `json:"sqn_ms,omitempty"`
}

func newAKACmd(a *app) *cobra.Command {
	var profilePath, rand, autn string
	cmd := &cobra.Command{
		Use:   "aka --profile FILE --rand HEX --autn HEX",
		Short: "Answer one AKA challenge with the profile's ISIM (software or card)",
		Long: `aka answers one AKA challenge (TS 33.102 §6.3; the ISIM's AUTHENTICATE,
TS 31.103 §7.1.2) with the ISIM the profile names: the software ISIM over the
profile's SQN state file, or a real card. It prints one result:

  result         also printed     exit  SQN state
  success        res, ck, ik      0     updated, durably, before the answer
  sync_failure   auts, sqn_ms*    6     unchanged
  mac_failure                     5     unchanged

  * sqn_ms is the SQN_MS inside AUTS (the highest SQN the ISIM accepted),
    shown when the profile holds the keys to open it.

CK and IK are printed: answering the challenge is this command's job.`,
		Args: usageNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rnd isim.RAND
			var tok isim.AUTN
			if err := hexFlag("rand", rand, rnd[:]); err != nil {
				return err
			}
			if err := hexFlag("autn", autn, tok[:]); err != nil {
				return err
			}
			p, err := loadProfile(a, profilePath)
			if err != nil {
				return err
			}
			auth, err := openAuthenticator(p)
			if err != nil {
				return err
			}
			defer auth.Close()

			res, err := auth.Authenticate(cmd.Context(), rnd, tok)
			var sync *isim.SyncFailure
			var r akaResult
			switch {
			case err == nil:
				r = akaResult{Result: "success", RES: hex.EncodeToString(res.RES),
					CK: hex.EncodeToString(res.CK[:]), IK: hex.EncodeToString(res.IK[:])}
			case errors.As(err, &sync):
				r = akaResult{Result: "sync_failure", AUTS: hex.EncodeToString(sync.AUTS[:])}
				if p.HasKeys {
					if sqnMS, ok := milenage.New(p.K, p.OPc).OpenAUTS(rnd, sync.AUTS); ok {
						r.SQNMS = hex.EncodeToString(sqnMS[:])
					}
				}
			case errors.Is(err, isim.ErrMACFailure):
				r = akaResult{Result: "mac_failure"}
			default:
				return err // the ISIM could not answer: state file, card
			}
			if perr := a.emit(r, func(w io.Writer) { r.writeText(w) }); perr != nil {
				return perr
			}
			if err == nil {
				return nil
			}
			return &exitError{code: exitCode(err), err: err, printed: true}
		},
	}
	f := cmd.Flags()
	f.StringVar(&profilePath, "profile", "", "subscriber profile (YAML)")
	f.StringVar(&rand, "rand", "", "challenge RAND (32 hex digits)")
	f.StringVar(&autn, "autn", "", "challenge AUTN (32 hex digits)")
	return cmd
}

func (r *akaResult) writeText(w io.Writer) {
	fmt.Fprintf(w, "%-7s %s\n", "result", r.Result)
	for _, kv := range [][2]string{{"res", r.RES}, {"ck", r.CK}, {"ik", r.IK}, {"auts", r.AUTS}, {"sqn_ms", r.SQNMS}} {
		if kv[1] != "" {
			fmt.Fprintf(w, "%-7s %s\n", kv[0], kv[1])
		}
	}
}
