package imscore

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
)

// RFC 3329 sec-agree with the TS 33.203 parameters: the P-CSCF's checks of
// Security-Client and Security-Verify and its choice of mechanisms.

// checkSecurityClient validates the Security-Client of a REGISTER that may
// be challenged. cur is the established set the REGISTER came over, if any.
// It returns the offered mechanisms, or the response to send instead.
func (p *pcscf) checkSecurityClient(req *sip.Request, cur *secSet) ([]mt.Mechanism, *sip.Response) {
	c := p.c
	offer, err := parseSecurityHeaders(req, "Security-Client")
	if err != nil {
		c.stats.secAgree.Add(1)
		resp := newResponse(req, sip.StatusBadRequest, "Malformed Security-Client")
		resp.AppendHeader(sip.NewHeader("Warning", `399 imscore "`+sanitize(err.Error())+`"`))
		return nil, resp
	}
	if len(offer) == 0 {
		c.stats.secAgree.Add(1)
		if !hasOptionTag(req, "sec-agree") {
			resp := newResponse(req, sip.StatusExtensionRequired, "Extension Required")
			resp.AppendHeader(sip.NewHeader("Require", "sec-agree"))
			return nil, resp
		}
		resp := newResponse(req, 494, "Security Agreement Required")
		resp.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(p.supportedMechanisms())))
		return nil, resp
	}
	if _, _, err := p.serverMechanisms(offer); err != nil {
		c.stats.secAgree.Add(1)
		resp := newResponse(req, 494, "Security Agreement Required")
		resp.AppendHeader(sip.NewHeader("Security-Server", formatSecurity(p.supportedMechanisms())))
		resp.AppendHeader(sip.NewHeader("Warning", `399 imscore "`+sanitize(err.Error())+`"`))
		return nil, resp
	}
	ue := ueParams(offer)
	bad := func(detail string) ([]mt.Mechanism, *sip.Response) {
		c.stats.secAgree.Add(1)
		resp := newResponse(req, sip.StatusBadRequest, "Bad Security-Client")
		resp.AppendHeader(sip.NewHeader("Warning", `399 imscore "`+detail+`"`))
		return nil, resp
	}
	if ue.PortC == 0 || ue.PortS == 0 || ue.SPIc == 0 || ue.SPIs == 0 {
		return bad("Security-Client lacks spi-c, spi-s, port-c or port-s")
	}
	if ue.SPIc == ue.SPIs || ue.PortC == ue.PortS {
		return bad("Security-Client uses the same SPI or port for client and server")
	}
	if cur != nil {
		switch {
		case ue.PortC == cur.client.PortC:
			return bad("re-registration keeps port-c: TS 33.203 7.4 requires a new port_uc")
		case ue.PortS != cur.client.PortS:
			return bad("re-registration changes port-s: TS 33.203 7.4 keeps port_us")
		case ue.SPIc == cur.client.SPIc || ue.SPIs == cur.client.SPIs || ue.SPIc == cur.client.SPIs || ue.SPIs == cur.client.SPIc:
			return bad("re-registration reuses an SPI of the current security association")
		}
	}
	return offer, nil
}

// ueParams takes the UE's SPIs and ports from its first ipsec-3gpp entry
// (every entry of one Security-Client carries the same ones).
func ueParams(offer []mt.Mechanism) mt.Params {
	for _, m := range offer {
		if strings.EqualFold(m.Name, mt.MechanismIPsec3GPP) {
			return m.Params()
		}
	}
	return mt.Params{}
}

// supportedMechanisms is the P-CSCF's list for a 494: the configured
// entries, or every supported pair, without SPIs and ports.
func (p *pcscf) supportedMechanisms() []mt.Mechanism {
	c := p.c
	if len(c.cfg.Mechanisms) > 0 {
		out := make([]mt.Mechanism, len(c.cfg.Mechanisms))
		for i, m := range c.cfg.Mechanisms {
			out[i] = mt.Mechanism{Name: mt.MechanismIPsec3GPP, Alg: m.Alg, EAlg: mt.NormEnc(m.EAlg), Prot: mt.ProtESP, Mode: ipsec.ModeTransport, Q: m.Q, HasQ: m.HasQ}
		}
		return out
	}
	var out []mt.Mechanism
	for _, a := range supportedAuth {
		for _, e := range supportedEnc {
			out = append(out, mt.Mechanism{Name: mt.MechanismIPsec3GPP, Alg: a, EAlg: e, Prot: mt.ProtESP, Mode: ipsec.ModeTransport})
		}
	}
	return out
}

// serverMechanisms builds the Security-Server list (without the P-CSCF's
// SPIs and ports yet) and the index of the entry the UE will choose.
func (p *pcscf) serverMechanisms(offer []mt.Mechanism) ([]mt.Mechanism, int, error) {
	c := p.c
	if len(c.cfg.Mechanisms) == 0 {
		// Kamailio style: the first offered pair the core supports, alone.
		for _, m := range offer {
			if acceptable(m) && mt.Supported(m.Alg, m.EAlg) {
				return []mt.Mechanism{{Name: mt.MechanismIPsec3GPP, Alg: mt.NormAuth(m.Alg), EAlg: mt.NormEnc(m.EAlg), Prot: mt.ProtESP, Mode: ipsec.ModeTransport}}, 0, nil
			}
		}
		return nil, 0, fmt.Errorf("none of the offered ipsec-3gpp alg/ealg pairs (transport mode, esp) is supported: %w", mt.ErrNoAcceptableMechanism)
	}
	list := p.supportedMechanisms()
	chosen, err := mt.Choose(offer, list)
	if err != nil {
		return nil, 0, err
	}
	for i, m := range list {
		if strings.EqualFold(string(m.Alg), string(chosen.Alg)) && strings.EqualFold(string(m.EAlg), string(mt.NormEnc(chosen.EAlg))) {
			return list, i, nil
		}
	}
	return nil, 0, fmt.Errorf("mt.Choose returned alg %q ealg %q, which the P-CSCF did not list: %w", chosen.Alg, chosen.EAlg, mt.ErrNoAcceptableMechanism)
}

// acceptable reports whether an offered entry is an ipsec-3gpp ESP
// transport-mode mechanism (other modes are not negotiated).
func acceptable(m mt.Mechanism) bool {
	return strings.EqualFold(m.Name, mt.MechanismIPsec3GPP) &&
		(m.Prot == "" || strings.EqualFold(m.Prot, mt.ProtESP)) &&
		(m.Mode == "" || strings.EqualFold(string(m.Mode), string(ipsec.ModeTransport)))
}

// parseSecurityHeaders parses every header named name (RFC 3329 allows
// several, each a comma list).
func parseSecurityHeaders(msg sip.Message, name string) ([]mt.Mechanism, error) {
	vals := headerValues(msg, name)
	if len(vals) == 0 {
		return nil, nil
	}
	ms, err := mt.ParseSecurity(vals...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ms, nil
}

func formatSecurity(ms []mt.Mechanism) string { return mt.FormatSecurity(ms) }

// sameMechanisms compares two Security-* lists mechanism by mechanism,
// parameter by parameter (mt.Mechanism.Equal), so that spacing and
// parameter order do not matter.
func sameMechanisms(a, b []mt.Mechanism) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
