package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/sipclient"
)

// The demo subscriber: TS 35.208 test set 1's K and OPc, an IMSI of the
// test network 001/01, identities derived per TS 23.003 §13.
const (
	demoIMSI = "001010000000001"
	demoK    = "465b5ce8b199b49faa5f0a2ee238a6bc"
	demoOPc  = "cd63cb71954a9f4e48a5994e37a02baf"
)

func init() { commands = append(commands, newDemoCmd) }

func newDemoCmd(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Register a software ISIM to an in-process lab IMS core on loopback, then de-register",
		Long: `demo starts the lab IMS core (HSS, S-CSCF and P-CSCF) on 127.0.0.1 and a
UE with a software ISIM (TS 35.208 test set 1 keys, IMSI 001010000000001),
and runs one whole IMS registration between them, showing every SIP message:

  REGISTER (unprotected, Security-Client, empty Authorization)
  401 Unauthorized (WWW-Authenticate with RAND||AUTN, Security-Server)
  REGISTER (from port_uc to port_ps, Digest AKA response, Security-Verify)
  200 OK (P-Associated-URI, Service-Route)
  REGISTER Expires: 0 and its 200 (de-registration)

Nothing is installed in the kernel (--ipsec none): the protected ports carry
clear text. Ports are ephemeral so that no privilege is needed.`,
		Args: usageNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), a, quiet)
		},
	}
	cmd.Flags().BoolVar(&quiet, "quiet", false, "do not print the SIP messages")
	return cmd
}

func runDemo(ctx context.Context, a *app, quiet bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	k, err := isim.ParseKey(demoK)
	if err != nil {
		return err
	}
	opc, err := isim.ParseKey(demoOPc)
	if err != nil {
		return err
	}
	id, err := isim.IdentityFromIMSI(demoIMSI, 2)
	if err != nil {
		return err
	}

	core, err := imscore.Start(ctx, imscore.Config{
		Domain: id.Domain,
		Addr:   netip.MustParseAddrPort("127.0.0.1:0"),
		Subscribers: []imscore.Subscriber{{
			IMPI:  id.IMPI,
			IMPUs: append(append([]string{}, id.IMPUs...), "sip:+15550100@"+id.Domain, "tel:+15550100"),
			K:     k,
			OPc:   opc,
		}},
	})
	if err != nil {
		return fmt.Errorf("start the lab core: %w", err)
	}
	defer core.Close()

	ue, err := isim.NewSoftware(isim.Config{
		Identity: id,
		K:        k,
		OPc:      opc,
		Store:    isim.NewMemoryStore(isim.SQNState{}),
	})
	if err != nil {
		return err
	}
	defer ue.Close()

	// Human narration goes to stderr with --json, so stdout holds one object.
	narr := a.stdout
	if a.json {
		narr = a.stderr
	}
	var trace io.Writer
	if !quiet {
		trace = narr
	}
	fmt.Fprintf(narr, "lab IMS core (P-CSCF/S-CSCF/HSS) on %s, domain %s\n", core.Addr(), id.Domain)
	fmt.Fprintf(narr, "UE: software ISIM, IMPI %s\n\n", id.IMPI)

	c, err := sipclient.New(sipclient.Config{
		Auth:      ue,
		PCSCF:     core.Addr(),
		LocalIP:   core.Addr().Addr(),
		Transport: "udp",
		Trace:     trace,
	})
	if err != nil {
		return err
	}
	defer c.Close()

	reg, err := c.Register(ctx)
	res := NewResult(reg, err)
	if err != nil {
		if a.json {
			res.ExitCode = exitCode(err)
			_ = a.emit(res, nil)
			return &exitError{code: res.ExitCode, err: err, printed: true}
		}
		return err
	}
	confirmed, derr := c.Deregister(ctx)
	res.Deregistration = &DeregResult{Confirmed: confirmed}
	if derr != nil {
		res.Deregistration.Reason = derr.Error()
	}
	return a.emit(res, func(w io.Writer) {
		s := reg.Security
		fmt.Fprintf(w, "\nregistered %s as %s (expires %s)\n", reg.IMPI, reg.IMPU, reg.Expires)
		fmt.Fprintf(w, "  P-Associated-URI: %v\n  Service-Route:    %v\n", reg.AssociatedURIs, reg.ServiceRoute)
		if s != nil {
			fmt.Fprintf(w, "  sec-agree: ipsec-3gpp alg=%s ealg=%s mod=%s\n", s.Alg, s.EAlg, s.Mode)
			fmt.Fprintf(w, "  SAs: UE port_uc %d (spi %d) / port_us %d (spi %d)  <->  P-CSCF port_pc %d (spi %d) / port_ps %d (spi %d)\n",
				s.PortUC, s.SPIuc, s.PortUS, s.SPIus, s.PortPC, s.SPIpc, s.PortPS, s.SPIps)
		}
		if confirmed {
			fmt.Fprintln(w, "de-registered (200 OK to Expires: 0); SAs released")
		} else {
			fmt.Fprintf(w, "de-registration not confirmed: %v; SAs released\n", derr)
		}
	})
}
