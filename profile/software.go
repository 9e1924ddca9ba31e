package profile

import (
	"errors"

	"github.com/imsue/imsue/isim"
)

// OpenSoftware returns the software ISIM the profile describes, keeping its
// SQN state in p.SQNState. The state file is read now, so that a corrupt one
// is reported (a *isim.StateError) before any network traffic. The card
// field is not consulted: the virtual card serves a software ISIM too.
func (p *Profile) OpenSoftware() (*isim.Software, error) {
	if !p.HasKeys {
		return nil, &Error{Path: p.Path, Field: "k", Err: errors.New("the software ISIM needs k and opc (or op)")}
	}
	store, err := isim.OpenFileStore(p.SQNState)
	if err != nil {
		return nil, err
	}
	return isim.NewSoftware(isim.Config{Identity: p.Identity, K: p.K, OPc: p.OPc, Store: store})
}
