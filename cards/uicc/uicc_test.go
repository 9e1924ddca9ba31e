package uicc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestEFVectors(t *testing.T) {
	v := vectors.UICC()
	if len(v.EFs) < 10 {
		t.Fatalf("only %d EF vectors", len(v.EFs))
	}
	for _, e := range v.EFs {
		t.Run(e.EF, func(t *testing.T) {
			raw := e.Raw
			var want, reenc string
			var got string
			var err error
			switch {
			case strings.Contains(e.EF, "IMPI"):
				want = e.Text
				got, err = ParseString("EF.IMPI", raw)
				b, _ := EncodeString("EF.IMPI", want, 0)
				reenc = hex.EncodeToString(b)
			case strings.Contains(e.EF, "DOMAIN"):
				want = e.Text
				got, err = ParseString("EF.DOMAIN", raw)
				b, _ := EncodeString("EF.DOMAIN", want, 0)
				reenc = hex.EncodeToString(b)
			case strings.Contains(e.EF, "IMPU"):
				want = e.Text
				got, err = ParseString("EF.IMPU", raw)
				b, _ := EncodeString("EF.IMPU", want, 0)
				reenc = hex.EncodeToString(b)
			case strings.Contains(e.EF, "P-CSCF"):
				want = e.Text
				var p PCSCF
				p, _, err = ParsePCSCF(raw)
				got = p.Address
				b, _ := EncodePCSCF(want, 0)
				reenc = hex.EncodeToString(b)
			case strings.Contains(e.EF, "EF.DIR"):
				want = hex.EncodeToString(e.AID) + " " + e.Label
				var app Application
				app, _, err = ParseDIRRecord(raw)
				got = hex.EncodeToString(app.AID) + " " + app.Label
				if e.Discretionary {
					reenc = hex.EncodeToString(raw) // the discretionary template is not re-encoded
				} else {
					b, _ := EncodeDIRRecord(app, 0)
					reenc = hex.EncodeToString(b)
				}
				wantKind := AppISIM
				if strings.Contains(e.EF, "USIM") {
					wantKind = AppUSIM
				}
				if app.Kind() != wantKind {
					t.Errorf("kind %v, want %v", app.Kind(), wantKind)
				}
			case strings.Contains(e.EF, "IMSI"):
				want = e.Text
				got, err = DecodeIMSI(raw)
				b, _ := EncodeIMSI(want)
				reenc = hex.EncodeToString(b)
			default:
				t.Fatalf("no decoder for %q", e.EF)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("decoded %q, want %q", got, want)
			}
			if reenc != hex.EncodeToString(e.Raw) {
				t.Errorf("encoded %s, want %x", reenc, e.Raw)
			}
		})
	}
	if KindOf(v.AIDs.ISIMPrefix) != AppISIM || KindOf(v.AIDs.USIMPrefix) != AppUSIM {
		t.Error("AID prefixes of the vectors are not classified")
	}
}

func TestAuthenticateVectors(t *testing.T) {
	n := 0
	for _, s := range vectors.Milenage() {
		n++
		t.Run(s.Name, func(t *testing.T) {
			rand := isim.RAND(s.RAND)
			autn := isim.AUTN(s.AUTN)
			var buf [34]byte
			cmd := AuthenticateCommand(0x00, rand, autn, &buf)
			enc, err := cmd.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, s.AuthCmd) {
				t.Errorf("command %x, want %x", enc, s.AuthCmd)
			}
			r2, a2, err := ParseAuthenticateData(cmd.Data)
			if err != nil || r2 != rand || a2 != autn {
				t.Errorf("command data does not parse back: %v", err)
			}

			ok, err := ParseAuthenticateResponse(s.AuthRspOK)
			if err != nil {
				t.Fatal(err)
			}
			if ok.Sync != nil || !bytes.Equal(ok.Result.RES, s.RES[:]) ||
				ok.Result.CK != s.CK || ok.Result.IK != s.IK || ok.Kc != nil {
				t.Errorf("success parsed as %+v", ok)
			}
			again, err := AppendAuthenticateSuccess(nil, &ok.Result, nil)
			if err != nil || !bytes.Equal(again, s.AuthRspOK) {
				t.Errorf("success re-encoded %x (%v)", again, err)
			}

			sf, err := ParseAuthenticateResponse(s.AuthRspSync)
			if err != nil {
				t.Fatal(err)
			}
			if sf.Sync == nil || sf.Sync.AUTS != s.AUTS {
				t.Errorf("sync failure parsed as %+v", sf)
			}
			if b := AppendAuthenticateSync(nil, &sf.Sync.AUTS); !bytes.Equal(b, s.AuthRspSync) {
				t.Errorf("sync re-encoded %x", b)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d sets carry AUTHENTICATE APDUs", n)
	}
}

func TestAuthenticateResponseUSIMKc(t *testing.T) {
	s := vectors.Milenage()[0]
	ck, ik := s.CK, s.IK
	kc := KcFromCKIK(&ck, &ik)
	// c3 computed by hand for set 1: CK1⊕CK2⊕IK1⊕IK2.
	ckb, ikb := s.CK, s.IK
	for i := range 8 {
		if kc[i] != ckb[i]^ckb[8+i]^ikb[i]^ikb[8+i] {
			t.Fatalf("Kc byte %d", i)
		}
	}
	rsp := append(s.AuthRspOK, 8)
	rsp = append(rsp, kc[:]...)
	r, err := ParseAuthenticateResponse(rsp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Kc, kc[:]) || !bytes.Equal(r.Result.RES, s.RES[:]) {
		t.Fatalf("USIM response parsed as %+v", r)
	}
}

func TestAuthenticateResponseMalformed(t *testing.T) {
	ok := "db08a54211d5e3ba50bf10b40ba9a3c58b2a05bbf0d987b21bf8cb10f769bcd751044604127672711c6d3441"
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"unknown tag", "dd00"},
		{"RES too short", "db03aabbcc"},
		{"RES 17", "db11" + strings.Repeat("00", 17)},
		{"RES truncated", "db08a54211"},
		{"CK missing", "db08a54211d5e3ba50bf"},
		{"CK of 15", "db08a54211d5e3ba50bf0f" + strings.Repeat("00", 15)},
		{"IK truncated", ok[:len(ok)-2]},
		{"trailing byte", ok + "00"},
		{"Kc of 7", ok + "07" + strings.Repeat("00", 7)},
		{"bytes after Kc", ok + "08" + strings.Repeat("00", 9)},
		{"sync short", "dc0e" + strings.Repeat("00", 13)},
		{"sync wrong length byte", "dc0d" + strings.Repeat("00", 14)},
		{"sync long", "dc0e" + strings.Repeat("00", 15)},
	} {
		_, err := ParseAuthenticateResponse(unhex(t, tc.in))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", tc.name, err)
		}
	}
}

func TestDecodersMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func([]byte) error
		in   string
	}{
		{"IMSI empty", func(b []byte) error { _, err := DecodeIMSI(b); return err }, "ffffffffffffffffff"},
		{"IMSI length 9", func(b []byte) error { _, err := DecodeIMSI(b); return err }, "092982608200002080"},
		{"IMSI length beyond data", func(b []byte) error { _, err := DecodeIMSI(b); return err }, "0829826082"},
		{"IMSI type 2", func(b []byte) error { _, err := DecodeIMSI(b); return err }, "082a82608200002080"},
		{"IMSI hex digit", func(b []byte) error { _, err := DecodeIMSI(b); return err }, "0829826082000020a0"},
		{"IMSI parity", func(b []byte) error { _, err := DecodeIMSI(b); return err }, "082182608200002080"},
		{"IMSI digit after filler", func(b []byte) error { _, err := DecodeIMSI(b); return err }, "0829f26082000020f0"},
		{"AD short", func(b []byte) error { _, err := ParseAD(b); return err }, "0000"},
		{"AD MNC 4", func(b []byte) error { _, err := ParseAD(b); return err }, "00000004"},
		{"ICCID empty", func(b []byte) error { _, err := DecodeICCID(b); return err }, "ffff"},
		{"ICCID letter", func(b []byte) error { _, err := DecodeICCID(b); return err }, "98a0"},
		{"string tag 81", func(b []byte) error { _, err := ParseString("EF.IMPI", b); return err }, "810161"},
		{"string truncated", func(b []byte) error { _, err := ParseString("EF.IMPI", b); return err }, "800561"},
		{"string control char", func(b []byte) error { _, err := ParseString("EF.IMPI", b); return err }, "80020a61"},
		{"string not UTF-8", func(b []byte) error { _, err := ParseString("EF.IMPI", b); return err }, "8001ff"},
		{"DIR no 61", func(b []byte) error { _, _, err := ParseDIRRecord(b); return err }, "4f05a000000087"},
		{"DIR no AID", func(b []byte) error { _, _, err := ParseDIRRecord(b); return err }, "6103500161ffff"},
		{"DIR AID 4", func(b []byte) error { _, _, err := ParseDIRRecord(b); return err }, "61064f04a0000000"},
		{"DIR AID 17", func(b []byte) error { _, _, err := ParseDIRRecord(b); return err }, "61134f11" + strings.Repeat("a0", 17)},
		{"DIR bad length form", func(b []byte) error { _, _, err := ParseDIRRecord(b); return err }, "6185"},
		{"P-CSCF IPv4 of 5", func(b []byte) error { _, _, err := ParsePCSCF(b); return err }, "800601c0a80c2201"},
		{"P-CSCF IPv6 marked 01", func(b []byte) error { _, _, err := ParsePCSCF(b); return err }, "801101fe800000000000000042d7fffe530335"},
		{"P-CSCF type 07", func(b []byte) error { _, _, err := ParsePCSCF(b); return err }, "800207aa"},
		{"FCP no 62", func(b []byte) error { _, err := ParseFCP(b); return err }, "6303820141"},
		{"FCP no descriptor", func(b []byte) error { _, err := ParseFCP(b); return err }, "62048302 6f07"},
		{"FCP record descriptor short", func(b []byte) error { _, err := ParseFCP(b); return err }, "6204820242 21"},
		{"FCP size 5 bytes", func(b []byte) error { _, err := ParseFCP(b); return err }, "620b82024121800500000000ff"},
	} {
		if err := tc.fn(unhex(t, tc.in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", tc.name, err)
		}
	}
}

func TestUnusedContent(t *testing.T) {
	if s, err := ParseString("EF.IMPU", unhex(t, "ffffffff")); s != "" || err != nil {
		t.Errorf("FF record: %q %v", s, err)
	}
	if s, err := ParseString("EF.IMPU", unhex(t, "8000ffff")); s != "" || err != nil {
		t.Errorf("80 00 record: %q %v", s, err)
	}
	if _, ok, err := ParseDIRRecord(unhex(t, "ffffffff")); ok || err != nil {
		t.Errorf("FF DIR record: %v %v", ok, err)
	}
	if _, ok, err := ParsePCSCF(unhex(t, "ffff")); ok || err != nil {
		t.Errorf("FF P-CSCF record: %v %v", ok, err)
	}
	// FF padding after the TLV is not data.
	if s, err := ParseString("EF.IMPI", unhex(t, "800161ffff")); s != "a" || err != nil {
		t.Errorf("padded: %q %v", s, err)
	}
}

func TestIMSIRoundTrip(t *testing.T) {
	for _, imsi := range []string{"001010123456789", "31041012345678", "2", "23415099999999"} {
		b, err := EncodeIMSI(imsi)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 9 {
			t.Fatalf("%s: %d bytes", imsi, len(b))
		}
		got, err := DecodeIMSI(b)
		if err != nil || got != imsi {
			t.Errorf("%s → %x → %q %v", imsi, b, got, err)
		}
	}
	// 14 digits: odd-parity bit clear, last high nibble F (TS 31.102 §4.2.2).
	b, _ := EncodeIMSI("31041012345678")
	if b[0] != 8 || b[1]&0x0F != 0x01 || b[8]>>4 != 0x0F {
		t.Errorf("14-digit layout %x", b)
	}
	if _, err := EncodeIMSI("00101a"); err == nil {
		t.Error("letter accepted")
	}
}

func TestICCID(t *testing.T) {
	// 8949 0000 ... stored nibble-swapped: 98 94 00 ...
	b, err := EncodeICCID("8949000012345678901")
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(b) != "989400002143658709f1" {
		t.Fatalf("encoded %x", b)
	}
	s, err := DecodeICCID(b)
	if err != nil || s != "8949000012345678901" {
		t.Fatalf("decoded %q %v", s, err)
	}
}

func TestADAndServices(t *testing.T) {
	ad, err := ParseAD(unhex(t, "00000003"))
	if err != nil || ad.MNCLength != 3 {
		t.Fatalf("%+v %v", ad, err)
	}
	ad, err = ParseAD(unhex(t, "800000"))
	if err != nil || ad.MNCLength != 0 || ad.OperationMode != 0x80 {
		t.Fatalf("3-byte AD: %+v %v", ad, err)
	}
	if got := Services(unhex(t, "0502")); !reflect.DeepEqual(got, []int{1, 3, 10}) {
		t.Fatalf("services %v", got)
	}
	tbl, err := EncodeServices(2, 1, 3, 10)
	if err != nil || hex.EncodeToString(tbl) != "0502" {
		t.Fatalf("EncodeServices %x %v", tbl, err)
	}
	if _, err := EncodeServices(1, 9); err == nil {
		t.Fatal("service 9 fits in 1 byte?")
	}
}

func TestPINBlock(t *testing.T) {
	blk, err := PINBlock([]byte("1234"))
	if err != nil || hex.EncodeToString(blk[:]) != "31323334ffffffff" {
		t.Fatalf("%x %v", blk, err)
	}
	for _, bad := range []string{"123", "123456789", "12a4", ""} {
		if _, err := PINBlock([]byte(bad)); err == nil || strings.Contains(err.Error(), bad) && bad != "" {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestFCPRoundTrip(t *testing.T) {
	for _, f := range []FCP{
		{Structure: StructTransparent, FID: 0x6F02, Size: 52},
		{Structure: StructLinearFixed, FID: 0x6F04, RecordLen: 60, NumRecords: 4},
		{DF: true},
	} {
		var aid []byte
		if f.DF {
			aid = ISIMPrefix
		}
		b, err := EncodeFCP(f, aid)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseFCP(b)
		if err != nil {
			t.Fatal(err)
		}
		want := f
		if want.Structure == StructLinearFixed {
			want.Size = f.RecordLen * f.NumRecords
		}
		if got != want {
			t.Errorf("%+v → %x → %+v", f, b, got)
		}
	}
	// An FCP laid out as cards return it, with a proprietary A5 object.
	real := unhex(t, "621c8205422100 3c04 83026f04 a5038001 718a0105 8b036f0602 800200f0")
	f, err := ParseFCP(real)
	if err != nil || f.RecordLen != 60 || f.NumRecords != 4 || f.FID != 0x6F04 || f.Size != 240 {
		t.Fatalf("%+v %v", f, err)
	}
}
