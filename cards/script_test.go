package cards_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/cards/apdu/apdutest"
	"github.com/imsue/imsue/cards/uicc"
	"github.com/imsue/imsue/isim"
)

// EF.DIR records of uicc_vectors.json (pySim).
const (
	dirISIM = "61194f10a0000000871004ffffffff890709000050054953696d31"
	isimAID = "a0000000871004ffffffff8907090000"
	dirUSIM = "61294f10a0000000871002ffffffff890709000050055553696d31730ea00c80011781025f608203454150"
	usimAID = "a0000000871002ffffffff8907090000"
)

// openScript is what Open sends to a T=1 card with an ISIM, and the
// answers.
func openScript(extra ...string) *apdutest.Script {
	return apdutest.NewScript(append([]string{
		"00a4000c023f00", "9000",
		"00a4000c022fe2", "9000", "00b0000000", "98103254769810325476" + "9000",
		"00a4000c023f00", "9000",
		"00a4000c022f00", "9000",
		"00b2010400", dirUSIM + "9000",
		"00b2020400", dirISIM + "ffff9000",
		"00b2030400", "6a83",
		"00a4040410" + isimAID + "00", "62038201789000",
	}, extra...)...)
}

func openScripted(t *testing.T, s *apdutest.Script) *cards.Card {
	t.Helper()
	c, err := cards.Open(ctx, s, apdu.T1, cards.Options{})
	if err != nil {
		t.Fatalf("open: %v (sent %x)", err, s.Sent)
	}
	return c
}

const authCmd = "00880081221023553cbe9637a89d218ae64dae47bf351055f328b43577b9b94a9ffac354dfafb300"

func rndAutn(t *testing.T) (isim.RAND, isim.AUTN) {
	b := apdutest.MustHex(authCmd)
	var r isim.RAND
	var a isim.AUTN
	copy(r[:], b[6:22])
	copy(a[:], b[23:39])
	return r, a
}

func TestAuthenticateStatusWords(t *testing.T) {
	okRsp := "db08a54211d5e3ba50bf10b40ba9a3c58b2a05bbf0d987b21bf8cb10f769bcd751044604127672711c6d3441"
	for _, tc := range []struct {
		rsp     string
		wantSW  apdu.SW
		wantErr error
		want    string // in the message
	}{
		{rsp: "6982", wantSW: 0x6982, want: "PIN"},
		{rsp: "6985", wantSW: 0x6985, want: "conditions of use"},
		{rsp: "6a82", wantSW: 0x6A82, want: "not found"},
		{rsp: "6d00", wantSW: 0x6D00, want: "instruction"},
		{rsp: "6e00", wantSW: 0x6E00, want: "class"},
		{rsp: "9864", wantSW: 0x9864, want: "security context"},
		{rsp: "9804", wantSW: 0x9804, want: "security management"},
		{rsp: "9862", wantErr: isim.ErrMACFailure},
		{rsp: "db0411229000", wantErr: uicc.ErrMalformed, want: "RES"},
		{rsp: "9000", wantErr: uicc.ErrMalformed, want: "no data"},
		{rsp: okRsp + "08" + "0011223344556677" + "9000"}, // USIM with Kc
		{rsp: okRsp + "9108"},                             // proactive command pending
	} {
		t.Run(tc.rsp, func(t *testing.T) {
			c := openScripted(t, openScript(authCmd, tc.rsp))
			r, a := rndAutn(t)
			res, err := c.Authenticate(ctx, r, a)
			var ce *cards.Error
			switch {
			case tc.wantSW != 0:
				if !errors.As(err, &ce) || ce.SW != tc.wantSW || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want status %v", err, tc.wantSW)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				if tc.wantErr == isim.ErrMACFailure && errors.As(err, &ce) {
					t.Fatalf("MAC failure wrapped as a card error: %v", err)
				}
			default:
				if err != nil || len(res.RES) != 8 || res.RES[0] != 0xa5 {
					t.Fatalf("%x %v", res.RES, err)
				}
			}
		})
	}
}

// TestWrongLengthFallsBackToFCP: a card that answers 6700 to Le = 00 gets
// the exact sizes from the FCP.
func TestWrongLengthFallsBackToFCP(t *testing.T) {
	impi := "8007" + "61406578616d70"        // "a@examp"
	impuRec := "8003" + "7369" + "70" + "ff" // "sip" padded to 6
	s := openScript(
		"00a4000c026f02", "9000", "00b0000000", "6700",
		"00a40004026f0200", "620882024121800200099000", "00b0000009", impi+"9000",
		"00a4000c026f03", "9000", "00b0000000", "8003"+"612e62"+"9000",
		"00a4000c026f04", "9000", "00b2010400", "6700",
		"00a40004026f0400", "620b82054221000602"+"8002000c9000",
		"00b2010406", impuRec+"9000", "00b2020406", "ffffffffffff9000",
	)
	c := openScripted(t, s)
	id, err := c.Identity(ctx)
	if err != nil {
		t.Fatalf("%v (sent %x)", err, s.Sent)
	}
	if id.IMPI != "a@examp" || id.Domain != "a.b" || len(id.IMPUs) != 1 || id.IMPUs[0] != "sip" {
		t.Fatalf("%+v", id)
	}
	if s.Remaining() != 0 {
		t.Fatalf("%d exchanges left", s.Remaining())
	}
}

// TestNoEFDIR: without EF.DIR the partial AIDs are tried, ISIM first.
func TestNoEFDIR(t *testing.T) {
	s := apdutest.NewScript(
		"00a4000c023f00", "9000",
		"00a4000c022fe2", "6a82",
		"00a4000c023f00", "9000",
		"00a4000c022f00", "6a82",
		"00a4040407a000000087100400", "6a82",
		"00a4040407a000000087100200", "9000",
	)
	c, err := cards.Open(ctx, s, apdu.T1, cards.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Selected().Kind() != uicc.AppUSIM || c.ICCID() != "" || len(c.Applications()) != 0 {
		t.Fatalf("%v", c.Selected())
	}
}

func TestNoApplication(t *testing.T) {
	s := apdutest.NewScript(
		"00a4000c023f00", "9000",
		"00a4000c022fe2", "6a82",
		"00a4000c023f00", "9000",
		"00a4000c022f00", "9000",
		"00b2010400", "610f4f0da0000000041010aabbccddeeff"+"9000", // a payment app only
		"00b2020400", "6a83",
		"00a4040407a000000087100400", "6a82",
		"00a4040407a000000087100200", "6a82",
	)
	_, err := cards.Open(ctx, s, apdu.T1, cards.Options{})
	var ce *cards.Error
	if !errors.Is(err, cards.ErrNoApplication) || !errors.As(err, &ce) {
		t.Fatalf("err %v", err)
	}
}

func TestTransportFailure(t *testing.T) {
	gone := errors.New("reader removed")
	s := openScript()
	s.Exchanges = append(s.Exchanges, apdutest.Exchange{Cmd: apdutest.MustHex("00200001"), Err: gone})
	c := openScripted(t, s)
	_, err := c.Info(ctx)
	var ce *cards.Error
	if !errors.Is(err, gone) || !errors.As(err, &ce) {
		t.Fatalf("Info with a dead transport: %v", err)
	}
}

func TestMalformedEFDIR(t *testing.T) {
	s := apdutest.NewScript(
		"00a4000c023f00", "9000",
		"00a4000c022fe2", "6a82",
		"00a4000c023f00", "9000",
		"00a4000c022f00", "9000",
		"00b2010400", "61204f10a0"+"9000",
		"00b2020400", "6a83",
	)
	_, err := cards.Open(ctx, s, apdu.T1, cards.Options{})
	if !errors.Is(err, uicc.ErrMalformed) || !strings.Contains(err.Error(), "EF.DIR") {
		t.Fatalf("err %v", err)
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&cards.Error{Op: "VERIFY PIN", SW: 0x63C1, Err: &cards.PINError{Retries: 1}}, "card: VERIFY PIN: wrong PIN, 1 tries left (status 63c1 (verification failed, 1 tries left))"},
		{&cards.Error{Op: "AUTHENTICATE", SW: 0x6982}, "card: AUTHENTICATE: status 6982 (security status not satisfied: PIN not verified?)"},
		{&cards.Error{Op: "choose reader", Err: &cards.ReaderError{Want: "Gemalto", Readers: []string{"A 00", "B 01"}, Reason: "no reader matches"}},
			`card: choose reader: no reader matches "Gemalto"; readers: "A 00", "B 01"`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// TestICCIDRefused: an ICCID the card will not show does not stop the
// session; the card is only informational there.
func TestICCIDRefused(t *testing.T) {
	s := apdutest.NewScript(
		"00a4000c023f00", "9000",
		"00a4000c022fe2", "9000", "00b0000000", "6982",
		"00a4000c023f00", "9000",
		"00a4000c022f00", "9000",
		"00b2010400", dirISIM+"9000",
		"00b2020400", "6a83",
		"00a4040410"+isimAID+"00", "9000",
	)
	c, err := cards.Open(ctx, s, apdu.T1, cards.Options{})
	if err != nil || c.ICCID() != "" || c.Selected().Kind() != uicc.AppISIM {
		t.Fatalf("%v %v", c, err)
	}
}
