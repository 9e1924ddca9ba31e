// Package locate finds a home network's SIP servers (its P-CSCFs) in the
// DNS as RFC 3263 §4 describes: NAPTR records of the domain select a
// transport and an SRV name, SRV records (RFC 2782) give hosts and ports,
// and A/AAAA records their addresses. Without NAPTR records the SRV names
// _sip._udp and _sip._tcp are tried; without SRV records, the domain's own
// addresses on port 5060.
package locate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Target is one place to send the initial REGISTER.
type Target struct {
	Transport string         // "udp" or "tcp"
	Host      string         // the SRV target (or the domain), for logs
	Addr      netip.AddrPort // where to send
}

func (t Target) String() string {
	return fmt.Sprintf("%s %s (%s)", strings.ToUpper(t.Transport), t.Addr, t.Host)
}

// ErrNotFound: the DNS names no server for the domain.
var ErrNotFound = errors.New("no SIP server found in the DNS")

// Resolver asks one DNS server (host:port). The zero Server means the
// first nameserver of /etc/resolv.conf.
type Resolver struct {
	Server string
	client dns.Client
}

// services maps the RFC 3263 §4.1 NAPTR services imsue can use to its
// transports (TLS is not one of them).
var services = map[string]string{"SIP+D2U": "udp", "SIP+D2T": "tcp"}

// SIP returns the SIP servers of domain in the order RFC 3263 says to try
// them. transport, when not empty ("udp" or "tcp"), keeps only those.
func (r *Resolver) SIP(ctx context.Context, domain, transport string) ([]Target, error) {
	domain = dns.Fqdn(domain)
	type srvName struct{ name, transport string }
	var names []srvName

	naptrs, err := r.query(ctx, domain, dns.TypeNAPTR)
	if err != nil {
		return nil, err
	}
	var ns []*dns.NAPTR
	for _, rr := range naptrs {
		if n, ok := rr.(*dns.NAPTR); ok && strings.EqualFold(n.Flags, "s") {
			if t, ok := services[strings.ToUpper(n.Service)]; ok && (transport == "" || t == transport) {
				ns = append(ns, n)
			}
		}
	}
	slices.SortStableFunc(ns, func(a, b *dns.NAPTR) int {
		if a.Order != b.Order {
			return int(a.Order) - int(b.Order)
		}
		return int(a.Preference) - int(b.Preference)
	})
	for _, n := range ns {
		names = append(names, srvName{n.Replacement, services[strings.ToUpper(n.Service)]})
	}
	if len(naptrs) == 0 { // §4.1: no NAPTR, so SRV per transport
		for _, t := range []string{"udp", "tcp"} {
			if transport == "" || t == transport {
				names = append(names, srvName{"_sip._" + t + "." + domain, t})
			}
		}
	}

	var out []Target
	for _, sn := range names {
		rrs, err := r.query(ctx, sn.name, dns.TypeSRV)
		if err != nil {
			return nil, err
		}
		var srvs []*dns.SRV
		for _, rr := range rrs {
			if s, ok := rr.(*dns.SRV); ok && s.Target != "." {
				srvs = append(srvs, s)
			}
		}
		// RFC 2782: lowest priority first; within one, higher weight first
		// (a deterministic stand-in for the weighted random choice, so that
		// a test run and a capture are reproducible).
		slices.SortStableFunc(srvs, func(a, b *dns.SRV) int {
			if a.Priority != b.Priority {
				return int(a.Priority) - int(b.Priority)
			}
			return int(b.Weight) - int(a.Weight)
		})
		for _, s := range srvs {
			addrs, err := r.addrs(ctx, s.Target)
			if err != nil {
				return nil, err
			}
			for _, a := range addrs {
				out = append(out, Target{Transport: sn.transport, Host: strings.TrimSuffix(s.Target, "."), Addr: netip.AddrPortFrom(a, s.Port)})
			}
		}
	}
	if len(out) == 0 && len(naptrs) == 0 { // §4.2: the domain itself, port 5060
		addrs, err := r.addrs(ctx, domain)
		if err != nil {
			return nil, err
		}
		t := transport
		if t == "" {
			t = "udp"
		}
		for _, a := range addrs {
			out = append(out, Target{Transport: t, Host: strings.TrimSuffix(domain, "."), Addr: netip.AddrPortFrom(a, 5060)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", strings.TrimSuffix(domain, "."), ErrNotFound)
	}
	return out, nil
}

// addrs returns the IPv4 then IPv6 addresses of host.
func (r *Resolver) addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.query(ctx, dns.Fqdn(host), t)
		if err != nil {
			return nil, err
		}
		for _, rr := range rrs {
			var ip net.IP
			switch v := rr.(type) {
			case *dns.A:
				ip = v.A
			case *dns.AAAA:
				ip = v.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out, nil
}

// query returns the answer records of one type; a name that does not exist
// or has no such records is an empty answer, not an error.
func (r *Resolver) query(ctx context.Context, name string, t uint16) ([]dns.RR, error) {
	server := r.Server
	if server == "" {
		cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cfg.Servers) == 0 {
			return nil, fmt.Errorf("DNS: no nameserver configured (/etc/resolv.conf): %v", err)
		}
		server = net.JoinHostPort(cfg.Servers[0], cfg.Port)
	}
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.RecursionDesired = true
	in, _, err := r.client.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, fmt.Errorf("DNS %s %s at %s: %w", dns.TypeToString[t], name, server, err)
	}
	switch in.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return nil, fmt.Errorf("DNS %s %s at %s: %s", dns.TypeToString[t], name, server, dns.RcodeToString[in.Rcode])
	}
	var out []dns.RR
	for _, rr := range in.Answer {
		if rr.Header().Rrtype == t {
			out = append(out, rr)
		}
	}
	return out, nil
}
