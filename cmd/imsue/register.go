package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/imsue/imsue/internal/regfile"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipclient"
	"github.com/imsue/imsue/sipnet"
)

// processStart is taken at package initialisation, before main: the
// register command reports the time from process start to registered.
var processStart = time.Now()

// newKernelBackend opens the kernel ESP backend for --ipsec kernel; it is set
// by register_kernel.go. nil means imsue was built without it.
// stateDir is where the backend keeps its records of installed sets ("":
// its default).
var newKernelBackend func(ctx context.Context, stateDir string) (ipsec.Backend, error)

// errKernelNotBuilt is the exit-8 error of --ipsec kernel without a backend.
var errKernelNotBuilt = fmt.Errorf("--ipsec kernel: the kernel ESP backend is not built into this imsue: %w", ipsec.ErrUnsupported)

// errInterrupted: a signal ended the registration before its final answer.
var errInterrupted = errors.New("interrupted before the registration completed")

func init() {
	commands = append(commands, newRegisterCmd)
}

type registerFlags struct {
	profile, pcscf, dns, localIP, transport, ipsec string
	algs, ealgs                                    []string
	akav2, allowUnauth                             bool
	expires                                        uint32
	localPort                                      int
	hold                                           time.Duration
	untilSignal                                    bool
	trace                                          bool
	pcap, espKeys                                  string
	deregTimeout, t1, t2, t4                       time.Duration
	stateDir                                       string
	headers, icsi                                  []string
	smsip, noInstance, noRegEvent                  bool
	portUS, portUC                                 int
	minRefresh                                     time.Duration
	pani                                           string
}

func newRegisterCmd(a *app) *cobra.Command {
	f := &registerFlags{}
	cmd := &cobra.Command{
		Use:   "register --profile FILE [--pcscf HOST[:PORT]]",
		Short: "Register the profile's subscriber to an IMS core (Digest AKA, sec-agree, ESP)",
		Long: `register registers the profile's subscriber through the P-CSCF as a 3GPP UE
does (TS 24.229 §5.1.1): an unprotected REGISTER from --local-port offering
the --alg × --ealg mechanisms (RFC 3329 Security-Client), Digest AKA on the
ISIM (AKAv1-MD5 or AKAv2-MD5; plain MD5 with the profile's password), four
ESP SAs (TS 33.203) installed before the protected REGISTER leaves, and the
200 OK. With --hold or --until-signal it stays registered: it re-registers
on time (new SAs each time), subscribes to the reg event and acts on it.
It de-registers on exit (also on SIGINT and SIGTERM) and removes its SAs
whatever happens; a de-registration the P-CSCF never answers (Kamailio)
is reported as not confirmed.

--akav2 announces AKAv2-MD5 in the first REGISTER and refuses a challenge
with a weaker algorithm (exit 7); without it the UE answers the algorithm
the network chose. A REGISTER larger than 1300 bytes goes over TCP
(RFC 3261 §18.1.1), back to UDP if TCP is refused.

--json prints one object at exit: result, impi, impu, associated_uris,
service_route, expires, security {alg, ealg, mode, spi_uc, spi_us, spi_pc,
spi_ps, port_uc, port_us, port_pc, port_ps}, timings_ms, deregistration
{confirmed}.

` + exitCodeHelp,
		Args: usageNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRegister(cmd, a, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.profile, "profile", "", "subscriber profile (YAML)")
	fl.StringVar(&f.pcscf, "pcscf", "", "P-CSCF unprotected address HOST[:PORT] (port 5060 by default); without it, the ISIM's EF.P-CSCF, else the home domain's DNS (RFC 3263)")
	fl.BoolVar(&f.allowUnauth, "allow-unauthenticated", false, "accept a 200 OK to the initial REGISTER that came without a challenge (no network authentication, no SAs); by default that is exit 7")
	fl.StringVar(&f.dns, "dns", "", "DNS server HOST:PORT for P-CSCF discovery (default: /etc/resolv.conf's first)")
	fl.StringVar(&f.localIP, "local-ip", "", "UE address (default: the source address towards the P-CSCF)")
	fl.IntVar(&f.localPort, "local-port", sipclient.DefaultPort, "unprotected UE port of the initial REGISTER (0: ephemeral; Kamailio requires 5060)")
	fl.StringVar(&f.transport, "transport", "udp", "udp or tcp")
	fl.StringVar(&f.ipsec, "ipsec", "kernel", "kernel (ESP SAs through XFRM) or none (plan the SAs, install nothing)")
	fl.StringSliceVar(&f.algs, "alg", algNames(sipclient.DefaultAlgs), "integrity algorithms offered, in preference order")
	fl.StringSliceVar(&f.ealgs, "ealg", encNames(sipclient.DefaultEAlgs), "encryption algorithms offered, in preference order")
	fl.BoolVar(&f.akav2, "akav2", false, "announce AKAv2-MD5 and refuse weaker Digest algorithms")
	fl.Uint32Var(&f.expires, "expires", uint32(sipclient.DefaultExpires/time.Second), "registration expiry requested, in seconds")
	fl.DurationVar(&f.hold, "hold", 0, "stay registered this long, then de-register")
	fl.BoolVar(&f.untilSignal, "until-signal", false, "stay registered until SIGINT or SIGTERM, then de-register")
	fl.BoolVar(&f.trace, "trace", false, "print each SIP message, timestamped, on stderr")
	fl.StringVar(&f.pcap, "pcap", "", "write the SIP messages as sent and received to this pcap file")
	fl.StringVar(&f.espKeys, "esp-keys", "", "write the ESP keys in Wireshark's esp_sa format to this file (mode 0600)")
	fl.StringArrayVar(&f.headers, "header", nil, "add a header to REGISTER and SUBSCRIBE, \"Name: value\"; it replaces imsue's own header of that name (repeatable)")
	fl.StringArrayVar(&f.icsi, "icsi", []string{sipclient.ICSIMMTel}, "IMS communication service identifier for the Contact's +g.3gpp.icsi-ref (repeatable; TS 24.229 §7.9.2)")
	fl.BoolVar(&f.smsip, "smsip", false, "add +g.3gpp.smsip to the Contact (SMS over IP, TS 24.341)")
	fl.StringVar(&f.pani, "pani", "", "P-Access-Network-Info value (TS 24.229 §7.2A.4), e.g. \"3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=0010100010019B01\"")
	fl.IntVar(&f.portUS, "port-us", 0, "protected server port port_us (0: chosen); fixed ports make captures reproducible")
	fl.IntVar(&f.portUC, "port-uc", 0, "protected client port port_uc of the initial registration (0: chosen; re-registrations take new ones, TS 33.203 §7.4)")
	fl.DurationVar(&f.minRefresh, "min-refresh", sipclient.DefaultMinRefresh, "never refresh faster than this, however short the lifetime granted (lower it for labs with lifetimes of seconds)")
	fl.BoolVar(&f.noRegEvent, "no-reg-event", false, "do not subscribe to the reg event (RFC 3680) while registered")
	fl.BoolVar(&f.noInstance, "no-instance", false, "no +sip.instance in the Contact (and no GRUU asked for)")
	fl.DurationVar(&f.deregTimeout, "dereg-timeout", sipclient.DefaultDeregTimeout, "how long to wait for the answer to the de-REGISTER")
	fl.DurationVar(&f.t1, "t1", sipnet.UETimers.T1, "SIP timer T1, the first UDP retransmission (TS 24.229 Table 7.7.1); Timer F = 64·T1 bounds a transaction")
	fl.DurationVar(&f.t2, "t2", sipnet.UETimers.T2, "SIP timer T2, the longest retransmission interval (TS 24.229 Table 7.7.1)")
	fl.DurationVar(&f.t4, "t4", sipnet.UETimers.T4, "SIP timer T4 (TS 24.229 Table 7.7.1)")
	fl.StringVar(&f.stateDir, "state-dir", "", "directory of the kernel backend's SA records (default: its own)")
	fl.MarkHidden("state-dir") // for tests and unusual installs, as in imsue sa
	return cmd
}

func algNames(as []ipsec.Auth) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
}

func encNames(es []ipsec.Enc) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e)
	}
	return out
}

// config turns the flags into a sipclient.Config (without Auth and
// Backend); every error is a usage error naming the flag.
func (f *registerFlags) config() (sipclient.Config, error) {
	var cfg sipclient.Config
	if f.profile == "" {
		return cfg, usageError(errors.New("--profile: required"))
	}
	var err error
	if f.pcscf != "" { // else discovered (runRegister)
		if cfg.PCSCF, err = parseHostPort(f.pcscf); err != nil {
			return cfg, usageError(fmt.Errorf("--pcscf %q: %w", f.pcscf, err))
		}
	}
	if f.localIP != "" {
		if cfg.LocalIP, err = netip.ParseAddr(f.localIP); err != nil {
			return cfg, usageError(fmt.Errorf("--local-ip %q: not an IP address", f.localIP))
		}
	}
	// --local-port 0 is sipclient's 0: the system picks. The default, 5060,
	// is the flag's own.
	if f.localPort < 0 || f.localPort > 65535 {
		return cfg, usageError(fmt.Errorf("--local-port %d: want 0..65535", f.localPort))
	}
	cfg.LocalPort = uint16(f.localPort)
	for _, p := range []struct {
		name string
		v    int
	}{{"port-us", f.portUS}, {"port-uc", f.portUC}} {
		if p.v < 0 || p.v > 65535 {
			return cfg, usageError(fmt.Errorf("--%s %d: want 1..65535 (0: chosen)", p.name, p.v))
		}
	}
	cfg.ServerPort, cfg.ClientPort = uint16(f.portUS), uint16(f.portUC)
	if f.minRefresh < 0 {
		return cfg, usageError(fmt.Errorf("--min-refresh %s: negative", f.minRefresh))
	}
	cfg.MinRefresh = f.minRefresh
	switch {
	case f.portUS != 0 && f.portUS == f.localPort:
		return cfg, usageError(fmt.Errorf("--port-us %d: also --local-port", f.portUS))
	case f.portUC != 0 && (f.portUC == f.localPort || f.portUC == f.portUS):
		return cfg, usageError(fmt.Errorf("--port-uc %d: also --local-port or --port-us", f.portUC))
	}
	switch t := strings.ToLower(f.transport); t {
	case "udp", "tcp":
		cfg.Transport = t
	default:
		return cfg, usageError(fmt.Errorf("--transport %q: want udp or tcp", f.transport))
	}
	for _, a := range f.algs {
		cfg.Algs = append(cfg.Algs, ipsec.Auth(strings.ToLower(strings.TrimSpace(a))))
	}
	for _, e := range f.ealgs {
		cfg.EAlgs = append(cfg.EAlgs, ipsec.Enc(strings.ToLower(strings.TrimSpace(e))))
	}
	if len(cfg.Algs) == 0 || len(cfg.EAlgs) == 0 {
		return cfg, usageError(errors.New("--alg and --ealg: at least one algorithm each"))
	}
	// Every pair offered must be one the MT can key (TS 33.203 Annex I).
	for _, a := range cfg.Algs {
		for _, e := range cfg.EAlgs {
			if a == "" || e == "" {
				return cfg, usageError(errors.New("--alg and --ealg: empty algorithm name"))
			}
			if !mt.Supported(a, e) {
				return cfg, usageError(fmt.Errorf("--alg %s with --ealg %s: %w", a, e, mt.ErrUnsupportedAlgorithm))
			}
		}
	}
	if f.expires == 0 {
		return cfg, usageError(errors.New("--expires: must be at least 1 (de-registration happens on exit)"))
	}
	cfg.Expires = time.Duration(f.expires) * time.Second
	cfg.AKAv2 = f.akav2
	cfg.AllowUnauthenticated = f.allowUnauth
	cfg.Headers = f.headers
	cfg.ICSI = f.icsi
	if cfg.ICSI == nil {
		cfg.ICSI = []string{} // --icsi given empty: none
	}
	cfg.SMSIP = f.smsip
	cfg.NoRegEvent = f.noRegEvent
	cfg.PANI = f.pani
	if f.hold < 0 {
		return cfg, usageError(fmt.Errorf("--hold %s: negative", f.hold))
	}
	if f.hold > 0 && f.untilSignal {
		return cfg, usageError(errors.New("--hold and --until-signal: give one of them"))
	}
	if f.deregTimeout <= 0 {
		return cfg, usageError(fmt.Errorf("--dereg-timeout %s: must be positive", f.deregTimeout))
	}
	cfg.DeregTimeout = f.deregTimeout
	for _, t := range []struct {
		name string
		v    time.Duration
	}{{"t1", f.t1}, {"t2", f.t2}, {"t4", f.t4}} {
		if t.v <= 0 {
			return cfg, usageError(fmt.Errorf("--%s %s: must be positive", t.name, t.v))
		}
	}
	if f.t2 < f.t1 {
		return cfg, usageError(fmt.Errorf("--t2 %s: shorter than --t1 %s", f.t2, f.t1))
	}
	cfg.Timers = sipnet.Timers{T1: f.t1, T2: f.t2, T4: f.t4}
	switch f.ipsec {
	case "kernel", "none":
	default:
		return cfg, usageError(fmt.Errorf("--ipsec %q: want kernel or none", f.ipsec))
	}
	return cfg, nil
}

// parseHostPort parses HOST[:PORT] where HOST is an IP literal (IPv6 in
// brackets when a port follows) or a name resolved now.
func parseHostPort(s string) (netip.AddrPort, error) {
	host, port := s, uint16(sipclient.DefaultPort)
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, perr := strconv.ParseUint(p, 10, 16)
		if perr != nil || n == 0 {
			return netip.AddrPort{}, fmt.Errorf("port %q: want 1..65535", p)
		}
		host, port = h, uint16(n)
	} else if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return netip.AddrPort{}, errors.New("unbalanced [ ]")
		}
		host = s[1 : len(s)-1]
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	if host == "" {
		return netip.AddrPort{}, errors.New("no host")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving %s: %v", host, err)
	}
	for _, a := range addrs { // prefer IPv4, as most lab P-CSCFs listen there
		if a.Unmap().Is4() {
			return netip.AddrPortFrom(a.Unmap(), port), nil
		}
	}
	return netip.AddrPortFrom(addrs[0], port), nil
}

// keyLogBackend writes every installed SA set to the --esp-keys file.
type keyLogBackend struct {
	ipsec.Backend
	keys *ipsec.ESPKeysFile
	warn func(format string, args ...any)
}

func (b keyLogBackend) Install(ctx context.Context, set *ipsec.SASet) error {
	if err := b.Backend.Install(ctx, set); err != nil {
		return err
	}
	if err := b.keys.Add(set); err != nil {
		b.warn("imsue: warning: %v", err)
	}
	return nil
}

// registerOutput is the JSON object of `imsue register --json`.
type registerOutput struct {
	Result
}

func runRegister(cmd *cobra.Command, a *app, f *registerFlags) (retErr error) {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	p, err := loadProfile(a, f.profile)
	if err != nil {
		return err
	}
	auth, err := openAuthenticator(p)
	if err != nil {
		return err
	}
	defer auth.Close()
	cfg.Auth = auth
	if p.Identity.IMPI != "" {
		cfg.Identity = &p.Identity // else the card's (Auth.Identity)
	}
	cfg.Password = string(p.Password)
	cfg.UserAgent = "imsue/" + version
	if !f.noInstance {
		if cfg.Instance, _, err = instanceURN(p); err != nil {
			return usageError(err)
		}
	}
	if !cfg.PCSCF.IsValid() {
		id := p.Identity
		if id.IMPI == "" {
			if id, err = auth.Identity(cmd.Context()); err != nil {
				return fmt.Errorf("reading the identity: %w", err)
			}
		}
		dctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
		pcscf, from, err := discoverPCSCF(dctx, auth, id, cfg.Transport, f.dns)
		cancel()
		if err != nil {
			return usageError(fmt.Errorf("--pcscf not given and no P-CSCF found: %w", err))
		}
		a.logf("imsue: P-CSCF %s, from %s", pcscf, from)
		cfg.PCSCF = pcscf
	}

	// Signals end the hold (and abort a registration in progress); the
	// de-registration that follows runs on its own bounded context.
	sigctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var backend ipsec.Backend = ipsec.None{}
	if f.ipsec == "kernel" {
		if newKernelBackend == nil {
			return withCode(exitIPsec, errKernelNotBuilt)
		}
		if backend, err = newKernelBackend(sigctx, f.stateDir); err != nil {
			return withCode(exitIPsec, fmt.Errorf("--ipsec kernel: %w", err))
		}
	}
	defer backend.Close()
	if f.espKeys != "" {
		keys, err := ipsec.CreateESPKeysFile(f.espKeys)
		if err != nil {
			return usageError(fmt.Errorf("--esp-keys: %w", err))
		}
		defer keys.Close()
		backend = keyLogBackend{Backend: backend, keys: keys, warn: a.logf}
	}
	cfg.Backend = backend
	if f.trace {
		cfg.Trace = a.stderr
	}
	if f.pcap != "" {
		file, err := regfile.Create(f.pcap) // 0600, no symlink followed
		if err != nil {
			return usageError(fmt.Errorf("--pcap: %w", err))
		}
		defer file.Close()
		pw, err := sipnet.NewPcapWriter(file)
		if err != nil {
			return usageError(fmt.Errorf("--pcap %s: %w", f.pcap, err))
		}
		cfg.Capture = pw
	}

	c, err := sipclient.New(cfg)
	switch {
	case errors.Is(err, sipclient.ErrLocalAddress):
		return usageError(fmt.Errorf("%w (see --local-ip, --local-port)", err))
	case err != nil && exitCode(err) == exitInternal:
		return usageError(err) // configuration
	case err != nil:
		return err // a card failure reading the identity, ...
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && retErr == nil {
			retErr = cerr
		}
	}()

	reg, err := c.Register(sigctx)
	// Staying registered is the point of --hold and --until-signal: a
	// rejection worth retrying (503 and the like) is retried after its
	// Retry-After or the RFC 5626 backoff, until it works or the user stops.
	for failures := 1; err != nil && (f.untilSignal || f.hold > 0) && sigctx.Err() == nil; failures++ {
		d, ok := sipclient.Retry(err, failures)
		if !ok {
			break
		}
		a.logf("imsue: %v; registering again in %s", err, d.Round(time.Millisecond))
		select {
		case <-time.After(d):
			reg, err = c.Register(sigctx)
		case <-sigctx.Done():
		}
	}
	switch {
	case err != nil && sigctx.Err() != nil && cmd.Context().Err() == nil:
		err = fmt.Errorf("%w: %w", errInterrupted, err)
	case errors.Is(err, sipclient.ErrLocalAddress):
		err = fmt.Errorf("%w (see --local-ip, --local-port)", err)
	}
	var out registerOutput
	if err != nil {
		out.Result = NewResult(nil, err)
		out.ExitCode = exitCode(err)
		return a.finish(out, err)
	}
	registeredAfter := time.Since(processStart)
	if !a.json {
		printRegistered(a.stdout, reg)
	}

	// Stay registered.
	var runErr error
	if f.untilSignal || f.hold > 0 {
		ctx := sigctx
		if f.hold > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(sigctx, f.hold)
			defer cancel()
		}
		runErr = c.Run(ctx)
		if r := c.Registration(); r != nil {
			reg = r
		}
	}

	out.Result = NewResult(reg, runErr)
	if out.TimingsMS == nil {
		out.TimingsMS = map[string]float64{}
	}
	out.TimingsMS["process_to_registered"] = float64(registeredAfter.Microseconds()) / 1000
	if c.Registration() != nil {
		start := time.Now()
		confirmed, derr := c.Deregister(context.Background())
		out.TimingsMS["deregister"] = float64(time.Since(start).Microseconds()) / 1000
		out.Deregistration = &DeregResult{Confirmed: confirmed}
		var ipe *sipclient.IPsecError
		switch {
		case errors.As(derr, &ipe):
			runErr = errors.Join(runErr, derr)
		case derr != nil:
			out.Deregistration.Reason = derr.Error()
		}
		if !a.json {
			if confirmed {
				fmt.Fprintln(a.stdout, "de-registered")
			} else {
				fmt.Fprintf(a.stdout, "de-registration not confirmed: %s (SAs removed)\n", out.Deregistration.Reason)
			}
		}
	}
	if runErr != nil {
		out.Result.Result = Outcome(runErr)
		out.Error = runErr.Error()
		out.ExitCode = exitCode(runErr)
	}
	return a.finish(out, runErr)
}

// finish prints the JSON object (with --json) and returns err marked as
// printed, so that the root does not print a second object.
func (a *app) finish(out registerOutput, err error) error {
	if a.json {
		if perr := a.emit(out, func(io.Writer) {}); perr != nil {
			return perr
		}
	}
	if err == nil {
		return nil
	}
	return &exitError{code: exitCode(err), err: err, printed: a.json}
}

func printRegistered(w io.Writer, r *sipclient.Registration) {
	fmt.Fprintf(w, "registered %s (expires %d s)\n", r.IMPU, int64(r.Expires/time.Second))
	fmt.Fprintf(w, "  %-14s %s\n", "impi", r.IMPI)
	if len(r.AssociatedURIs) > 0 {
		fmt.Fprintf(w, "  %-14s %s\n", "associated", strings.Join(r.AssociatedURIs, ", "))
	}
	if len(r.ServiceRoute) > 0 {
		fmt.Fprintf(w, "  %-14s %s\n", "service-route", strings.Join(r.ServiceRoute, ", "))
	}
	if s := r.Security; s != nil {
		fmt.Fprintf(w, "  %-14s %s / %s, %s\n", "security", s.Alg, s.EAlg, s.Mode)
		fmt.Fprintf(w, "  %-14s uc=%d us=%d pc=%d ps=%d\n", "spi", s.SPIuc, s.SPIus, s.SPIpc, s.SPIps)
		fmt.Fprintf(w, "  %-14s uc=%d us=%d pc=%d ps=%d\n", "port", s.PortUC, s.PortUS, s.PortPC, s.PortPS)
	} else {
		what := "none (plain Digest, no SAs)"
		if r.Unauthenticated {
			what = "none (not authenticated: the network sent no challenge; no SAs)"
		}
		fmt.Fprintf(w, "  %-14s %s\n", "security", what)
	}
	t := r.Timings
	fmt.Fprintf(w, "  %-14s %.1f ms (401 after %.1f, AKA %.1f, SA install %.1f, protected REGISTER %.1f)\n", "took",
		ms(t.Total), ms(t.Challenge), ms(t.AKA), ms(t.SAInstall), ms(t.Protected))
}

// ms is a duration in milliseconds with microsecond resolution.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
