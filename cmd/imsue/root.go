package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// app carries what every command shares: the output streams and --json.
type app struct {
	stdout, stderr io.Writer
	json           bool
}

// emit prints v as one JSON object on stdout (with --json) or as the human
// text that text() returns.
func (a *app) emit(v any, text func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	text(a.stdout)
	return nil
}

// logf writes a human-readable line on stderr.
func (a *app) logf(format string, args ...any) {
	fmt.Fprintf(a.stderr, format+"\n", args...)
}

const exitCodeHelp = `Exit codes:
  0  success
  1  unexpected internal error
  2  usage or configuration error (flags, profile, files)
  3  no answer from the network (transaction timeout, unreachable)
  4  rejected by the network (403, 404, other final failures)
  5  network authentication failure: AUTN's MAC did not verify
  6  synchronisation failure (aka: AUTS produced; register: resync did not converge)
  7  security agreement failure (no acceptable mechanism, bad or missing Security-Server)
  8  IPsec failure (kernel without ESP, no CAP_NET_ADMIN, SA install error)
  9  card failure (no reader or card, PIN wrong or blocked, unexpected status word)`

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "imsue",
		Short: "A UE-side IMS client: Digest AKA, sec-agree and ESP registration to an IMS core",
		Long: `imsue registers a test subscriber to an IMS core as a 3GPP UE does
(TS 24.229 REGISTER with Digest AKA, RFC 3329 sec-agree, TS 33.203 ESP to the
P-CSCF), and carries the lab tools around that job: a software ISIM, a
MILENAGE calculator, a lab IMS core and PC/SC card access.

` + exitCodeHelp,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print one JSON object on stdout")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	for _, add := range commands {
		root.AddCommand(add(a))
	}
	return root
}

// commands is filled by each command's file (init), so that optional
// commands (PC/SC) can be left out by build tags.
var commands []func(*app) *cobra.Command

func run(args []string, stdout, stderr io.Writer) int {
	stdout, stderr = textSafe{stdout}, textSafe{stderr}
	a := &app{stdout: stdout, stderr: stderr}
	root := newRoot(a)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	code := exitCode(err)
	if a.json && !printedJSON(err) {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"result": "error", "exit_code": code, "error": err.Error()})
	}
	fmt.Fprintf(stderr, "imsue: %v\n", err)
	return code
}
