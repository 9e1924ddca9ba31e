package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim"
)

func TestLoadExamples(t *testing.T) {
	ts := vectors.Milenage()[0] // TS 35.208 set 1
	t.Run("lab-ue1", func(t *testing.T) {
		p, err := Load("testdata/lab-ue1.yaml")
		if err != nil {
			t.Fatal(err)
		}
		// Identities of the README's example profile (section "Profile").
		want := isim.Identity{
			IMPI:   "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
			IMPUs:  []string{"sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org"},
			Domain: "ims.mnc001.mcc001.3gppnetwork.org",
			IMSI:   "001010123456789",
		}
		if p.Identity.IMPI != want.IMPI || p.Identity.Domain != want.Domain || !slices.Equal(p.Identity.IMPUs, want.IMPUs) || p.Identity.IMSI != want.IMSI {
			t.Fatalf("identity %+v, want %+v", p.Identity, want)
		}
		if !p.HasKeys || p.K != isim.Key(ts.K) || p.OPc != isim.Key(ts.OPc) || p.OPGiven {
			t.Fatalf("keys: has %v k %s opc %s", p.HasKeys, p.K.Hex(), p.OPc.Hex())
		}
		if p.SQNState != filepath.Join("testdata", "lab-ue1.sqn") || p.Name != "lab-ue1" {
			t.Fatalf("sqn_state %q name %q", p.SQNState, p.Name)
		}
		if p.Card != CardNone || p.MNCLength != 2 {
			t.Fatalf("card %q mnc %d", p.Card, p.MNCLength)
		}
	})
	t.Run("lab-ue2-op", func(t *testing.T) {
		p, err := Load("testdata/lab-ue2-op.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !p.OPGiven || p.OPc != isim.Key(ts.OPc) {
			t.Fatalf("OPc derived from OP = %s, want the vector's %x", p.OPc.Hex(), ts.OPc)
		}
		if p.Identity.IMPI != "alice@ims.lab.example" || len(p.Identity.IMPUs) != 2 || p.Identity.IMPUs[1] != "tel:+15551230001" || p.Identity.IMSI != "" {
			t.Fatalf("identity %+v", p.Identity)
		}
		if p.SQNState != filepath.Join("testdata", "state", "alice.sqn") {
			t.Fatalf("sqn_state %q", p.SQNState)
		}
		if string(p.Password) != "lab-only-md5-password" {
			t.Fatal("password not kept")
		}
	})
	t.Run("card", func(t *testing.T) {
		p, err := Load("testdata/card-ue.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if p.Card != "pcsc:Virtual PCD" || p.CardReader() != "Virtual PCD" || p.HasKeys {
			t.Fatalf("card %q reader %q keys %v", p.Card, p.CardReader(), p.HasKeys)
		}
	})
}

// TestIdentityVectors: the profile derives what it leaves out from the IMSI
// with the TS 23.003 §13 examples of uicc_vectors.json.
func TestIdentityVectors(t *testing.T) {
	ids := vectors.UICC().Identities
	if len(ids) == 0 {
		t.Fatal("no identity vectors")
	}
	for _, id := range ids {
		// An IMSI as a bare YAML number keeps its digits.
		p, err := Parse([]byte(fmt.Sprintf("imsi: %s\nmnc_length: %d\ncard: pcsc\n", id.IMSI, id.MNCLength)), "x.yaml")
		if err != nil {
			t.Fatalf("%s: %v", id.IMSI, err)
		}
		if p.Identity.IMPI != id.IMPI || p.Identity.Domain != id.Domain || !slices.Equal(p.Identity.IMPUs, []string{id.TempIMPU}) {
			t.Errorf("%s: %+v", id.IMSI, p.Identity)
		}
	}
	// Only the parts left out are derived.
	p, err := Parse([]byte("imsi: 234150999999999\nmnc_length: 2\nimpi: me@realm\ncard: pcsc\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Identity.IMPI != "me@realm" || p.Identity.Domain != "ims.mnc015.mcc234.3gppnetwork.org" {
		t.Fatalf("%+v", p.Identity)
	}
}

const (
	goodK   = "465b5ce8b199b49faa5f0a2ee238a6bc"
	goodOPc = "cd63cb71954a9f4e48a5994e37a02baf"
)

func TestValidationErrors(t *testing.T) {
	base := "imsi: \"001010123456789\"\nmnc_length: 2\n"
	keys := "k: " + goodK + "\nopc: " + goodOPc + "\n"
	tests := []struct {
		name, yaml, field, msg string
	}{
		{"empty", "", "", "empty profile"},
		{"not a mapping", "- a\n- b\n", "", "want a mapping"},
		{"bad YAML", "imsi: [\n", "", "not valid YAML"},
		{"unknown field", base + keys + "opC: x\n", "opC", "unknown field (line 5)"},
		{"duplicate", base + keys + "k: " + goodK + "\n", "k", "given twice (lines 3 and 5)"},
		{"k short", base + "k: " + goodK[:30] + "\nopc: " + goodOPc + "\n", "k", "want 32 hex digits, got 30"},
		{"k not hex", base + "k: " + goodK[:31] + "z\nopc: " + goodOPc + "\n", "k", "not hex: bad character at position 32"},
		{"k as a list", base + "k: [1]\nopc: " + goodOPc + "\n", "k", "want a single value"},
		{"opc long", base + "k: " + goodK + "\nopc: " + goodOPc + "00\n", "opc", "want 32 hex digits, got 34"},
		{"op bad", base + "k: " + goodK + "\nop: xyz\n", "op", "want 32 hex digits, got 3"},
		{"both op and opc", base + keys + "op: " + goodOPc + "\n", "op", "not both"},
		{"neither op nor opc", base + "k: " + goodK + "\n", "opc", "required with k"},
		{"no keys", base, "k", "required for the software ISIM"},
		{"opc without k", base + "opc: " + goodOPc + "\n", "k", "required with op/opc"},
		{"imsi 13 digits", "imsi: \"0010101234567\"\nmnc_length: 2\n" + keys, "imsi", "want 14 or 15 digits, got 13"},
		{"imsi 16 digits", "imsi: \"0010101234567890\"\nmnc_length: 2\n" + keys, "imsi", "want 14 or 15 digits, got 16"},
		{"imsi letters", "imsi: \"00101012345678x\"\nmnc_length: 2\n" + keys, "imsi", "not a digit"},
		{"mnc_length 4", "imsi: \"001010123456789\"\nmnc_length: 4\n" + keys, "mnc_length", `want 2 or 3, got "4"`},
		{"mnc_length missing", "imsi: \"001010123456789\"\n" + keys, "mnc_length", "required"},
		{"no imsi, no impi", "impu: sip:a@b\ndomain: b\n" + keys, "impi", "required when imsi is absent"},
		{"no imsi, no impu", "impi: a@b\ndomain: b\n" + keys, "impu", "required when imsi is absent"},
		{"no imsi, no domain", "impi: a@b\nimpu: sip:a@b\n" + keys, "domain", "required when imsi is absent"},
		{"impi not a NAI", base + keys + "impi: alice\n", "impi", "user@realm"},
		{"impi with a quote", base + keys + "impi: 'a\"b@c'\n", "impi", "not allowed"},
		{"impu scheme", base + keys + "impu: [http://x]\n", "impu", "entry 1: want a sip:, sips: or tel: URI"},
		{"impu empty entry", base + keys + "impu: [sip:a@b, ~]\n", "impu", "entry 2"},
		{"domain", base + keys + "domain: ims..lab\n", "domain", "empty or over-long label"},
		{"card", base + keys + "card: usb\n", "card", `got "usb"`},
		{"card no reader", base + keys + "card: \"pcsc:\"\n", "card", "pcsc:<reader"},
		{"sqn_state empty", base + keys + "sqn_state: \"\"\n", "sqn_state", "empty path"},
		{"sqn_state is the profile", base + keys + "sqn_state: ue1.yaml\n", "sqn_state", "profile file itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "dir/ue1.yaml")
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("want a *profile.Error, got %v", err)
			}
			if pe.Path != "dir/ue1.yaml" || pe.Field != tt.field || !strings.Contains(pe.Err.Error(), tt.msg) {
				t.Fatalf("got path %q field %q err %q; want field %q containing %q", pe.Path, pe.Field, pe.Err, tt.field, tt.msg)
			}
			prefix := "profile dir/ue1.yaml: "
			if tt.field != "" {
				prefix += tt.field + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("message %q does not start with %q", err, prefix)
			}
			for _, secret := range []string{goodK[:12], goodOPc[:12], goodK[:12]} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error quotes a key: %v", err)
				}
			}
		})
	}
}

func TestAcceptedForms(t *testing.T) {
	keys := "k: " + goodK + "\nopc: " + goodOPc + "\n"
	tests := []struct {
		name, yaml string
		check      func(*Profile) bool
	}{
		{"imsi unquoted with leading zeros", "imsi: 001010123456789\nmnc_length: 2\n" + keys,
			func(p *Profile) bool { return p.Identity.IMSI == "001010123456789" }},
		{"upper-case hex", "imsi: '001010123456789'\nmnc_length: 3\nk: " + strings.ToUpper(goodK) + "\nopc: " + strings.ToUpper(goodOPc) + "\n",
			func(p *Profile) bool {
				return p.K.Hex() == goodK && p.Identity.Domain == "ims.mnc010.mcc001.3gppnetwork.org"
			}},
		{"all-digit key as a YAML number", "imsi: 001010123456789\nmnc_length: 2\nk: 00000000000000000000000000000001\nopc: " + goodOPc + "\n",
			func(p *Profile) bool { return p.K == isim.Key{15: 1} }},
		{"impu as one URI", "imsi: 001010123456789\nmnc_length: 2\nimpu: sip:bob@x\n" + keys,
			func(p *Profile) bool { return slices.Equal(p.Identity.IMPUs, []string{"sip:bob@x"}) }},
		{"null fields are absent", "imsi: 001010123456789\nmnc_length: 2\ncard:\npassword: ~\nimpi:\n" + keys,
			func(p *Profile) bool {
				return p.Card == "" && p.Password == "" && strings.HasPrefix(p.Identity.IMPI, "0010101")
			}},
		{"absolute sqn_state", "imsi: 001010123456789\nmnc_length: 2\nsqn_state: /var/lib/imsue/ue1.sqn\n" + keys,
			func(p *Profile) bool { return p.SQNState == "/var/lib/imsue/ue1.sqn" }},
		{"an alias", "domain: &d ims.lab\nimsi: 001010123456789\nmnc_length: 2\nimpi: alice@ims.lab\nimpu: [sip:alice@ims.lab]\nsqn_state: *d\n" + keys,
			func(p *Profile) bool { return filepath.Base(p.SQNState) == "ims.lab" }},
		{"a card profile with keys (virtual card)", "card: pcsc\nimsi: 001010123456789\nmnc_length: 2\n" + keys,
			func(p *Profile) bool { return p.HasKeys && p.Card == CardPCSC }},
		{"a card profile without anything", "card: pcsc\n",
			func(p *Profile) bool { return !p.HasKeys && p.Identity.IMPI == "" }},
	}
	for _, tt := range tests {
		p, err := Parse([]byte(tt.yaml), "ue1.yaml")
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !tt.check(p) {
			t.Errorf("%s: unexpected profile %+v", tt.name, p.Identity)
		}
	}
}

// TestSecretsNeverPrinted formats a loaded profile every way fmt can.
func TestSecretsNeverPrinted(t *testing.T) {
	p, err := Load("testdata/lab-ue2-op.yaml")
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"465b5ce8", "465B5CE8", "cdc202d5", "cd63cb71", "lab-only-md5", "[70 91"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		for _, v := range []any{p, *p, p.K, p.Password} {
			out := fmt.Sprintf(verb, v)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s of %T prints a secret: %s", verb, v, out)
				}
			}
		}
	}
	j, _ := json.Marshal(p)
	for _, s := range secrets {
		if strings.Contains(string(j), s) {
			t.Errorf("JSON of the profile holds a secret: %s", j)
		}
	}
	if !strings.Contains(p.String(), "alice@ims.lab.example") {
		t.Errorf("String() should still describe the profile: %s", p)
	}
}

func TestLoadPermissionsWarning(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("testdata/lab-ue1.yaml")
	for _, mode := range []os.FileMode{0o600, 0o640, 0o604, 0o644} {
		path := filepath.Join(dir, fmt.Sprintf("ue-%o.yaml", mode))
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		p, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		warned := len(p.Warnings) == 1 && strings.Contains(p.Warnings[0], "readable by group or others") &&
			strings.Contains(p.Warnings[0], path) && strings.Contains(p.Warnings[0], fmt.Sprintf("%04o", mode))
		if (mode != 0o600) != warned {
			t.Errorf("mode %04o: warnings %q", mode, p.Warnings)
		}
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	var pe *Error
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.As(err, &pe) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := Load(dir); !errors.As(err, &pe) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a directory: %v", err)
	}
	// A FIFO is refused at once; opening it for reading would block until
	// a writer came (the test binary's deadline then fails the test).
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(fifo); !errors.As(err, &pe) || !strings.Contains(err.Error(), "a FIFO") {
		t.Fatalf("a FIFO: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, maxSize+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); !errors.As(err, &pe) || !strings.Contains(err.Error(), "larger than any profile") {
		t.Fatalf("big file: %v", err)
	}
}

// TestOpenSoftware: the profile's software ISIM keeps its state where the
// profile says, and a corrupt state is reported when opening.
func TestOpenSoftware(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("testdata/lab-ue1.yaml")
	path := filepath.Join(dir, "ue1.yaml")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.OpenSoftware()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.Identity(t.Context())
	if id.IMPI != p.Identity.IMPI {
		t.Fatalf("identity %+v", id)
	}
	if err := os.WriteFile(filepath.Join(dir, "ue1.sqn"), []byte("junk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var se *isim.StateError
	if _, err := p.OpenSoftware(); !errors.As(err, &se) || !errors.Is(err, isim.ErrCorruptState) {
		t.Fatalf("corrupt state: %v", err)
	}
	card, _ := Parse([]byte("card: pcsc\n"), path)
	var pe *Error
	if _, err := card.OpenSoftware(); !errors.As(err, &pe) || pe.Field != "k" {
		t.Fatalf("software ISIM without keys: %v", err)
	}
}

// The IMEI and its URN: TS 23.003 Annex B's example IMEI 35 209900 176148
// with check digit 1, and the URN of §13.8 (RFC 7254: TAC-SNR-0).
func TestIMEI(t *testing.T) {
	base := "imsi: \"001010123456789\"\nmnc_length: 2\nk: 000102030405060708090a0b0c0d0e0f\nopc: 000102030405060708090a0b0c0d0e0f\n"
	p, err := Parse([]byte(base+"imei: \"352099001761481\"\n"), "ue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.InstanceURN(); got != "urn:gsma:imei:35209900-176148-0" {
		t.Errorf("InstanceURN = %q", got)
	}
	for _, bad := range []string{"352099001761482", "35209900176148", "35209900176148x"} {
		var pe *Error
		if _, err := Parse([]byte(base+"imei: \""+bad+"\"\n"), "ue.yaml"); !errors.As(err, &pe) || !strings.Contains(err.Error(), "imei") {
			t.Errorf("imei %q: %v; want an error naming imei", bad, err)
		}
	}
}
