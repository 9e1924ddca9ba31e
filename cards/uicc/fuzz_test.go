package uicc

import (
	"bytes"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
)

// Seeds are the pySim encodings of uicc_vectors.json and the
// AUTHENTICATE responses of milenage_vectors.json.
func seedEFs(f *testing.F) {
	for _, e := range vectors.UICC().EFs {
		f.Add(e.Raw)
	}
}

func FuzzParseDIRRecord(f *testing.F) {
	seedEFs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		app, ok, err := ParseDIRRecord(b)
		if err != nil || !ok {
			return
		}
		enc, err := EncodeDIRRecord(app, 0)
		if err != nil {
			t.Fatalf("%x parsed to %v but does not encode: %v", b, app, err)
		}
		app2, ok, err := ParseDIRRecord(enc)
		if err != nil || !ok || !bytes.Equal(app2.AID, app.AID) || app2.Label != app.Label {
			t.Fatalf("%v → %x → %v %v", app, enc, app2, err)
		}
	})
}

func FuzzParseString(f *testing.F) {
	seedEFs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseString("EF.IMPU", b)
		if err != nil || s == "" {
			return
		}
		enc, err := EncodeString("EF.IMPU", s, 0)
		if err != nil {
			t.Fatal(err)
		}
		if s2, err := ParseString("EF.IMPU", enc); s2 != s || err != nil {
			t.Fatalf("%q → %x → %q %v", s, enc, s2, err)
		}
	})
}

func FuzzParsePCSCF(f *testing.F) {
	seedEFs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok, err := ParsePCSCF(b)
		if err != nil || !ok {
			return
		}
		enc, err := EncodePCSCF(p.Address, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := ParsePCSCF(enc); !ok || err != nil {
			t.Fatalf("%q → %x → %v", p.Address, enc, err)
		}
	})
}

func FuzzDecodeIMSI(f *testing.F) {
	seedEFs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		imsi, err := DecodeIMSI(b)
		if err != nil {
			return
		}
		enc, err := EncodeIMSI(imsi)
		if err != nil {
			t.Fatalf("%x decoded to %q which does not encode: %v", b, imsi, err)
		}
		if got, err := DecodeIMSI(enc); got != imsi || err != nil {
			t.Fatalf("%q → %x → %q %v", imsi, enc, got, err)
		}
	})
}

func FuzzDecodeICCID(f *testing.F) {
	f.Add(unhex(f, "989400002143658709f1"))
	f.Add(unhex(f, "98108832547698103214"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeICCID(b)
		if err != nil || len(s) > 20 {
			return
		}
		enc, err := EncodeICCID(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeICCID(enc); got != s || err != nil {
			t.Fatalf("%q → %x → %q %v", s, enc, got, err)
		}
	})
}

func FuzzParseAD(f *testing.F) {
	f.Add(unhex(f, "00000002"))
	f.Add(unhex(f, "80000003ff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ad, err := ParseAD(b)
		if err == nil && ad.MNCLength != 0 && ad.MNCLength != 2 && ad.MNCLength != 3 {
			t.Fatalf("%x: MNC length %d accepted", b, ad.MNCLength)
		}
	})
}

func FuzzParseAuthenticateResponse(f *testing.F) {
	for _, s := range vectors.Milenage() {
		f.Add(s.AuthRspOK)
		f.Add(s.AuthRspSync)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseAuthenticateResponse(b)
		if err != nil {
			return
		}
		var enc []byte
		if r.Sync != nil {
			enc = AppendAuthenticateSync(nil, &r.Sync.AUTS)
		} else if enc, err = AppendAuthenticateSuccess(nil, &r.Result, r.Kc); err != nil {
			t.Fatalf("%x parsed but does not encode: %v", b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("%x → %x", b, enc)
		}
	})
}

func FuzzParseFCP(f *testing.F) {
	for _, fcp := range []FCP{
		{Structure: StructTransparent, FID: 0x6F02, Size: 52},
		{Structure: StructLinearFixed, FID: 0x6F04, RecordLen: 60, NumRecords: 4},
	} {
		b, _ := EncodeFCP(fcp, nil)
		f.Add(b)
	}
	f.Add(unhex(f, "621c82054221003c0483026f04a5038001718a01058b036f0602800200f0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fcp, err := ParseFCP(b)
		if err != nil {
			return
		}
		if fcp.RecordLen < 0 || fcp.NumRecords < 0 || fcp.Size < 0 {
			t.Fatalf("%x: negative sizes %+v", b, fcp)
		}
	})
}
