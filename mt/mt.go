// Package mt is the mobile-termination side of TS 33.203 security agreement:
// it parses and formats the RFC 3329 Security-* headers, picks the mechanism,
// expands CK and IK into ESP keys (Annex I), allocates SPIs and protected
// ports, and plans and tracks the SA sets of a registration. It is pure logic:
// no sockets, no kernel, no card. The lab P-CSCF (package imscore) uses the
// same code for the network side.
package mt

import (
	"errors"
	"net/netip"
	"time"

	"github.com/imsue/imsue/ipsec"
)

// Mechanism is one sec-mechanism of a Security-Client, -Server or -Verify
// header (RFC 3329 §2.2 with the TS 33.203 Annex H parameters).
type Mechanism struct {
	Name  string     // mechanism-name, e.g. "ipsec-3gpp"; compared case-insensitively
	Alg   ipsec.Auth // "alg" (mandatory for ipsec-3gpp)
	EAlg  ipsec.Enc  // "ealg"; absent means null
	Prot  string     // "prot"; absent means "esp"
	Mode  ipsec.Mode // "mod"; absent means "trans"
	SPIc  uint32     // "spi-c"
	SPIs  uint32     // "spi-s"
	PortC uint16     // "port-c"
	PortS uint16     // "port-s"
	// Q is the "q" preference in thousandths (0..1000); HasQ is false when absent.
	Q    int
	HasQ bool
	// Text is the mechanism exactly as received (for Security-Verify) or as
	// formatted; Other keeps unknown parameters in order, "name" or "name=value".
	Text  string
	Other []string
}

// Errors of security agreement; all mean exit code 7 at the CLI.
var (
	// ErrNoAcceptableMechanism: the Security-Server holds nothing the UE offered.
	ErrNoAcceptableMechanism = errors.New("sec-agree: Security-Server offers no mechanism the UE proposed")
	// ErrBadSecurityHeader wraps every parse error of a Security-* header.
	ErrBadSecurityHeader = errors.New("sec-agree: malformed Security header")
	// ErrUnsupportedAlgorithm: an alg or ealg the MT cannot expand keys for.
	ErrUnsupportedAlgorithm = errors.New("sec-agree: unsupported algorithm")
)

// Protected ports and SPIs of one side, as announced in its Security-* entry.
type Params struct {
	SPIc, SPIs   uint32
	PortC, PortS uint16
}

// SA lifetimes (TS 33.203 §7.1, TS 24.229 §5.1.1.5.1).
const (
	// TemporaryLifetime bounds the SAs created from a 401 until the 200
	// arrives: the P-CSCF's reg-await-auth timer (4 min by default).
	TemporaryLifetime = 4 * time.Minute
	// ExpiresMargin is added to the registration's expiry for established SAs.
	ExpiresMargin = 30 * time.Second
)

// Endpoints are the two addresses of the SAs: the UE's and the P-CSCF's.
type Endpoints struct {
	UE, PCSCF netip.Addr
}
