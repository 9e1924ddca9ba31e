package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/locate"
)

// pcscfSource is an ISIM that knows its network's P-CSCFs (EF.P-CSCF).
type pcscfSource interface {
	PCSCF(ctx context.Context) ([]string, error)
}

// discoverPCSCF finds the P-CSCF when --pcscf is not given (TS 24.229
// §9.2.1): from the ISIM's EF.P-CSCF, else in the DNS of the home domain
// as RFC 3263 says (NAPTR, SRV, A/AAAA), asking dnsServer ("" for the
// system's). An FQDN from the card is looked up the same way. It returns
// the address and where it came from.
func discoverPCSCF(ctx context.Context, auth isim.Authenticator, id isim.Identity, transport, dnsServer string) (netip.AddrPort, string, error) {
	r := &locate.Resolver{Server: dnsServer}
	lookup := func(name string) (netip.AddrPort, error) {
		ts, err := r.SIP(ctx, name, transport)
		if err != nil {
			return netip.AddrPort{}, err
		}
		return ts[0].Addr, nil
	}
	var errs []error
	if src, ok := auth.(pcscfSource); ok {
		addrs, err := src.PCSCF(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("EF.P-CSCF: %w", err))
		}
		for _, a := range addrs {
			if ip, err := netip.ParseAddr(strings.Trim(a, "[]")); err == nil {
				return netip.AddrPortFrom(ip.Unmap(), 5060), "the ISIM's EF.P-CSCF", nil
			}
			ap, err := lookup(a)
			if err == nil {
				return ap, "the ISIM's EF.P-CSCF (" + a + ", RFC 3263)", nil
			}
			errs = append(errs, fmt.Errorf("EF.P-CSCF %s: %w", a, err))
		}
	}
	domain := id.Domain
	if domain == "" {
		_, domain, _ = strings.Cut(id.IMPI, "@")
	}
	if domain == "" {
		errs = append(errs, errors.New("no home domain to look up"))
		return netip.AddrPort{}, "", errors.Join(errs...)
	}
	ap, err := lookup(domain)
	if err != nil {
		errs = append(errs, fmt.Errorf("DNS of %s: %w", domain, err))
		return netip.AddrPort{}, "", errors.Join(errs...)
	}
	return ap, "the DNS of " + domain + " (RFC 3263)", nil
}
