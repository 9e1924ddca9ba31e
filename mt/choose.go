package mt

import (
	"fmt"
	"strings"

	"github.com/imsue/imsue/ipsec"
)

// Offer builds the UE's Security-Client list: one ipsec-3gpp entry per
// (alg, ealg) pair in preference order (algs outer, ealgs inner), each with
// an explicit ealg and the UE's SPIs and ports. Names are matched
// case-insensitively and a repeated name is offered once. Unknown names, or
// names ExpandKeys cannot serve, → ErrUnsupportedAlgorithm.
//
// The explicit ealg matters: Kamailio matches parameter names by prefix and
// echoes alg/ealg back, so an entry without ealg can come back wrong.
// Kamailio 5.6 also echoes the last pair of a multi-entry offer rather than
// choosing; Choose accepts that because the pair was offered.
func Offer(algs []ipsec.Auth, ealgs []ipsec.Enc, p Params) ([]Mechanism, error) {
	if len(algs) == 0 || len(ealgs) == 0 {
		return nil, fmt.Errorf("mt: offer: at least one alg and one ealg are needed (got %d and %d)", len(algs), len(ealgs))
	}
	if err := checkParams(p, "UE"); err != nil {
		return nil, fmt.Errorf("mt: offer: %w", err)
	}
	as := make([]ipsec.Auth, 0, len(algs))
	for _, a := range algs {
		a = normAuth(string(a))
		if !supportedAuth(a) {
			return nil, fmt.Errorf("mt: offer: alg %q: %w", a, ErrUnsupportedAlgorithm)
		}
		if !containsAuth(as, a) {
			as = append(as, a)
		}
	}
	es := make([]ipsec.Enc, 0, len(ealgs))
	for _, e := range ealgs {
		e = normEnc(string(e))
		if !supportedEnc(e) {
			return nil, fmt.Errorf("mt: offer: ealg %q: %w", e, ErrUnsupportedAlgorithm)
		}
		if !containsEnc(es, e) {
			es = append(es, e)
		}
	}
	ms := make([]Mechanism, 0, len(as)*len(es))
	for _, a := range as {
		for _, e := range es {
			m := Mechanism{
				Name: MechanismIPsec3GPP,
				Alg:  a, EAlg: e, Prot: ProtESP, Mode: ipsec.ModeTransport,
				SPIc: p.SPIc, SPIs: p.SPIs, PortC: p.PortC, PortS: p.PortS,
			}
			m.Text = m.String()
			ms = append(ms, m)
		}
	}
	return ms, nil
}

func containsAuth(as []ipsec.Auth, a ipsec.Auth) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func containsEnc(es []ipsec.Enc, e ipsec.Enc) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// Choose picks from the Security-Server list the ipsec-3gpp mechanism with
// the highest q (absent q ranks below any explicit q; ties keep server order)
// whose alg/ealg pair the UE offered. None → ErrNoAcceptableMechanism.
//
// Only prot=esp with mod=trans is acceptable: tunnel and UDP-encapsulated
// modes are negotiable later but not implemented, so such entries are
// skipped, never chosen. There is no fallback: a Security-Server that lists
// only pairs the UE did not offer is a possible downgrade and an error
// (RFC 3329 §2.3.1), whatever else it contains.
func Choose(offered, server []Mechanism) (Mechanism, error) {
	best := -1
	var why []string
	for i := range server {
		s := &server[i]
		if r := unacceptable(offered, s); r != "" {
			if len(why) < 4 {
				why = append(why, r)
			}
			continue
		}
		if best < 0 || outranks(s, &server[best]) {
			best = i
		}
	}
	if best < 0 {
		if len(server) == 0 {
			return Mechanism{}, fmt.Errorf("%w: empty list", ErrNoAcceptableMechanism)
		}
		if len(server) > len(why) {
			why = append(why, "...")
		}
		return Mechanism{}, fmt.Errorf("%w: %s", ErrNoAcceptableMechanism, strings.Join(why, "; "))
	}
	return server[best], nil
}

// outranks reports whether a is strictly preferred to b.
func outranks(a, b *Mechanism) bool {
	if a.HasQ != b.HasQ {
		return a.HasQ
	}
	return a.HasQ && a.Q > b.Q
}

// unacceptable says why the server entry s cannot be chosen, or "".
func unacceptable(offered []Mechanism, s *Mechanism) string {
	if !strings.EqualFold(s.Name, MechanismIPsec3GPP) {
		return fmt.Sprintf("%.32q: mechanism not supported", s.Name)
	}
	pair := string(s.Alg) + "/" + string(orEnc(s.EAlg))
	if p := orProt(s.Prot); !strings.EqualFold(p, ProtESP) {
		return fmt.Sprintf("%.40s prot=%.16s: only esp is supported", pair, p)
	}
	if md := orMode(s.Mode); !strings.EqualFold(string(md), string(ipsec.ModeTransport)) {
		return fmt.Sprintf("%.40s mod=%.16s: only trans is supported", pair, md)
	}
	for i := range offered {
		o := &offered[i]
		if strings.EqualFold(o.Name, MechanismIPsec3GPP) &&
			strings.EqualFold(string(o.Alg), string(s.Alg)) &&
			strings.EqualFold(string(orEnc(o.EAlg)), string(orEnc(s.EAlg))) {
			return ""
		}
	}
	return fmt.Sprintf("%.40s: not offered", pair)
}
