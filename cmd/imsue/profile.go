package main

import (
	"errors"
	"fmt"

	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/profile"
)

// openCard opens a real card for a profile whose card field is "pcsc" or
// "pcsc:<reader>". The PC/SC build (-tags pcsc) sets it from an init();
// without it imsue has no card support.
var openCard func(spec string, p *profile.Profile) (isim.Authenticator, error)

// errNoPCSC is the exit-9 error of a card profile in a build without PC/SC.
var errNoPCSC = errors.New("imsue was built without PC/SC support (rebuild with -tags pcsc)")

// loadProfile reads the profile at path and shows its warnings on stderr.
func loadProfile(a *app, path string) (*profile.Profile, error) {
	if path == "" {
		return nil, usageError(errors.New("--profile: required"))
	}
	p, err := profile.Load(path)
	if err != nil {
		return nil, err
	}
	for _, w := range p.Warnings {
		a.logf("imsue: warning: %s", w)
	}
	return p, nil
}

// openAuthenticator returns the ISIM the profile names: the software ISIM
// over its SQN state file when card is empty, else the card through the
// PC/SC hook. The register command uses it too.
func openAuthenticator(p *profile.Profile) (isim.Authenticator, error) {
	if p.Card == profile.CardNone {
		s, err := p.OpenSoftware()
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return s, nil
	}
	if openCard == nil {
		return nil, withCode(exitCard, fmt.Errorf("profile %s: card %q: %w", p.Path, p.Card, errNoPCSC))
	}
	return openCard(p.Card, p)
}
