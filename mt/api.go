package mt

// This file pins the exported API of package mt that sipclient and imscore
// code against. Bodies marked TODO(mt) are filled in by the mt work.

import (
	"errors"
	"time"

	"github.com/imsue/imsue/ipsec"
)

var errTODO = errors.New("mt: not implemented yet")

// ParseSecurity parses the values of one or more Security-Client, -Server or
// -Verify headers (each may be a comma-separated list) into mechanisms, in
// order. Every error wraps ErrBadSecurityHeader and names the problem.
func ParseSecurity(values ...string) ([]Mechanism, error) { return nil, errTODO } // TODO(mt)

// String formats m canonically:
// ipsec-3gpp;alg=..;ealg=..;prot=esp;mod=trans;spi-c=..;spi-s=..;port-c=..;port-s=..[;q=..]
func (m Mechanism) String() string { return "" } // TODO(mt)

// FormatSecurity joins mechanisms into one header value (", " separated).
func FormatSecurity(ms []Mechanism) string { return "" } // TODO(mt)

// Offer builds the UE's Security-Client list: one ipsec-3gpp entry per
// (alg, ealg) pair in preference order (algs outer, ealgs inner), each with
// an explicit ealg and the UE's SPIs and ports. Unknown names →
// ErrUnsupportedAlgorithm.
func Offer(algs []ipsec.Auth, ealgs []ipsec.Enc, p Params) ([]Mechanism, error) {
	return nil, errTODO
} // TODO(mt)

// Choose picks from the Security-Server list the ipsec-3gpp mechanism with
// the highest q (absent q ranks below any explicit q; ties keep server order)
// whose alg/ealg pair the UE offered. None → ErrNoAcceptableMechanism.
func Choose(offered, server []Mechanism) (Mechanism, error) { return Mechanism{}, errTODO } // TODO(mt)

// ExpandKeys derives the ESP integrity and encryption keys from CK and IK
// per TS 33.203 Annex I. encKey is nil for null.
func ExpandKeys(alg ipsec.Auth, ealg ipsec.Enc, ck, ik [16]byte) (authKey, encKey []byte, err error) {
	return nil, nil, errTODO
} // TODO(mt)

// PlanUE builds the UE's four SAs (TS 33.203 §7.1 table, in that order)
// from the UE's and the P-CSCF's Params, the chosen mechanism and CK/IK.
func PlanUE(ep Endpoints, ue, pcscf Params, m Mechanism, ck, ik [16]byte, lifetime time.Duration) (*ipsec.SASet, error) {
	return nil, errTODO
} // TODO(mt)

// PlanPCSCF builds the P-CSCF's mirror of the same four SAs (directions
// reversed), for the lab core.
func PlanPCSCF(ep Endpoints, ue, pcscf Params, m Mechanism, ck, ik [16]byte, lifetime time.Duration) (*ipsec.SASet, error) {
	return nil, errTODO
} // TODO(mt)
