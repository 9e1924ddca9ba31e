package mt

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/imsue/imsue/ipsec"
)

// ReplayWindow is the ESP anti-replay window of every planned SA, in
// packets: the value Kamailio and OpenSIPS use on Linux.
const ReplayWindow = 32

// MaxLifetime is the longest SA lifetime (2^32−1 s, the IPsec bound of
// TS 33.203 §7.1); longer lifetimes are capped to it.
const MaxLifetime = (1<<32 - 1) * time.Second

// minSPI is the lowest SPI usable on the wire: 0 is reserved for local use
// and 1..255 by IANA (RFC 4303 §2.1).
const minSPI = 256

// setIDs numbers SA sets; IDs are unique per process and never 0.
var setIDs atomic.Uint64

// PlanUE builds the UE's four SAs (TS 33.203 §7.1 table, in that order)
// from the UE's and the P-CSCF's Params, the chosen mechanism and CK/IK:
//
//	#1 out UE:port_uc → P-CSCF:port_ps  SPI spi_ps
//	#2 in  P-CSCF:port_ps → UE:port_uc  SPI spi_uc
//	#3 in  P-CSCF:port_pc → UE:port_us  SPI spi_us
//	#4 out UE:port_us → P-CSCF:port_pc  SPI spi_pc
//
// Every SA gets its own copy of the keys, the replay window ReplayWindow and
// lifetime (negative is an error, above MaxLifetime is capped, 0 passes
// through: the kernel backend reads it as "no lifetime"). The lifetime is
// the kernel's hard expiry; Lifecycle decides when the set really goes. Both
// endpoints must be of one family (IPv4-mapped IPv6 counts as IPv4).
// Errors caused by the P-CSCF's values (reserved SPI, missing port, an SPI
// equal to the UE's at the same address) wrap ErrBadSecurityHeader; a
// mechanism that is not ipsec-3gpp/esp/trans wraps ErrNoAcceptableMechanism;
// an alg or ealg without Annex I keys wraps ErrUnsupportedAlgorithm.
func PlanUE(ep Endpoints, ue, pcscf Params, m Mechanism, ck, ik [16]byte, lifetime time.Duration) (*ipsec.SASet, error) {
	set, err := plan(ep, ue, pcscf, m, ck, ik, lifetime, false)
	if err != nil {
		return nil, fmt.Errorf("mt: plan UE SAs: %w", err)
	}
	return set, nil
}

// PlanPCSCF builds the P-CSCF's mirror of the same four SAs (directions
// reversed), for the lab core: the flows, SPIs and order are those of
// PlanUE, with #1 and #4 inbound and #2 and #3 outbound. Errors caused by
// the UE's values wrap ErrBadSecurityHeader.
func PlanPCSCF(ep Endpoints, ue, pcscf Params, m Mechanism, ck, ik [16]byte, lifetime time.Duration) (*ipsec.SASet, error) {
	set, err := plan(ep, ue, pcscf, m, ck, ik, lifetime, true)
	if err != nil {
		return nil, fmt.Errorf("mt: plan P-CSCF SAs: %w", err)
	}
	return set, nil
}

// CheckAgreement makes every check of PlanUE (atPCSCF false) or PlanPCSCF
// that does not need the keys: the addresses, the mechanism, both sides'
// SPIs and ports, and SPIs that would clash at one address. The UE calls it
// on the Security-Server of a 401 before it runs AKA, so that a P-CSCF's
// unusable values never cost an SQN; errors wrap what PlanUE's would.
func CheckAgreement(ep Endpoints, ue, pcscf Params, m Mechanism, atPCSCF bool) error {
	local, remote := "UE", "P-CSCF"
	if atPCSCF {
		local, remote = remote, local
	}
	ueAddr, pAddr, err := checkEndpoints(ep)
	if err != nil {
		return err
	}
	if r := unacceptable([]Mechanism{m}, &m); r != "" {
		return fmt.Errorf("%w: %s", ErrNoAcceptableMechanism, r)
	}
	for _, side := range [...]struct {
		name string
		p    Params
	}{{"UE", ue}, {"P-CSCF", pcscf}} {
		if err := checkParams(side.p, side.name); err != nil {
			if side.name == remote {
				return fmt.Errorf("%w: %w", ErrBadSecurityHeader, err)
			}
			return err
		}
	}
	if ueAddr == pAddr { // one host: all four inbound SPIs share a destination
		for _, a := range [...]uint32{ue.SPIc, ue.SPIs} {
			if a == pcscf.SPIc || a == pcscf.SPIs {
				return fmt.Errorf("%w: the %s and the %s use SPI %d at the same address %s",
					ErrBadSecurityHeader, remote, local, a, ueAddr)
			}
		}
	}
	return nil
}

func plan(ep Endpoints, ue, pcscf Params, m Mechanism, ck, ik [16]byte, lifetime time.Duration, atPCSCF bool) (*ipsec.SASet, error) {
	if err := CheckAgreement(ep, ue, pcscf, m, atPCSCF); err != nil {
		return nil, err
	}
	ueAddr, pAddr, _ := checkEndpoints(ep)
	if lifetime < 0 {
		return nil, fmt.Errorf("negative lifetime %v", lifetime)
	}
	lifetime = min(lifetime, MaxLifetime)
	authKey, encKey, err := ExpandKeys(m.Alg, orEnc(m.EAlg), ck, ik)
	if err != nil {
		return nil, err
	}
	defer clear(authKey)
	defer clear(encKey)

	ueC := netip.AddrPortFrom(ueAddr, ue.PortC)
	ueS := netip.AddrPortFrom(ueAddr, ue.PortS)
	pC := netip.AddrPortFrom(pAddr, pcscf.PortC)
	pS := netip.AddrPortFrom(pAddr, pcscf.PortS)
	flows := [4]struct {
		src, dst netip.AddrPort
		spi      uint32
		dir      ipsec.Direction // at the UE
	}{
		{ueC, pS, pcscf.SPIs, ipsec.Out},
		{pS, ueC, ue.SPIc, ipsec.In},
		{pC, ueS, ue.SPIs, ipsec.In},
		{ueS, pC, pcscf.SPIc, ipsec.Out},
	}
	set := &ipsec.SASet{ID: setIDs.Add(1)}
	for i, f := range flows {
		dir := f.dir
		if atPCSCF {
			dir = ipsec.Out + ipsec.In - dir
		}
		set.SAs[i] = ipsec.SA{
			Src: f.src, Dst: f.dst, SPI: f.spi, Dir: dir,
			Auth: m.Alg, AuthKey: clone(authKey),
			Enc: orEnc(m.EAlg), EncKey: clone(encKey),
			Replay: ReplayWindow, Lifetime: lifetime,
		}
	}
	return set, nil
}

// clone copies b; nil stays nil.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// checkEndpoints validates ep and returns the addresses unmapped.
func checkEndpoints(ep Endpoints) (ue, pcscf netip.Addr, err error) {
	ue, pcscf = ep.UE.Unmap(), ep.PCSCF.Unmap()
	switch {
	case !ue.IsValid() || ue.IsUnspecified():
		return ue, pcscf, fmt.Errorf("UE address %v is not a usable address", ep.UE)
	case !pcscf.IsValid() || pcscf.IsUnspecified():
		return ue, pcscf, fmt.Errorf("P-CSCF address %v is not a usable address", ep.PCSCF)
	case ue.Is4() != pcscf.Is4():
		return ue, pcscf, fmt.Errorf("UE address %v and P-CSCF address %v are of different families", ue, pcscf)
	}
	return ue, pcscf, nil
}

// checkParams validates one side's SPIs and ports. side is "UE" or
// "P-CSCF" and names the fields in errors (spi_uc, port_ps, ...).
func checkParams(p Params, side string) error {
	x := "u"
	if side != "UE" {
		x = "p"
	}
	for _, s := range [...]struct {
		name string
		v    uint32
	}{{"spi_" + x + "c", p.SPIc}, {"spi_" + x + "s", p.SPIs}} {
		if s.v < minSPI {
			return fmt.Errorf("%s %s %d is absent or reserved (0..255, RFC 4303 §2.1)", side, s.name, s.v)
		}
	}
	if p.SPIc == p.SPIs {
		return fmt.Errorf("%s spi_%sc and spi_%ss are both %d", side, x, x, p.SPIc)
	}
	if p.PortC == 0 {
		return fmt.Errorf("%s port_%sc is absent", side, x)
	}
	if p.PortS == 0 {
		return fmt.Errorf("%s port_%ss is absent", side, x)
	}
	if p.PortC == p.PortS {
		return fmt.Errorf("%s port_%sc and port_%ss are both %d", side, x, x, p.PortC)
	}
	return nil
}

// SetParams recovers from a set planned by PlanUE or PlanPCSCF the Params
// of the side that installs it (local) and of its peer (remote): every SPI
// belongs to the inbound SA of the side that chose it. ok is false for a
// set of another shape.
func SetParams(set *ipsec.SASet) (local, remote Params, ok bool) {
	if set == nil {
		return Params{}, Params{}, false
	}
	s := &set.SAs
	// The four flows, seen from the UE: 1 uc→ps, 2 ps→uc, 3 pc→us, 4 us→pc.
	ue := Params{SPIc: s[1].SPI, SPIs: s[2].SPI, PortC: s[0].Src.Port(), PortS: s[2].Dst.Port()}
	pc := Params{SPIc: s[3].SPI, SPIs: s[0].SPI, PortC: s[2].Src.Port(), PortS: s[0].Dst.Port()}
	want := [4]ipsec.Direction{ipsec.Out, ipsec.In, ipsec.In, ipsec.Out}
	atPCSCF := s[0].Dir == ipsec.In
	for i := range s {
		d := want[i]
		if atPCSCF {
			d = ipsec.Out + ipsec.In - d
		}
		if s[i].Dir != d {
			return Params{}, Params{}, false
		}
	}
	if s[1].Src != s[0].Dst || s[1].Dst != s[0].Src || s[3].Src != s[2].Dst || s[3].Dst != s[2].Src {
		return Params{}, Params{}, false
	}
	if atPCSCF {
		return pc, ue, true
	}
	return ue, pc, true
}
