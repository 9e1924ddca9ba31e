//go:build pcsc

package pcsc_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/cards/internal/akatest"
	"github.com/imsue/imsue/cards/pcsc"
	"github.com/imsue/imsue/cards/pcsctest"
	"github.com/imsue/imsue/cards/vcard"
	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim"
)

var ctx = context.Background()

var ident = isim.Identity{
	IMPI:   "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
	IMPUs:  []string{"sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org", "tel:+15550100"},
	Domain: "ims.mnc001.mcc001.3gppnetwork.org",
	IMSI:   "001010123456789",
}

func config(t testing.TB, s vectors.MilenageSet, cfg vcard.Config) vcard.Config {
	t.Helper()
	if cfg.Identity.IMSI == "" {
		cfg.Identity = ident
	}
	if cfg.MNCLength == 0 {
		cfg.MNCLength = 2
	}
	if cfg.Auth == nil {
		sw, err := akatest.Software(cfg.Identity, s.K, s.OPc)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Auth = sw
	}
	return cfg
}

// openCard connects through pcscd and starts a UICC session.
func openCard(t testing.TB, env *pcsctest.Env, reader string) (*pcsc.Transport, *cards.Card) {
	t.Helper()
	tr, err := pcsc.Open(ctx, pcsc.Options{Reader: reader, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tr.ATR(), env.Card.ATR()) {
		tr.Close()
		t.Fatalf("ATR %x is not our card's %x", tr.ATR(), env.Card.ATR())
	}
	c, err := cards.Open(ctx, tr, tr.Protocol(), cards.Options{})
	if err != nil {
		tr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return tr, c
}

func TestThroughPCSCD(t *testing.T) {
	s := vectors.Milenage()[2]
	for _, m := range []struct {
		name                 string
		t0GetResp, t0WrongLe bool
		usimOnly             bool
		want                 apdu.Protocol
	}{
		{"T=1", false, false, false, apdu.T1},
		{"T=0 61xx", true, false, false, apdu.T0},
		{"T=0 6Cxx", false, true, false, apdu.T0},
		{"USIM only, T=0 61xx+6Cxx", true, true, true, apdu.T0},
	} {
		t.Run(m.name, func(t *testing.T) {
			cfg := config(t, s, vcard.Config{T0GetResponse: m.t0GetResp, T0WrongLe: m.t0WrongLe, USIMOnly: m.usimOnly})
			env := pcsctest.Start(t, cfg)
			tr, c := openCard(t, env, "") // the only reader with a card
			if tr.Protocol() != m.want || tr.Reader() != env.Reader {
				t.Fatalf("reader %q protocol %v, want %q %v", tr.Reader(), tr.Protocol(), env.Reader, m.want)
			}
			id, err := c.Identity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantIMPU := ident.IMPUs
			if m.usimOnly {
				wantIMPU = []string{"sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org"}
			}
			if id.IMPI != ident.IMPI || id.Domain != ident.Domain || strings.Join(id.IMPUs, ",") != strings.Join(wantIMPU, ",") {
				t.Fatalf("identity %+v", id)
			}
			autn := akatest.AUTN(s.K, s.OPc, s.RAND, 0x21)
			res, err := c.Authenticate(ctx, s.RAND, autn)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.RES, s.RES[:]) || res.CK != s.CK || res.IK != s.IK {
				t.Fatalf("RES %x CK %x IK %x", res.RES, res.CK, res.IK)
			}
			var sf *isim.SyncFailure
			if _, err := c.Authenticate(ctx, s.RAND, autn); !errors.As(err, &sf) {
				t.Fatalf("replay: %v", err)
			}
			if sqn, ok := akatest.OpenAUTS(s.K, s.OPc, s.RAND, sf.AUTS); !ok || sqn != 0x21 {
				t.Fatalf("AUTS → %x %v", sqn, ok)
			}
			autn[10] ^= 0x80
			if _, err := c.Authenticate(ctx, s.RAND, autn); !errors.Is(err, isim.ErrMACFailure) {
				t.Fatalf("MAC failure: %v", err)
			}
			st := env.Card.Stats()
			if (st.Sent61 > 0) != (m.want == apdu.T0) || (st.Sent6C > 0) != m.t0WrongLe {
				t.Fatalf("card stats %+v in mode %s", st, m.name)
			}
		})
	}
}

func TestWrongPINThroughPCSCD(t *testing.T) {
	s := vectors.Milenage()[0]
	env := pcsctest.Start(t, config(t, s, vcard.Config{PIN: []byte("8642")}))
	_, c := openCard(t, env, env.Reader)
	err := c.VerifyPIN(ctx, []byte("1234"), false)
	var pe *cards.PINError
	if !errors.As(err, &pe) || pe.Retries != 2 {
		t.Fatalf("wrong PIN: %v", err)
	}
	if err := c.VerifyPIN(ctx, []byte("8642"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Identity(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPowerCycle: pcscd powers the card off after the last disconnect, and
// the card forgets the PIN; the next session must verify again.
func TestPowerCycle(t *testing.T) {
	env := pcsctest.Start(t, config(t, vectors.Milenage()[0], vcard.Config{PIN: []byte("8642")}))
	tr, c := openCard(t, env, env.Reader)
	if err := c.VerifyPIN(ctx, []byte("8642"), false); err != nil {
		t.Fatal(err)
	}
	ups := env.Card.Stats().PowerUps
	if err := tr.Close(); err != nil { // resets the card
		t.Fatal(err)
	}
	_, c = openCard(t, env, env.Reader)
	if st, err := c.PINStatus(ctx); err != nil || st.State != cards.PINNeeded {
		t.Fatalf("after reconnect: %+v %v", st, err)
	}
	if env.Card.Stats().PowerUps <= ups {
		t.Fatal("card was not reset")
	}
}

func TestReaderChoice(t *testing.T) {
	env := pcsctest.Start(t, config(t, vectors.Milenage()[0], vcard.Config{}))
	_, err := pcsc.Open(ctx, pcsc.Options{Reader: "no such reader"})
	var re *cards.ReaderError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), env.Reader) || !strings.Contains(err.Error(), env.Daemon.Reader(1)) {
		t.Fatalf("no match: %v", err)
	}
	if _, err := pcsc.Open(ctx, pcsc.Options{Reader: env.Name}); !errors.As(err, &re) || !strings.Contains(err.Error(), "several readers match") {
		t.Fatalf("ambiguous: %v", err)
	}
	// The empty slot: a bounded wait, then an error naming the reader.
	start := time.Now()
	_, err = pcsc.Open(ctx, pcsc.Options{Reader: "00 01", Wait: 600 * time.Millisecond})
	if !errors.Is(err, cards.ErrNoCard) || !strings.Contains(err.Error(), env.Daemon.Reader(1)) {
		t.Fatalf("empty slot: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("waited %v", d)
	}
	// A card inserted while Open waits is taken.
	late, err := vcard.New(config(t, vectors.Milenage()[1], vcard.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	type opened struct {
		tr  *pcsc.Transport
		err error
	}
	got := make(chan opened, 1)
	go func() {
		tr, err := pcsc.Open(ctx, pcsc.Options{Reader: "00 01", Wait: 8 * time.Second})
		got <- opened{tr, err}
	}()
	time.Sleep(300 * time.Millisecond)
	env.InsertCard(t, late, 1)
	o := <-got
	tr, err := o.tr, o.err
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if !bytes.Equal(tr.ATR(), late.ATR()) {
		t.Fatalf("ATR %x, want the late card's %x", tr.ATR(), late.ATR())
	}
}

func TestNoReader(t *testing.T) {
	pcsctest.StartDaemon(t, pcsctest.Options{NoReaders: true})
	_, err := pcsc.Open(ctx, pcsc.Options{})
	var ce *cards.Error
	if !errors.Is(err, cards.ErrNoReader) || !errors.As(err, &ce) {
		t.Fatalf("err %v", err)
	}
	if rs, err := pcsc.ListReaders(); err != nil || len(rs) != 0 {
		t.Fatalf("ListReaders %v %v", rs, err)
	}
}

func TestNoDaemon(t *testing.T) {
	pcsctest.NoDaemon(t)
	_, err := pcsc.Open(ctx, pcsc.Options{})
	if !errors.Is(err, cards.ErrNoService) || !strings.Contains(err.Error(), "pcscd") {
		t.Fatalf("err %v", err)
	}
}

// BenchmarkTransmit is one APDU round trip through libpcsclite, pcscd, vpcd
// and the virtual card: VERIFY without data (PIN state query).
//
// The NoQuickACK case shows what TCP_QUICKACK on the card's socket saves.
func BenchmarkTransmit(b *testing.B) {
	for _, m := range []struct {
		name    string
		noQuick bool
	}{{"quickack", false}, {"no-quickack", true}} {
		b.Run(m.name, func(b *testing.B) {
			env := pcsctest.Start(b, config(b, vectors.Milenage()[0], vcard.Config{NoQuickACK: m.noQuick}))
			tr, _ := openCard(b, env, env.Reader)
			cmd := []byte{0x00, 0x20, 0x00, 0x01}
			b.ReportAllocs()
			for b.Loop() {
				if rsp, err := tr.Transmit(cmd); err != nil || len(rsp) != 2 {
					b.Fatalf("%x %v", rsp, err)
				}
			}
		})
	}
}

// BenchmarkAuthenticate is one AUTHENTICATE through pcscd: the UE's
// Card.Authenticate, and the virtual card's software ISIM (memory store)
// accepting a fresh SQN each time.
func BenchmarkAuthenticate(b *testing.B) {
	for _, m := range []struct {
		name string
		t0   bool
	}{{"T=1", false}, {"T=0", true}} {
		b.Run(m.name, func(b *testing.B) {
			s := vectors.Milenage()[0]
			env := pcsctest.Start(b, config(b, s, vcard.Config{T0GetResponse: m.t0}))
			_, c := openCard(b, env, env.Reader)
			akatest.BenchAuthenticate(b, s.K, s.OPc, s.RAND, 0x20, func(autn isim.AUTN) error {
				_, err := c.Authenticate(ctx, s.RAND, autn)
				return err
			})
		})
	}
}
