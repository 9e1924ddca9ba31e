package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/ipsec"
)

func init() { commands = append(commands, newCoreCmd) }

// coreOutput is the JSON object `imsue core --json` prints once listening.
type coreOutput struct {
	Result      string `json:"result"`
	Addr        string `json:"addr"`
	PortPS      uint16 `json:"port_ps,omitempty"`
	Domain      string `json:"domain"`
	Algorithm   string `json:"algorithm"`
	IPsec       string `json:"ipsec"`
	Subscribers int    `json:"subscribers"`
}

type coreFlags struct {
	config string
	listen string
	trace  bool
}

func newCoreCmd(a *app) *cobra.Command {
	var f coreFlags
	cmd := &cobra.Command{
		Use:   "core [--config FILE] [--listen IP:PORT] [--trace]",
		Short: "Run the lab IMS core (P-CSCF, S-CSCF, HSS) in the foreground",
		Long: `core runs the lab IMS core until SIGINT or SIGTERM: a P-CSCF that does
sec-agree and installs the mirror SAs (TS 33.203), an S-CSCF that challenges
with Digest AKA and registers (TS 24.229, RFC 3310/4169), and an HSS with
MILENAGE vectors and SQN resynchronisation.

Without --config it serves one lab subscriber, IMSI 001010123456789 with the
TS 35.208 test set 1 keys (the profile example of the documentation), on
127.0.0.1:5060. The configuration file is YAML:

  domain: ims.mnc001.mcc001.3gppnetwork.org
  listen: 127.0.0.1:5060
  algorithm: AKAv1-MD5        # AKAv2-MD5, MD5
  qop: auth                   # "auth,auth-int", auth-int, none
  ipsec: none                 # kernel (needs CAP_NET_ADMIN and ESP)
  subscribers:
    - imsi: "001010123456789"
      k: 465b5ce8b199b49faa5f0a2ee238a6bc
      opc: cd63cb71954a9f4e48a5994e37a02baf

(more keys: port_ps, max_expires, min_expires, auth_timeout, reauth_expires,
ck_ik_in_challenge, trust_integrity_protected, challenge_refreshes,
mechanisms, and per subscriber impi, impu, op, sqn, amf,
password). The file holds subscriber keys: keep it private (mode 0600).

It prints the bound address once listening; --trace logs every SIP message
on stderr (never K, OPc, CK or IK).`,
		Args: usageNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCore(cmd, a, &f) },
	}
	cmd.Flags().StringVar(&f.config, "config", "", "YAML configuration `FILE`")
	cmd.Flags().StringVar(&f.listen, "listen", "", "unprotected `IP:PORT` (overrides the file's listen)")
	cmd.Flags().BoolVar(&f.trace, "trace", false, "log every SIP message on stderr")
	return cmd
}

// loadCoreConfig reads the configuration file (or the defaults) and applies
// the flags.
func loadCoreConfig(a *app, f *coreFlags) (imscore.FileConfig, error) {
	fc := imscore.DefaultFileConfig()
	if f.config != "" {
		data, err := os.ReadFile(f.config)
		if err != nil {
			return fc, usageError(fmt.Errorf("--config: %w", err))
		}
		if st, err := os.Stat(f.config); err == nil && st.Mode().Perm()&0o077 != 0 {
			a.logf("imsue core: warning: %s holds subscriber keys and is readable by others (mode %04o); chmod 600 it", f.config, st.Mode().Perm())
		}
		if fc, err = imscore.ParseConfigFile(data); err != nil {
			return fc, usageError(fmt.Errorf("--config %s: %w", f.config, err))
		}
	}
	if f.listen != "" {
		ap, err := netip.ParseAddrPort(f.listen)
		if err != nil {
			return fc, usageError(fmt.Errorf("--listen %q: want IP:PORT: %w", f.listen, err))
		}
		fc.Addr = ap
	}
	return fc, nil
}

func runCore(cmd *cobra.Command, a *app, f *coreFlags) error {
	fc, err := loadCoreConfig(a, f)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var backend ipsec.Backend = ipsec.None{}
	if fc.IPsecBackend == "kernel" {
		if newKernelBackend == nil {
			return withCode(exitIPsec, errKernelNotBuilt)
		}
		if backend, err = newKernelBackend(ctx, ""); err != nil {
			return withCode(exitIPsec, fmt.Errorf("ipsec kernel: %w", err))
		}
	}
	defer backend.Close()
	fc.IPsec = backend

	level := slog.LevelInfo
	if f.trace {
		level = slog.LevelDebug
	}
	fc.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))

	core, err := imscore.Start(ctx, fc.Config)
	if err != nil {
		var code = exitUsage
		if errors.Is(err, ipsec.ErrUnsupported) {
			code = exitIPsec
		}
		return withCode(code, err)
	}
	defer core.Close()

	out := coreOutput{
		Result: "listening", Addr: core.Addr().String(), PortPS: core.PortPS(),
		Domain: fc.Domain, Algorithm: orLabel(fc.Algorithm, "AKAv1-MD5"), IPsec: backend.Name(),
		Subscribers: len(fc.Subscribers),
	}
	if err := a.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "imsue core: listening on %s (udp, tcp)", out.Addr)
		if out.PortPS != 0 {
			fmt.Fprintf(w, ", port_ps %d", out.PortPS)
		}
		fmt.Fprintf(w, "; domain %s, %s, ipsec %s, %d subscriber(s)\n", out.Domain, out.Algorithm, out.IPsec, out.Subscribers)
	}); err != nil {
		return err
	}
	<-ctx.Done()
	if err := core.Close(); err != nil {
		return withCode(exitIPsec, fmt.Errorf("core: %w", err))
	}
	a.logf("imsue core: stopped")
	return nil
}

func orLabel(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
