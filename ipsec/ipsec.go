// Package ipsec models the ESP security associations that TS 33.203 sets up
// between the UE and the P-CSCF, and the Backend that installs them.
//
// The MT layer (package mt) plans an SASet; a Backend makes it real. The
// kernel backend (package ipsec/kernel) installs XFRM states and policies
// over netlink; None installs nothing and lets protected-port traffic flow in
// clear, for tests and for cores without IPsec; Recorder (recorder.go) is the
// test double that remembers what it was asked to do.
package ipsec

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Auth is an ESP integrity algorithm, named as in Security-Client "alg".
type Auth string

const (
	AuthHMACMD596  Auth = "hmac-md5-96"
	AuthHMACSHA196 Auth = "hmac-sha-1-96"
)

// Enc is an ESP encryption algorithm, named as in Security-Client "ealg".
type Enc string

const (
	EncNull       Enc = "null"
	EncAESCBC     Enc = "aes-cbc"
	EncDES3EDECBC Enc = "des-ede3-cbc"
)

// Mode is the ESP mode ("mod"). Only transport mode is implemented.
type Mode string

const ModeTransport Mode = "trans"

// Direction says which way an SA carries traffic, seen from the side that
// installs it.
type Direction uint8

const (
	Out Direction = iota + 1
	In
)

func (d Direction) String() string {
	switch d {
	case Out:
		return "out"
	case In:
		return "in"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// SA is one unidirectional transport-mode ESP security association with the
// selector that steers traffic into it: Src → Dst, both UDP and TCP.
type SA struct {
	Src, Dst netip.AddrPort
	SPI      uint32 // chosen by the receiving side (TS 33.203 §7.1)
	Dir      Direction
	Auth     Auth
	AuthKey  []byte // expanded per TS 33.203 Annex I
	Enc      Enc
	EncKey   []byte // nil for null
	Replay   uint8  // replay window in packets; 0 disables replay protection
	Lifetime time.Duration
}

// String names the SA without its keys.
func (sa *SA) String() string {
	return fmt.Sprintf("%s %s→%s spi=%d(0x%08x) %s/%s", sa.Dir, sa.Src, sa.Dst, sa.SPI, sa.SPI, sa.Auth, sa.Enc)
}

// SASet is the four SAs of one security agreement (TS 33.203 §7.1), in the
// order of that table: UE port_uc→P-CSCF port_ps, port_ps→port_uc,
// port_pc→port_us, port_us→port_pc. Local tells which side installs it.
type SASet struct {
	ID  uint64 // unique per process; used to tag the kernel objects
	SAs [4]SA
}

// Backend installs and removes SA sets.
//
// Install installs all four SAs of set and their policies as one unit: on
// error nothing of set is left installed. Each SA expires SA.Lifetime after
// Install (0: never). Extend moves the expiry of an installed set to until,
// so that a temporary set installed with the reg-await-auth bound
// (mt.TemporaryLifetime) lives, once established, as long as the
// registration the 200 OK granted (TS 33.203 §7.4); on error the set keeps
// its previous expiry. Remove removes every object of set that Install
// created, and is idempotent: removing a set that is already gone is not an
// error. Close removes everything the Backend still holds. Errors that mean
// the host cannot do ESP at all wrap ErrUnsupported.
type Backend interface {
	Name() string
	Install(ctx context.Context, set *SASet) error
	Extend(ctx context.Context, set *SASet, until time.Time) error
	Remove(ctx context.Context, set *SASet) error
	Close() error
}

// ErrUnsupported is wrapped by a Backend's errors when the host lacks what
// ESP needs: a kernel without ESP or the cipher, or no CAP_NET_ADMIN.
var ErrUnsupported = fmt.Errorf("kernel IPsec unavailable (use --ipsec none to register without ESP)")
