//go:build pcsc

package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imsue/imsue/cards/vcard"
	"github.com/imsue/imsue/locate/locatetest"
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

// Without --pcscf, the P-CSCF comes from the ISIM's EF.P-CSCF (TS 31.103
// §4.2.8): here an FQDN, looked up by RFC 3263 in a loopback zone.
func TestRegisterPCSCFFromCard(t *testing.T) {
	core := regCore(t, nil)
	const fqdn = "pcscf.card.example"
	dns := locatetest.Zone(t,
		fmt.Sprintf(`_sip._udp.%s. 60 IN SRV 0 0 %d %s.`, fqdn, core.Addr().Port(), fqdn),
		fqdn+`. 60 IN A 127.0.0.1`,
	)
	env, _ := cardEnv(t, vcard.Config{PCSCF: []string{fqdn}})
	card := cardProfile(t, t.TempDir(), "card.yaml", "card: \"pcsc:"+env.Reader+"\"\n")
	code, stdout, stderr := regRun("register", "--profile", card, "--dns", dns, "--json",
		"--local-port", "0", "--ipsec", "none", "--t1", "10ms", "--dereg-timeout", "500ms")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	if r := regJSON(t, stdout); r["result"] != "registered" {
		t.Fatalf("result %v", r)
	}
	if want := "from the ISIM's EF.P-CSCF (" + fqdn; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q does not say %q", stderr, want)
	}
}
