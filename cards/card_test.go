package cards_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/cards/internal/akatest"
	"github.com/imsue/imsue/cards/vcard"
	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim"
)

var ctx = context.Background()

// ident is the subscriber of the pySim samples in uicc_vectors.json.
var ident = isim.Identity{
	IMPI:   "738006000000101@ims.mnc000.mcc738.3gppnetwork.org",
	IMPUs:  []string{"sip:738006000000101@ims.mnc000.mcc738.3gppnetwork.org", "tel:+15550100"},
	Domain: "ims.mnc000.mcc738.3gppnetwork.org",
	IMSI:   "738006000000101",
}

type mode struct {
	name                 string
	t0GetResp, t0WrongLe bool
}

var modes = []mode{{"T=1", false, false}, {"T=0 61xx", true, false}, {"T=0 6Cxx", false, true}, {"T=0 61xx+6Cxx", true, true}}

func virtual(t testing.TB, cfg vcard.Config, s vectors.MilenageSet) *vcard.Card {
	t.Helper()
	if cfg.Auth == nil {
		sw, err := akatest.Software(cfg.Identity, s.K, s.OPc)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Auth = sw
	}
	if cfg.MNCLength == 0 {
		cfg.MNCLength = 2
	}
	vc, err := vcard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return vc
}

func open(t testing.TB, vc *vcard.Card, opt cards.Options) *cards.Card {
	t.Helper()
	c, err := cards.Open(ctx, vc, vc.Protocol(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestVirtualCardAKA runs the whole UE path against the virtual UICC in
// every protocol mode: identities from the ISIM, and AKA answers equal to
// the TS 35.208 values for the set's RAND.
func TestVirtualCardAKA(t *testing.T) {
	all := vectors.Milenage()
	for _, m := range modes {
		for _, s := range []vectors.MilenageSet{all[0], all[5], all[len(all)-1]} {
			t.Run(m.name+"/"+s.Name, func(t *testing.T) {
				vc := virtual(t, vcard.Config{Identity: ident, T0GetResponse: m.t0GetResp, T0WrongLe: m.t0WrongLe}, s)
				c := open(t, vc, cards.Options{})
				if c.Selected().Kind().String() != "ISIM" {
					t.Fatalf("selected %v", c.Selected())
				}
				id, err := c.Identity(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want := ident
				want.IMSI = ""
				if id.IMPI != want.IMPI || id.Domain != want.Domain || !slices.Equal(id.IMPUs, want.IMPUs) || id.IMSI != "" {
					t.Fatalf("identity %+v, want %+v", id, want)
				}

				autn := akatest.AUTN(s.K, s.OPc, s.RAND, 0x20)
				res, err := c.Authenticate(ctx, s.RAND, autn)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(res.RES, s.RES[:]) || res.CK != s.CK || res.IK != s.IK {
					t.Fatalf("RES %x CK %x IK %x, want %x %x %x", res.RES, res.CK, res.IK, s.RES, s.CK, s.IK)
				}

				// The same challenge again: the ISIM's SQN check refuses it.
				_, err = c.Authenticate(ctx, s.RAND, autn)
				var sf *isim.SyncFailure
				if !errors.As(err, &sf) {
					t.Fatalf("replay: %v, want a sync failure", err)
				}
				if sqn, ok := akatest.OpenAUTS(s.K, s.OPc, s.RAND, sf.AUTS); !ok || sqn != 0x20 {
					t.Fatalf("AUTS gives SQN_MS %x (MAC-S ok %v), want 20", sqn, ok)
				}

				bad := autn
				bad[15] ^= 1
				if _, err := c.Authenticate(ctx, s.RAND, bad); !errors.Is(err, isim.ErrMACFailure) {
					t.Fatalf("tampered MAC: %v", err)
				}

				st := vc.Stats()
				if (m.t0GetResp || m.t0WrongLe) != (st.Sent61 > 0) {
					t.Errorf("61xx answers %d in mode %s", st.Sent61, m.name)
				}
				if m.t0WrongLe != (st.Sent6C > 0) {
					t.Errorf("6Cxx answers %d in mode %s", st.Sent6C, m.name)
				}
			})
		}
	}
}

// TestUSIMOnly derives the identities from EF.IMSI and EF.AD with the TS
// 23.003 §13 examples of uicc_vectors.json.
func TestUSIMOnly(t *testing.T) {
	s := vectors.Milenage()[0]
	for i, d := range vectors.UICC().Identities {
		m := modes[i%len(modes)]
		t.Run(d.IMSI+"/"+m.name, func(t *testing.T) {
			vc := virtual(t, vcard.Config{Identity: isim.Identity{IMSI: d.IMSI}, MNCLength: d.MNCLength, USIMOnly: true,
				T0GetResponse: m.t0GetResp, T0WrongLe: m.t0WrongLe}, s)
			c := open(t, vc, cards.Options{})
			if got := c.Selected().Kind().String(); got != "USIM" {
				t.Fatalf("selected %s", got)
			}
			id, err := c.Identity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if id.IMPI != d.IMPI || id.Domain != d.Domain || !slices.Equal(id.IMPUs, []string{d.TempIMPU}) || id.IMSI != d.IMSI {
				t.Fatalf("identity %+v, want %s %s %s", id, d.IMPI, d.TempIMPU, d.Domain)
			}
			res, err := c.Authenticate(ctx, s.RAND, akatest.AUTN(s.K, s.OPc, s.RAND, 0x40))
			if err != nil || !bytes.Equal(res.RES, s.RES[:]) {
				t.Fatalf("USIM AKA: %x %v", res.RES, err)
			}
		})
	}
}

// TestISIMEmptyFallsBackToIMSI: an ISIM with empty files takes the
// identities from the USIM's IMSI.
func TestISIMEmptyFallsBackToIMSI(t *testing.T) {
	s := vectors.Milenage()[0]
	vc := virtual(t, vcard.Config{Identity: isim.Identity{IMSI: "310410123456789"}, MNCLength: 3}, s)
	c := open(t, vc, cards.Options{})
	id, err := c.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Selected().Kind().String() != "ISIM" || id.IMPI != "310410123456789@ims.mnc410.mcc310.3gppnetwork.org" {
		t.Fatalf("%v %+v", c.Selected(), id)
	}
	// AUTHENTICATE still goes to the ISIM, selected again after EF.IMSI.
	if _, err := c.Authenticate(ctx, s.RAND, akatest.AUTN(s.K, s.OPc, s.RAND, 0x40)); err != nil {
		t.Fatal(err)
	}
}

func TestPIN(t *testing.T) {
	s := vectors.Milenage()[0]
	vc := virtual(t, vcard.Config{Identity: ident, PIN: []byte("2468")}, s)
	c := open(t, vc, cards.Options{})

	_, err := c.Identity(ctx)
	var ce *cards.Error
	if !errors.As(err, &ce) || ce.SW != apdu.SWSecurityStatus || !strings.Contains(err.Error(), "PIN") {
		t.Fatalf("identity before PIN: %v", err)
	}
	if _, err := c.Authenticate(ctx, s.RAND, akatest.AUTN(s.K, s.OPc, s.RAND, 0x20)); !errors.As(err, &ce) || ce.SW != 0x6982 {
		t.Fatalf("AUTHENTICATE before PIN: %v", err)
	}
	if st, err := c.PINStatus(ctx); err != nil || st.State != cards.PINNeeded || st.Retries != 3 {
		t.Fatalf("status %+v %v", st, err)
	}

	err = c.VerifyPIN(ctx, []byte("1111"), false)
	var pe *cards.PINError
	if !errors.As(err, &pe) || pe.Retries != 2 || !strings.Contains(err.Error(), "2 tries left") {
		t.Fatalf("wrong PIN: %v", err)
	}
	if strings.Contains(err.Error(), "1111") {
		t.Fatalf("error shows the PIN: %v", err)
	}
	if err := c.VerifyPIN(ctx, []byte("2468"), false); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.PINStatus(ctx); st.State != cards.PINNotNeeded {
		t.Fatalf("after the right PIN: %+v", st)
	}
	if _, err := c.Identity(ctx); err != nil {
		t.Fatal(err)
	}

	// A power cycle forgets the verification but not the counter.
	vc.Reset()
	c = open(t, vc, cards.Options{})
	if st, _ := c.PINStatus(ctx); st.State != cards.PINNeeded || st.Retries != 3 {
		t.Fatalf("after reset: %+v", st)
	}
	for want := 2; want >= 1; want-- {
		err := c.VerifyPIN(ctx, []byte("0000"), false)
		if !errors.As(err, &pe) || pe.Retries != want {
			t.Fatalf("wrong PIN: %v, want %d left", err, want)
		}
	}
	// One try left: refused unless forced, and the card was not asked.
	before := vc.Stats().APDUs
	if err := c.VerifyPIN(ctx, []byte("0000"), false); !errors.Is(err, cards.ErrPINLastTry) {
		t.Fatalf("last try: %v", err)
	}
	if st, _ := c.PINStatus(ctx); st.Retries != 1 || vc.Stats().APDUs != before+2 {
		t.Fatalf("last try spent: %+v", st)
	}
	if err := c.VerifyPIN(ctx, []byte("0000"), true); !errors.Is(err, cards.ErrPINBlocked) {
		t.Fatalf("forced wrong last try: %v", err)
	}
	if err := c.VerifyPIN(ctx, []byte("2468"), true); !errors.Is(err, cards.ErrPINBlocked) {
		t.Fatalf("blocked card: %v", err)
	}
	if st, _ := c.PINStatus(ctx); st.State != cards.PINBlocked {
		t.Fatalf("blocked state: %+v", st)
	}
	if err := c.VerifyPIN(ctx, []byte("12a4"), true); !errors.Is(err, cards.ErrBadPIN) {
		t.Fatalf("bad PIN format: %v", err)
	}
}

func TestInfo(t *testing.T) {
	s := vectors.Milenage()[0]
	vc := virtual(t, vcard.Config{Identity: ident, PCSCF: []string{"pcscf.ims.mnc000.mcc738.3gppnetwork.org", "192.0.2.7"}}, s)
	c := open(t, vc, cards.Options{})
	in, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Applications) != 2 || in.Applications[1].Kind != "ISIM" || in.Applications[1].Label != "ISim1" ||
		in.Selected != "ISIM" || in.ICCID != "8999738006000000101" || in.PIN == nil || in.PIN.State != cards.PINNotNeeded ||
		in.Identity == nil || in.Identity.IMPI != ident.IMPI || in.IdentitySource != "isim" ||
		!slices.Equal(in.PCSCF, []string{"pcscf.ims.mnc000.mcc738.3gppnetwork.org", "192.0.2.7"}) ||
		!slices.Equal(in.ISIMServices, []string{"P-CSCF address"}) {
		t.Fatalf("info %+v", in)
	}

	// With a PIN: the report still comes, saying what is missing.
	vc = virtual(t, vcard.Config{Identity: ident, PIN: []byte("1234")}, s)
	c = open(t, vc, cards.Options{})
	in, err = c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.Identity != nil || !strings.Contains(in.IdentityError, "6982") || in.PIN.State != cards.PINNeeded {
		t.Fatalf("info with PIN %+v", in)
	}
}

func TestPreferUSIM(t *testing.T) {
	s := vectors.Milenage()[0]
	vc := virtual(t, vcard.Config{Identity: ident}, s)
	c := open(t, vc, cards.Options{PreferUSIM: true})
	id, err := c.Identity(ctx)
	if err != nil || c.Selected().Kind().String() != "USIM" || id.IMPI != "738006000000101@ims.mnc000.mcc738.3gppnetwork.org" || id.IMSI == "" {
		t.Fatalf("%v %+v %v", c.Selected(), id, err)
	}
}

// BenchmarkAuthenticateInProcess is Card.Authenticate against the virtual
// card without pcscd: the APDU layer, the card and its software ISIM
// (memory store), each iteration a fresh SQN.
func BenchmarkAuthenticateInProcess(b *testing.B) {
	s := vectors.Milenage()[0]
	vc := virtual(b, vcard.Config{Identity: ident}, s)
	c := open(b, vc, cards.Options{})
	akatest.BenchAuthenticate(b, s.K, s.OPc, s.RAND, 0, func(autn isim.AUTN) error {
		_, err := c.Authenticate(ctx, s.RAND, autn)
		return err
	})
}
