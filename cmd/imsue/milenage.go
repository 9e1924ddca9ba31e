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

func init() { commands = append(commands, newMilenageCmd) }

// milenageResult is the JSON form of `imsue milenage`. Every value is
// lowercase hex; the optional ones appear only when their inputs were given.
type milenageResult struct {
	OPc    string `json:"opc"`
	MACA   string `json:"mac_a,omitempty"`
	MACS   string `json:"mac_s,omitempty"`
	RES    string `json:"res"`
	CK     string `json:"ck"`
	IK     string `json:"ik"`
	AK     string `json:"ak"`
	AKStar string `json:"ak_star"`
	AUTN   string `json:"autn,omitempty"`
	// AUTS is the resynchronisation token a UE whose SQN_MS is --sqn would
	// send for --rand (AMF* = 0000).
	AUTS string `json:"auts,omitempty"`
	// SQNMS and AUTSMACOK open the --auts given.
	SQNMS     string `json:"sqn_ms,omitempty"`
	AUTSMACOK *bool  `json:"auts_mac_ok,omitempty"`
}

func newMilenageCmd(a *app) *cobra.Command {
	var k, op, opc, rand, sqn, amf, auts string
	cmd := &cobra.Command{
		Use:   "milenage --k HEX (--op HEX | --opc HEX) --rand HEX [--sqn HEX --amf HEX] [--auts HEX]",
		Short: "MILENAGE calculator (lab use): f1–f5* for given K, OP/OPc and RAND",
		Long: `milenage computes the MILENAGE functions of TS 35.206 for a subscriber key K,
the operator key OP or OPc, and a challenge RAND:

  opc      OPc (given, or derived from OP)
  res      f2, ck f3, ik f4, ak f5, ak_star f5*
  mac_a    f1 and mac_s f1* (with --sqn and --amf)
  autn     (SQN ⊕ AK) ‖ AMF ‖ MAC-A (with --sqn and --amf)
  auts     (SQN ⊕ AK*) ‖ MAC-S(AMF* = 0000): the AUTS a UE whose highest
           accepted SQN is --sqn would send (with --sqn)
  sqn_ms   with --auts HEX: the SQN_MS recovered from that AUTS, and
           auts_mac_ok whether its MAC-S verifies (what an HSS does on resync)

It is a lab calculator: the keys it is given and prints are secrets, and a
value on the command line is visible to other users of the machine (ps).
Hex is accepted in either case and printed in lowercase.`,
		Args: usageNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				kk, opk, rnd [16]byte
				cipher       *milenage.Cipher
			)
			// An optional flag given with an empty value is a mistake (an
			// unset shell variable), never "not given".
			for _, name := range []string{"op", "opc", "sqn", "amf", "auts"} {
				if cmd.Flags().Changed(name) && cmd.Flag(name).Value.String() == "" {
					return usageError(fmt.Errorf("--%s: empty value", name))
				}
			}
			if err := hexFlag("k", k, kk[:]); err != nil {
				return err
			}
			switch {
			case op != "" && opc != "":
				return usageError(errors.New("--op, --opc: give one, not both"))
			case op != "":
				if err := hexFlag("op", op, opk[:]); err != nil {
					return err
				}
				cipher = milenage.NewWithOP(kk, opk)
			case opc != "":
				if err := hexFlag("opc", opc, opk[:]); err != nil {
					return err
				}
				cipher = milenage.New(kk, opk)
			default:
				return usageError(errors.New("--op, --opc: one of them is required"))
			}
			if err := hexFlag("rand", rand, rnd[:]); err != nil {
				return err
			}
			var sq [milenage.SQNSize]byte
			var am [milenage.AMFSize]byte
			if sqn != "" {
				if err := hexFlag("sqn", sqn, sq[:]); err != nil {
					return err
				}
			}
			if amf != "" {
				if sqn == "" {
					return usageError(errors.New("--amf: only with --sqn"))
				}
				if err := hexFlag("amf", amf, am[:]); err != nil {
					return err
				}
			}
			var au [milenage.AUTSSize]byte
			if auts != "" {
				if err := hexFlag("auts", auts, au[:]); err != nil {
					return err
				}
			}

			o := cipher.OPc()
			res, ck, ik, ak := cipher.F2345(rnd)
			akStar := cipher.F5Star(rnd)
			r := milenageResult{
				OPc: hex.EncodeToString(o[:]),
				RES: hex.EncodeToString(res[:]), CK: hex.EncodeToString(ck[:]), IK: hex.EncodeToString(ik[:]),
				AK: hex.EncodeToString(ak[:]), AKStar: hex.EncodeToString(akStar[:]),
			}
			if sqn != "" {
				t := cipher.AUTS(rnd, sq)
				r.AUTS = hex.EncodeToString(t[:])
			}
			if sqn != "" && amf != "" {
				macA, macS := cipher.F1(rnd, sq, am)
				autn := cipher.AUTN(rnd, sq, am)
				r.MACA, r.MACS = hex.EncodeToString(macA[:]), hex.EncodeToString(macS[:])
				r.AUTN = hex.EncodeToString(autn[:])
			}
			if auts != "" {
				sqnMS, ok := cipher.OpenAUTS(rnd, au)
				r.SQNMS = hex.EncodeToString(sqnMS[:])
				r.AUTSMACOK = &ok
			}
			return a.emit(r, func(w io.Writer) { r.writeText(w) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&k, "k", "", "subscriber key K (32 hex digits)")
	f.StringVar(&op, "op", "", "operator key OP (32 hex digits)")
	f.StringVar(&opc, "opc", "", "derived operator key OPc (32 hex digits)")
	f.StringVar(&rand, "rand", "", "challenge RAND (32 hex digits)")
	f.StringVar(&sqn, "sqn", "", "sequence number SQN (12 hex digits)")
	f.StringVar(&amf, "amf", "", "authentication management field AMF (4 hex digits; needs --sqn)")
	f.StringVar(&auts, "auts", "", "an AUTS to open (28 hex digits): prints the SQN_MS it carries")
	return cmd
}

func (r *milenageResult) writeText(w io.Writer) {
	line := func(name, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-11s %s\n", name, v)
		}
	}
	line("opc", r.OPc)
	line("mac_a", r.MACA)
	line("mac_s", r.MACS)
	line("res", r.RES)
	line("ck", r.CK)
	line("ik", r.IK)
	line("ak", r.AK)
	line("ak_star", r.AKStar)
	line("autn", r.AUTN)
	line("auts", r.AUTS)
	line("sqn_ms", r.SQNMS)
	if r.AUTSMACOK != nil {
		line("auts_mac_ok", fmt.Sprint(*r.AUTSMACOK))
	}
}

// hexFlag decodes the hex value of --name into dst (exactly len(dst) bytes):
// a missing or malformed value is a usage error naming the flag, which does
// not quote the value (it may be a key).
func hexFlag(name, val string, dst []byte) error {
	if val == "" {
		return usageError(fmt.Errorf("--%s: required (%d hex digits)", name, 2*len(dst)))
	}
	if err := isim.DecodeHex(dst, val); err != nil {
		return usageError(fmt.Errorf("--%s: %w", name, err))
	}
	return nil
}

// usageNoArgs refuses positional arguments as a usage error (exit 2);
// cobra.NoArgs alone would make it exit 1.
func usageNoArgs(cmd *cobra.Command, args []string) error {
	return usageError(cobra.NoArgs(cmd, args))
}
