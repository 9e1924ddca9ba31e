package vcard_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/cards/apdu/apdutest"
	"github.com/imsue/imsue/cards/internal/akatest"
	"github.com/imsue/imsue/cards/vcard"
	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim"
)

var ident = isim.Identity{
	IMPI:   "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
	IMPUs:  []string{"sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org"},
	Domain: "ims.mnc001.mcc001.3gppnetwork.org",
	IMSI:   "001010123456789",
}

func newCard(t testing.TB, cfg vcard.Config) *vcard.Card {
	t.Helper()
	set1 := vectors.Milenage()[0]
	if cfg.Identity.IMSI == "" {
		cfg.Identity = ident
	}
	if cfg.MNCLength == 0 {
		cfg.MNCLength = 2
	}
	if cfg.Auth == nil {
		var err error
		if cfg.Auth, err = akatest.Software(cfg.Identity, set1.K, set1.OPc); err != nil {
			t.Fatal(err)
		}
	}
	c, err := vcard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exchange sends hex commands and checks the hex answers ("..." + SW
// checks only the end).
func exchange(t *testing.T, c *vcard.Card, pairs ...string) {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		rsp, err := c.Transmit(apdutest.MustHex(pairs[i]))
		if err != nil {
			t.Fatal(err)
		}
		got, want := hex.EncodeToString(rsp), strings.ReplaceAll(pairs[i+1], " ", "")
		if w, ok := strings.CutPrefix(want, "..."); ok {
			if !strings.HasSuffix(got, w) {
				t.Fatalf("%s → %s, want ...%s", pairs[i], got, w)
			}
		} else if got != want {
			t.Fatalf("%s → %s, want %s", pairs[i], got, want)
		}
	}
}

func TestCardAnswers(t *testing.T) {
	tests := []struct {
		name  string
		cfg   vcard.Config
		pairs []string
	}{
		{"unknown INS", vcard.Config{}, []string{"00ca000000", "6d00"}},
		{"GSM class", vcard.Config{}, []string{"a0a40000023f00", "6e00"}},
		{"logical channel 1", vcard.Config{}, []string{"01a4000c023f00", "6881"}},
		{"GET RESPONSE with nothing pending", vcard.Config{}, []string{"00c0000010", "6985"}},
		{"READ BINARY without EF", vcard.Config{}, []string{"00b0000000", "6986"}},
		{"EF of the ADF from the MF", vcard.Config{}, []string{"00a4000c026f02", "6a82"}},
		{"bad P2", vcard.Config{}, []string{"00a4000d023f00", "6a86"}},
		{"SELECT FID wrong length", vcard.Config{}, []string{"00a4000c033f0000", "6700"}},
		{"READ RECORD on transparent", vcard.Config{}, []string{"00a4000c022fe2", "9000", "00b2010400", "6981"}},
		{"READ BINARY on records", vcard.Config{}, []string{"00a4000c022f00", "9000", "00b0000000", "6981"}},
		{"offset beyond EF", vcard.Config{}, []string{"00a4000c022fe2", "9000", "00b0000a00", "6b00"}},
		{"ICCID with Le 00 (T=1)", vcard.Config{}, []string{"00a4000c022fe2", "9000", "00b0000000", "989900010121436587f99000"}},
		{"ICCID explicit Le too long", vcard.Config{}, []string{"00a4000c022fe2", "9000", "00b0000010", "989900010121436587f9 6282"}},
		{"ICCID with Le 00 (T=0 6Cxx)", vcard.Config{T0WrongLe: true}, []string{"00a4000c022fe2", "9000", "00b0000000", "6c0a", "00b000000a", "...9000"}},
		{"record past the end", vcard.Config{}, []string{"00a4000c022f00", "9000", "00b2090400", "6a83"}},
		{"record Le too short (T=1)", vcard.Config{}, []string{"00a4000c022f00", "9000", "00b2010401", "6700"}},
		{"record wrong Le (6Cxx)", vcard.Config{T0WrongLe: true}, []string{"00a4000c022f00", "9000", "00b2010401", "6c23"}},
		{"select ADF by partial AID, FCP", vcard.Config{}, []string{"00a4040407a000000087100400", "...9000"}},
		{"select ADF, T=0 61xx", vcard.Config{T0GetResponse: true}, []string{"00a4040407a000000087100400", "6120", "00c0000001", "62611f"}},
		{"select by path to EF.IMSI", vcard.Config{}, []string{"00a4040c07a0000000871002", "9000", "00a4080c047fff6f07", "9000", "00b0000000", "080910101032547698" + "9000"}},
		{"USIM-only has no ISIM", vcard.Config{USIMOnly: true}, []string{"00a4040c07a0000000871004", "6a82"}},
		{"AUTHENTICATE in the MF", vcard.Config{}, []string{"00880081221023553cbe9637a89d218ae64dae47bf351055f328b43577b9b94a9ffac354dfafb300", "6985"}},
		{"AUTHENTICATE GSM context", vcard.Config{}, []string{"00a4040c07a0000000871002", "9000", "0088008011" + "10" + "00112233445566778899aabbccddeeff", "9864"}},
		{"AUTHENTICATE short data", vcard.Config{}, []string{"00a4040c07a0000000871004", "9000", "008800810310aabb00", "6700"}},
		{"PIN disabled", vcard.Config{}, []string{"00200001", "9000"}},
		{"PIN2 unknown", vcard.Config{PIN: []byte("1234")}, []string{"00200081", "6a88"}},
		{"PIN wrong length", vcard.Config{PIN: []byte("1234")}, []string{"002000010431323334", "6700"}},
		{"EF.IMPI needs the PIN", vcard.Config{PIN: []byte("1234")}, []string{"00a4040c07a0000000871004", "9000", "00a4000c026f02", "9000", "00b0000000", "6982",
			"002000010831323334ffffffff", "9000", "00b0000000", "...9000"}},
		{"EF.AD readable without PIN", vcard.Config{PIN: []byte("1234")}, []string{"00a4040c07a0000000871004", "9000", "00a4000c026fad", "9000", "00b0000000", "000000029000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exchange(t, newCard(t, tc.cfg), tc.pairs...)
		})
	}
}

// TestNewCopiesPIN: the caller wipes its PIN after New; the card keeps its own.
func TestNewCopiesPIN(t *testing.T) {
	pin := []byte("1234")
	c := newCard(t, vcard.Config{PIN: pin})
	clear(pin)
	exchange(t, c, "00a4040c07a0000000871004", "9000", "002000010831323334ffffffff", "9000")
}

func TestPowerCycleResets(t *testing.T) {
	c := newCard(t, vcard.Config{PIN: []byte("1234")})
	exchange(t, c,
		"00a4040c07a0000000871004", "9000",
		"002000010831323334ffffffff", "9000",
		"00a4000c026f02", "9000",
		"00200001", "9000",
		"002000010830303030ffffffff", "63c2", // a wrong try; then the right one again
		"002000010831323334ffffffff", "9000",
		"002000010830303030ffffffff", "63c2")
	c.Reset()
	exchange(t, c,
		"00b0000000", "6986", // no EF selected any more
		"00a4000c026f02", "6a82", // and the MF is the current DF
		"00200001", "63c2") // PIN to verify again; the counter kept
}

func TestATR(t *testing.T) {
	a, b := newCard(t, vcard.Config{}).ATR(), newCard(t, vcard.Config{T0GetResponse: true}).ATR()
	for _, atr := range [][]byte{a, b} {
		var tck byte
		for _, x := range atr[1:] {
			tck ^= x
		}
		if atr[0] != 0x3B || tck != 0 || len(atr) != 22 {
			t.Fatalf("ATR %x: TS %02x, checksum %02x", atr, atr[0], tck)
		}
	}
	if a[3]&0x0F != 1 || b[3]&0x0F != 0 {
		t.Fatalf("TD1 %02x / %02x: want T=1 / T=0", a[3], b[3])
	}
	// Each card has its own ATR (one random byte): 20 cards, at least 2
	// different values (the chance of one value 20 times is 2^-152).
	seen := map[string]bool{}
	for range 20 {
		seen[string(newCard(t, vcard.Config{}).ATR())] = true
	}
	if len(seen) < 2 {
		t.Fatal("ATR not randomised")
	}
}

func TestNewRejects(t *testing.T) {
	auth, _ := akatest.Software(ident, [16]byte{}, [16]byte{})
	for _, tc := range []struct {
		name string
		cfg  vcard.Config
		want string
	}{
		{"no auth", vcard.Config{Identity: ident, MNCLength: 2}, "Authenticator"},
		{"bad IMSI", vcard.Config{Identity: isim.Identity{IMSI: "12345"}, MNCLength: 2, Auth: auth}, "IMSI"},
		{"MNC 4", vcard.Config{Identity: ident, MNCLength: 4, Auth: auth}, "MNC"},
		{"PIN letters", vcard.Config{Identity: ident, MNCLength: 2, Auth: auth, PIN: []byte("12ab")}, "PIN"},
		{"IMPU too long", vcard.Config{Identity: isim.Identity{IMSI: ident.IMSI, IMPUs: []string{strings.Repeat("x", 300)}}, MNCLength: 2, Auth: auth}, "EF.IMPU"},
	} {
		if _, err := vcard.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func frame(b []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// TestServeVPCD speaks vpcd's side of the protocol over a pipe.
func TestServeVPCD(t *testing.T) {
	c := newCard(t, vcard.Config{})
	reader, card := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, card) }()
	_ = reader.SetDeadline(time.Now().Add(5 * time.Second))

	read := func() []byte {
		var h [2]byte
		if _, err := io.ReadFull(reader, h[:]); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(h[:]))
		if _, err := io.ReadFull(reader, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(b []byte) {
		if _, err := reader.Write(frame(b)); err != nil {
			t.Fatal(err)
		}
	}
	write([]byte{0x04})
	if got := read(); !bytes.Equal(got, c.ATR()) {
		t.Fatalf("ATR %x, want %x", got, c.ATR())
	}
	select {
	case <-c.Powered():
		t.Fatal("powered before power-on")
	default:
	}
	write([]byte{0x01}) // power on: no reply
	write([]byte{0x00, 0xA4, 0x00, 0x0C, 0x02, 0x2F, 0xE2})
	if got := read(); !bytes.Equal(got, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT → %x", got)
	}
	<-c.Powered()
	write([]byte{0x02}) // reset: no reply, selection gone
	write([]byte{0x00, 0xB0, 0x00, 0x00, 0x00})
	if got := read(); !bytes.Equal(got, []byte{0x69, 0x86}) {
		t.Fatalf("READ BINARY after reset → %x", got)
	}
	if st := c.Stats(); st.PowerUps != 2 || st.APDUs != 2 {
		t.Fatalf("stats %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// FuzzTransmit: whatever arrives, the card answers with a status word.
func FuzzTransmit(f *testing.F) {
	for _, s := range []string{"00a4040407a000000087100400", "00a4080c047fff6f07", "00b0000000", "00b2010400",
		"00200001", "002000010831323334ffffffff", "00c0000010",
		"00880081221023553cbe9637a89d218ae64dae47bf351055f328b43577b9b94a9ffac354dfafb300"} {
		f.Add(apdutest.MustHex(s), apdutest.MustHex("00a4040c07a0000000871004"))
	}
	cards := []*vcard.Card{newCard(f, vcard.Config{}), newCard(f, vcard.Config{T0GetResponse: true, T0WrongLe: true, PIN: []byte("1234")}),
		newCard(f, vcard.Config{USIMOnly: true})}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		for _, c := range cards {
			for _, cmd := range [][]byte{first, second, first} {
				rsp, err := c.Transmit(cmd)
				if err != nil || len(rsp) < 2 {
					t.Fatalf("%x → %x %v", cmd, rsp, err)
				}
			}
		}
	})
}

// FuzzServe feeds arbitrary bytes as vpcd's stream: Serve must end without
// panicking when the stream does.
func FuzzServe(f *testing.F) {
	f.Add(append(append(frame([]byte{4}), frame([]byte{1})...), frame(apdutest.MustHex("00a4040407a000000087100400"))...))
	f.Add([]byte{0xFF, 0xFF, 0x00})
	c := newCard(f, vcard.Config{T0GetResponse: true})
	f.Fuzz(func(t *testing.T, stream []byte) {
		reader, card := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- c.Serve(context.Background(), card) }()
		go func() { _, _ = io.Copy(io.Discard, reader) }()
		_, _ = reader.Write(stream)
		reader.Close()
		<-done
	})
}

func BenchmarkTransmitAuthenticate(b *testing.B) {
	s := vectors.Milenage()[0]
	c := newCard(b, vcard.Config{Auth: acceptAll{s.RES[:], s.CK, s.IK}})
	if _, err := c.Transmit(apdutest.MustHex("00a4040c07a0000000871004")); err != nil {
		b.Fatal(err)
	}
	cmd := s.AuthCmd
	b.ReportAllocs()
	for b.Loop() {
		if rsp, _ := c.Transmit(cmd); rsp[len(rsp)-2] != 0x90 {
			b.Fatalf("%x", rsp)
		}
	}
}

// acceptAll answers every challenge with fixed keys: it isolates the card's
// own cost from the ISIM behind it.
type acceptAll struct {
	res    []byte
	ck, ik [16]byte
}

func (a acceptAll) Identity(context.Context) (isim.Identity, error) { return ident, nil }
func (a acceptAll) Authenticate(context.Context, isim.RAND, isim.AUTN) (isim.Result, error) {
	return isim.Result{RES: a.res, CK: a.ck, IK: a.ik}, nil
}
func (a acceptAll) Close() error { return nil }
