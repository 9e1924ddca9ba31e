// Package isim models the IMS Subscriber Identity Module as the UE sees it:
// an identity (IMPI, IMPUs, home domain) and the AKA challenge-response of
// TS 33.102 §6.3. Authenticator is the boundary: the software ISIM in this
// package, a real UICC over PC/SC (package cards), and the scripted double in
// isimtest all implement it.
//
// Key expansion for ESP is not done here: TS 33.203 places it in the MT, so an
// Authenticator returns CK and IK exactly as the card would.
package isim

import (
	"context"
	"encoding/hex"
	"errors"
)

// RAND and AUTN are the two halves of an AKA challenge (TS 33.102 §6.3.2).
type (
	RAND [16]byte
	AUTN [16]byte
	// AUTS is the resynchronisation token: (SQN_MS ⊕ AK*) ‖ MAC-S.
	AUTS [14]byte
)

// Identity is what the ISIM holds about its subscriber (TS 31.103 EF.IMPI,
// EF.IMPU, EF.DOMAIN), or what is derived from the IMSI (TS 23.003 §13) when
// there is no ISIM. IMSI is empty when the card has only an ISIM.
type Identity struct {
	IMPI   string   `json:"impi"`
	IMPUs  []string `json:"impu"`
	Domain string   `json:"domain"`
	IMSI   string   `json:"imsi,omitempty"`
}

// Result is a successful authentication: the UE accepted the network.
// RES is 4 to 16 bytes (8 with MILENAGE); CK and IK are 128 bits.
type Result struct {
	RES []byte
	CK  [16]byte
	IK  [16]byte
}

// ErrMACFailure reports that MAC-A in AUTN did not verify: the network is not
// authenticated (card status 9862). The UE answers with an empty response.
var ErrMACFailure = errors.New("AUTN MAC failure: the network is not authenticated")

// SyncFailure reports that the challenge's SQN was not fresh; the ISIM
// produced AUTS for the network to resynchronise (card response DC).
type SyncFailure struct {
	AUTS AUTS
}

func (e *SyncFailure) Error() string {
	return "SQN synchronisation failure (AUTS " + hex.EncodeToString(e.AUTS[:]) + ")"
}

// Authenticator answers AKA challenges as a USIM/ISIM does.
//
// Authenticate returns exactly one of: a Result with err == nil; a
// *SyncFailure (errors.As) when MAC-A verified but SQN was not acceptable;
// ErrMACFailure (errors.Is) when MAC-A did not verify; or any other error when
// the ISIM could not answer at all (a card or state-file failure). Only a
// success changes the ISIM's SQN state, and it is made durable before
// Authenticate returns: a crash afterwards never lets the same SQN be
// accepted twice.
//
// Implementations are safe for use by one goroutine at a time.
type Authenticator interface {
	Identity(ctx context.Context) (Identity, error)
	Authenticate(ctx context.Context, rand RAND, autn AUTN) (Result, error)
	Close() error
}
