package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imsue/imsue/ipsec/kernel"
)

func init() {
	commands = append(commands, newSACmd)
}

// saFlags are the options shared by `sa list` and `sa flush`.
type saFlags struct {
	netns    string
	stateDir string
}

func (f *saFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.netns, "netns", "", "network namespace: a name under /run/netns or a path (default: the current one)")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", kernel.DefaultStateDir, "directory of imsue's SA state records")
	cmd.Flags().MarkHidden("state-dir") // for tests and unusual installs
}

// config checks the flags and returns the backend configuration.
func (f *saFlags) config() (kernel.Config, error) {
	cfg := kernel.Config{NetNS: f.netns, StateDir: f.stateDir}
	if f.netns != "" {
		path := f.netns
		if !strings.Contains(path, "/") {
			path = "/run/netns/" + path
		}
		if _, err := os.Stat(path); err != nil {
			return cfg, usageError(fmt.Errorf("--netns %s: %w", f.netns, err))
		}
	}
	return cfg, nil
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args))
	}
	return nil
}

func newSACmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sa",
		Short: "List or remove the ESP SAs and policies imsue installed",
		Long: `sa shows and removes the kernel IPsec objects (XFRM states and policies) that
imsue installed in a network namespace, and only those: imsue tags each SA set
with a reqid of its reserved range 0x494d0001–0x494dffff and keeps a record of
it under /run/imsue. SAs and policies of other programs in the same namespace
(Kamailio, strongSwan, ip xfrm) are never shown or touched. Keys are never
printed.`,
		Args: noArgs,
	}
	cmd.AddCommand(newSAListCmd(a), newSAFlushCmd(a))
	return cmd
}

// The JSON forms of `imsue sa list` and `imsue sa flush`.
type saListResult struct {
	Sets []saSetJSON `json:"sets"`
}

type saSetJSON struct {
	ReqID    uint32         `json:"reqid"`
	Owner    *saOwnerJSON   `json:"owner"` // null: no state record
	SAs      []saStateJSON  `json:"sas"`
	Policies []saPolicyJSON `json:"policies"`
}

type saOwnerJSON struct {
	PID     int    `json:"pid"`
	Alive   bool   `json:"alive"`
	Created string `json:"created,omitempty"`
}

type saStateJSON struct {
	Src          string `json:"src"`
	Dst          string `json:"dst"`
	SrcPort      uint16 `json:"sport"`
	DstPort      uint16 `json:"dport"`
	SPI          uint32 `json:"spi"`
	Alg          string `json:"alg"`
	EAlg         string `json:"ealg"`
	ReplayWindow uint8  `json:"replay_window"`
	LifetimeS    int64  `json:"lifetime_s"` // hard lifetime; 0: none
	Bytes        uint64 `json:"bytes"`
	Packets      uint64 `json:"packets"`
}

type saPolicyJSON struct {
	Dir      string `json:"dir"`
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	SPI      uint32 `json:"spi"`
	Priority uint32 `json:"priority"`
}

type saFlushResult struct {
	Result   string `json:"result"`
	Mode     string `json:"mode"`
	Sets     int    `json:"sets"`
	SAs      int    `json:"sas"`
	Policies int    `json:"policies"`
}

func newSAListCmd(a *app) *cobra.Command {
	var f saFlags
	cmd := &cobra.Command{
		Use:   "list [--json] [--netns NAME]",
		Short: "List imsue's SAs and policies in the network namespace",
		Long: `list prints imsue's SA sets in the current network namespace (or --netns):
per set its reqid, the process that installed it and whether it still runs,
each SA (addresses, ports, SPI, algorithms, replay window, lifetime, traffic
counters) and each policy. Keys are never printed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			sets, err := kernel.List(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			res := saListJSONOf(sets)
			return a.emit(res, func(w io.Writer) { printSAList(w, res) })
		},
	}
	f.register(cmd)
	return cmd
}

func saListJSONOf(sets []kernel.Set) saListResult {
	res := saListResult{Sets: []saSetJSON{}}
	for _, s := range sets {
		js := saSetJSON{ReqID: s.ReqID, SAs: []saStateJSON{}, Policies: []saPolicyJSON{}}
		if o := s.Owner; o != nil {
			js.Owner = &saOwnerJSON{PID: o.PID, Alive: o.Alive}
			if !o.Created.IsZero() {
				js.Owner.Created = o.Created.UTC().Format(time.RFC3339)
			}
		}
		for _, st := range s.States {
			js.SAs = append(js.SAs, saStateJSON{
				Src: st.Src.String(), Dst: st.Dst.String(), SrcPort: st.SrcPort, DstPort: st.DstPort,
				SPI: st.SPI, Alg: string(st.Auth), EAlg: string(st.Enc), ReplayWindow: st.ReplayWindow,
				LifetimeS: int64(st.HardLifetime / time.Second), Bytes: st.Bytes, Packets: st.Packets,
			})
		}
		for _, p := range s.Policies {
			js.Policies = append(js.Policies, saPolicyJSON{
				Dir: p.Dir.String(), Src: p.Src.String(), Dst: p.Dst.String(), SPI: p.SPI, Priority: p.Priority,
			})
		}
		res.Sets = append(res.Sets, js)
	}
	return res
}

func printSAList(w io.Writer, res saListResult) {
	if len(res.Sets) == 0 {
		fmt.Fprintln(w, "no imsue SAs or policies in this network namespace")
		return
	}
	for _, s := range res.Sets {
		owner := "no state record"
		if o := s.Owner; o != nil {
			state := "exited"
			if o.Alive {
				state = "running"
			}
			owner = fmt.Sprintf("owner pid %d (%s)", o.PID, state)
			if o.Created != "" {
				owner += ", installed " + o.Created
			}
		}
		fmt.Fprintf(w, "set reqid 0x%08x: %s\n", s.ReqID, owner)
		for _, st := range s.SAs {
			life := "no lifetime"
			if st.LifetimeS > 0 {
				life = fmt.Sprintf("lifetime %ds", st.LifetimeS)
			}
			fmt.Fprintf(w, "  SA     %s → %s  spi 0x%08x  %s/%s  replay %d  %s  %d packets %d bytes\n",
				hostPort(st.Src, st.SrcPort), hostPort(st.Dst, st.DstPort), st.SPI, st.Alg, st.EAlg,
				st.ReplayWindow, life, st.Packets, st.Bytes)
		}
		for _, p := range s.Policies {
			fmt.Fprintf(w, "  policy %-3s %s → %s  spi 0x%08x  priority %d\n", p.Dir, p.Src, p.Dst, p.SPI, p.Priority)
		}
	}
}

func hostPort(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func newSAFlushCmd(a *app) *cobra.Command {
	var (
		f     saFlags
		stale bool
	)
	cmd := &cobra.Command{
		Use:   "flush [--stale] [--json] [--netns NAME]",
		Short: "Remove imsue's SAs and policies from the network namespace",
		Long: `flush removes imsue's SA sets from the current network namespace (or --netns):
their states, their policies and their state records. With --stale it removes
only the sets whose imsue process has exited (what a run killed with SIGKILL
leaves behind), so that running imsue processes keep theirs. Other programs'
SAs and policies are never touched.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			mode := kernel.FlushAll
			if stale {
				mode = kernel.FlushStale
			}
			n, err := kernel.Flush(cmd.Context(), cfg, mode)
			if err != nil {
				if n != (kernel.Flushed{}) {
					a.logf("imsue: removed %d SAs and %d policies before the error", n.States, n.Policies)
				}
				return err
			}
			res := saFlushResult{Result: "flushed", Mode: mode.String(), Sets: n.Sets, SAs: n.States, Policies: n.Policies}
			return a.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "removed %d SAs and %d policies (%d %s)\n", n.States, n.Policies, n.Sets, plural(n.Sets, "set", "sets"))
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&stale, "stale", false, "remove only sets whose imsue process has exited")
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
