//go:build pcsc

package main

import (
	"testing"

	"github.com/imsue/imsue/cards/vcard"
)

// TestRegisterThroughCard: a whole imsue register against the lab core,
// authenticated by the card through the real pcscd (issue 5): the AKA runs
// on the card, once per registration, and the keys it returns protect the
// registration exactly as the software ISIM's would.
func TestRegisterThroughCard(t *testing.T) {
	for _, m := range []struct {
		name string
		cfg  vcard.Config
	}{
		{"ISIM T=1", vcard.Config{}},
		{"ISIM T=0 61xx", vcard.Config{T0GetResponse: true}},
		{"USIM only T=0 6Cxx", vcard.Config{USIMOnly: true, T0WrongLe: true}},
	} {
		t.Run(m.name, func(t *testing.T) {
			env, _ := cardEnv(t, m.cfg)
			core := regCore(t, nil)
			// A card profile names only the reader: identities and keys are the card's.
			card := cardProfile(t, t.TempDir(), "card.yaml", "card: \"pcsc:"+env.Reader+"\"\n")

			code, stdout, stderr := regRun(regArgs(card, core, "--json")...)
			if code != 0 {
				t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
			}
			r := regJSON(t, stdout)
			sec, _ := r["security"].(map[string]any)
			if r["result"] != "registered" || r["impi"] != cardIdentity.IMPI || sec == nil || sec["alg"] == nil {
				t.Fatalf("result %v", r)
			}
			if st := env.Card.Stats(); st.Authenticates != 1 {
				t.Fatalf("the card ran %d AUTHENTICATEs, want 1 (stats %+v)", st.Authenticates, st)
			}
			if st := core.Stats(); st.Vectors != 1 {
				t.Fatalf("the HSS issued %d vectors, want 1", st.Vectors)
			}
		})
	}
}
