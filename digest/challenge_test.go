package digest

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

const (
	imsRealm = "ims.mnc001.mcc001.3gppnetwork.org"
	set19    = "gekrbA7g4S6866jZKpnfpbtS6Rx0esOrKlwj0V7jUdU="
	set19CK  = "5349fbe098649f948f5d2e973a81c00f"
	set19IK  = "9744871ad32bf9bbd1dd5ce54e3e2e5a"
)

func TestParseChallenge(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Challenge
	}{{
		name: "IMS 401 as a P-CSCF forwards it",
		in:   `Digest realm="` + imsRealm + `", nonce="` + set19 + `", algorithm=AKAv1-MD5, qop="auth,auth-int"`,
		want: Challenge{Realm: imsRealm, Nonce: set19, Algorithm: "AKAv1-MD5", QOP: []string{"auth", "auth-int"}},
	}, {
		name: "Kamailio S-CSCF to P-CSCF, with ck and ik",
		in:   `Digest realm="` + imsRealm + `", nonce="` + set19 + `", algorithm=AKAv1-MD5, ck="` + set19CK + `", ik="` + set19IK + `", qop="auth,auth-int"`,
		want: Challenge{Realm: imsRealm, Nonce: set19, Algorithm: "AKAv1-MD5", QOP: []string{"auth", "auth-int"}, CK: set19CK, IK: set19IK},
	}, {
		name: "ck,ik without spaces",
		in:   `Digest realm="r",nonce="n",algorithm=AKAv1-MD5,ck="` + set19CK + `",ik="` + set19IK + `"`,
		want: Challenge{Realm: "r", Nonce: "n", Algorithm: "AKAv1-MD5", CK: set19CK, IK: set19IK},
	}, {
		name: "RFC 2617 §3.5 example",
		in: "Digest\r\n realm=\"testrealm@host.com\",\r\n qop=\"auth,auth-int\",\r\n" +
			" nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
		want: Challenge{Realm: "testrealm@host.com", Nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
			QOP: []string{"auth", "auth-int"}, Opaque: "5ccc069c403ebaf9f0171e9517f40e41", HasOpaque: true},
	}, {
		name: "case-insensitive scheme and names, unquoted values, algorithm case kept",
		in:   `DIGEST REALM=ims.example.org,NONCE=` + set19 + `,Algorithm=akav2-md5,QOP=auth`,
		want: Challenge{Realm: "ims.example.org", Nonce: set19, Algorithm: "akav2-md5", QOP: []string{"auth"}},
	}, {
		name: "spaces and tabs around = and , and in the qop list; any order",
		in:   "digest  qop = \" auth , auth-int \" ,\tnonce = \"n\" ,  realm\t=\t\"r\"  , opaque = \"o\" ,stale=TRUE",
		want: Challenge{Realm: "r", Nonce: "n", QOP: []string{"auth", "auth-int"}, Opaque: "o", HasOpaque: true, Stale: true},
	}, {
		name: "backslash escapes in quoted strings",
		in:   `Digest realm="a \"quoted\" realm\\x", nonce="n\,o"`,
		want: Challenge{Realm: `a "quoted" realm\x`, Nonce: "n,o"},
	}, {
		name: "comma inside a quoted value",
		in:   `Digest realm="r, with comma", nonce="n"`,
		want: Challenge{Realm: "r, with comma", Nonce: "n"},
	}, {
		name: "empty opaque is present",
		in:   `Digest realm="r", nonce="n", opaque=""`,
		want: Challenge{Realm: "r", Nonce: "n", HasOpaque: true},
	}, {
		name: "empty realm is present",
		in:   `Digest realm="", nonce="n"`,
		want: Challenge{Nonce: "n"},
	}, {
		name: "unknown parameters ignored, empty list elements tolerated",
		in:   `Digest , realm="r",, domain="sip:ims.example.org", nonce="n", integrity-key="x", ,`,
		want: Challenge{Realm: "r", Nonce: "n"},
	}, {
		name: "stale other than true is false",
		in:   `Digest realm="r", nonce="n", stale=maybe`,
		want: Challenge{Realm: "r", Nonce: "n"},
	}, {
		name: "stale quoted true",
		in:   `Digest realm="r", nonce="n", stale="true"`,
		want: Challenge{Realm: "r", Nonce: "n", Stale: true},
	}, {
		name: "unknown algorithm is parsed",
		in:   `Digest realm="r", nonce="n", algorithm=SHA-256`,
		want: Challenge{Realm: "r", Nonce: "n", Algorithm: "SHA-256"},
	}, {
		name: "64 parameters is the limit",
		in:   `Digest realm="r", nonce="n"` + manyParams(62),
		want: Challenge{Realm: "r", Nonce: "n"},
	}, {
		name: "UTF-8 in a quoted realm",
		in:   `Digest realm="réseau", nonce="n"`,
		want: Challenge{Realm: "réseau", Nonce: "n"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChallenge(tc.in)
			if err != nil {
				t.Fatalf("ParseChallenge(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("ParseChallenge(%q)\n got %#v\nwant %#v", tc.in, *got, tc.want)
			}
		})
	}
}

// manyParams returns n distinct extension parameters ", x0=1, x1=1, ...".
func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ", x%d=1", i)
	}
	return b.String()
}

func TestParseChallengeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		is       error
		mention  string // the error must name this
	}{
		{"empty", "", ErrMalformed, "empty"},
		{"blank", "  \t", ErrMalformed, "empty"},
		{"other scheme", `Basic realm="r"`, ErrUnsupported, `"Basic"`},
		{"scheme only", "Digest", ErrMalformed, `"realm"`},
		{"missing realm", `Digest nonce="n"`, ErrMalformed, `"realm"`},
		{"missing nonce", `Digest realm="r", qop="auth"`, ErrMalformed, `"nonce"`},
		{"unterminated quote", `Digest realm="r", nonce="n`, ErrMalformed, `"nonce"`},
		{"dangling backslash", `Digest realm="r", nonce="n\`, ErrMalformed, `"nonce"`},
		{"duplicate", `Digest realm="r", nonce="n", Realm="s"`, ErrMalformed, `"realm"`},
		{"duplicate nonce", `Digest realm="r", nonce="n", nonce="m"`, ErrMalformed, `"nonce"`},
		{"no value", `Digest realm, nonce="n"`, ErrMalformed, `"realm"`},
		{"empty unquoted", `Digest realm=, nonce="n"`, ErrMalformed, `"realm"`},
		{"junk after quoted", `Digest realm="r"x, nonce="n"`, ErrMalformed, `"realm"`},
		{"missing comma", `Digest realm="r" nonce="n"`, ErrMalformed, `"realm"`},
		{"CR LF injected in quoted", "Digest realm=\"r\r\nVia: x\", nonce=\"n\"", ErrMalformed, `"realm"`},
		{"escaped LF", "Digest realm=\"r\\\n\", nonce=\"n\"", ErrMalformed, `"realm"`},
		{"NUL unquoted", "Digest realm=r\x00, nonce=n", ErrMalformed, `"realm"`},
		{"empty qop list", `Digest realm="r", nonce="n", qop=""`, ErrMalformed, `"qop"`},
		{"comma after scheme", `Digest,realm="r",nonce="n"`, ErrMalformed, "scheme"},
		{"quote in name position", `Digest "realm"="r"`, ErrMalformed, "parameter name"},
		{"quote inside unquoted", `Digest realm=a"b", nonce=n`, ErrMalformed, `"realm"`},
		{"too many parameters", `Digest realm="r", nonce="n"` + manyParams(63), ErrMalformed, "more than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseChallenge(tc.in)
			if !errors.Is(err, tc.is) {
				t.Fatalf("ParseChallenge(%q) = %+v, %v; want %v", tc.in, c, err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %s", err, tc.mention)
			}
		})
	}
}

// TestChallengeStringKamailio: the S-CSCF's 401, with the ck and ik
// parameters of TS 24.229 §7.2A.1, must be byte-exact what Kamailio's
// ims_ipsec_pcscf reads (README, "Interop").
func TestChallengeStringKamailio(t *testing.T) {
	c := Challenge{Realm: "R", Nonce: set19, Algorithm: AKAv1MD5, QOP: []string{"auth", "auth-int"}, CK: set19CK, IK: set19IK}
	want := `Digest realm="R", nonce="` + set19 + `", algorithm=AKAv1-MD5, ck="` + set19CK + `", ik="` + set19IK + `", qop="auth,auth-int"`
	if got := c.String(); got != want {
		t.Errorf("String()\n got %s\nwant %s", got, want)
	}
}

func TestChallengeRoundTrip(t *testing.T) {
	for _, c := range []Challenge{
		{Realm: imsRealm, Nonce: set19, Algorithm: AKAv1MD5, QOP: []string{"auth"}},
		{Realm: "r", Nonce: "n", Algorithm: AKAv2MD5, QOP: []string{"auth", "auth-int"}, Opaque: "o", HasOpaque: true, Stale: true},
		{Realm: "", Nonce: "", HasOpaque: true},
		{Realm: `q"uo\te`, Nonce: "a, b", Algorithm: "not a token", CK: "c", IK: "i"},
		{Realm: "r", Nonce: "n", QOP: []string{"auth-conf"}},
	} {
		got, err := ParseChallenge(c.String())
		if err != nil {
			t.Errorf("ParseChallenge(%q): %v", c.String(), err)
			continue
		}
		if !reflect.DeepEqual(*got, c) {
			t.Errorf("round trip of %q\n got %#v\nwant %#v", c.String(), *got, c)
		}
	}
}

// TestChallengeStringNoInjection: a value holding CR LF cannot add a header.
func TestChallengeStringNoInjection(t *testing.T) {
	c := Challenge{Realm: "r\r\nX-Evil: 1", Nonce: "n\n"}
	s := c.String()
	if strings.ContainsAny(s, "\r\n") {
		t.Fatalf("String() = %q holds CR or LF", s)
	}
	if _, err := ParseChallenge(s); err != nil {
		t.Errorf("String() = %q does not parse: %v", s, err)
	}
}

func TestChallengeLogValueRedacts(t *testing.T) {
	c := &Challenge{Realm: "r", Nonce: "n", CK: set19CK, IK: set19IK}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("401", "challenge", c)
	if strings.Contains(b.String(), set19CK) || strings.Contains(b.String(), set19IK) {
		t.Errorf("log line holds CK or IK: %s", b.String())
	}
	if !strings.Contains(b.String(), `nonce=\"n\"`) {
		t.Errorf("log line lacks the challenge: %s", b.String())
	}
}

func TestVariant(t *testing.T) {
	for _, tc := range []struct {
		alg  string
		want Variant
	}{
		{"", VariantMD5}, {"MD5", VariantMD5}, {"md5", VariantMD5},
		{"AKAv1-MD5", VariantAKAv1}, {"akav1-md5", VariantAKAv1}, {"AKAV1-MD5", VariantAKAv1},
		{"AKAv2-MD5", VariantAKAv2}, {"akav2-md5", VariantAKAv2},
	} {
		got, err := (&Challenge{Algorithm: tc.alg}).Variant()
		if err != nil || got != tc.want {
			t.Errorf("Variant(%q) = %v, %v; want %v", tc.alg, got, err, tc.want)
		}
	}
	for _, alg := range []string{"MD5-sess", "AKAv1-MD5-sess", "SHA-256", "AKAv1-SHA-256", "AKAv1", " MD5"} {
		_, err := ParseVariant(alg)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), alg) {
			t.Errorf("ParseVariant(%q) = %v; want ErrUnsupported naming it", alg, err)
		}
	}
	if !VariantAKAv1.AKA() || !VariantAKAv2.AKA() || VariantMD5.AKA() {
		t.Error("AKA() wrong")
	}
	for v, s := range map[Variant]string{VariantMD5: MD5, VariantAKAv1: AKAv1MD5, VariantAKAv2: AKAv2MD5, 0: "Variant(0)"} {
		if v.String() != s {
			t.Errorf("%d.String() = %q, want %q", v, v.String(), s)
		}
	}
}

func TestSelectQOP(t *testing.T) {
	for _, tc := range []struct {
		offered   []string
		preferred string
		want      string
		err       error
	}{
		{nil, QOPAuth, "", nil},
		{[]string{"auth", "auth-int"}, QOPAuth, "auth", nil},
		{[]string{"auth", "auth-int"}, QOPAuthInt, "auth-int", nil},
		{[]string{"auth-int"}, QOPAuth, "auth-int", nil},
		{[]string{"AUTH"}, QOPAuth, "AUTH", nil},
		{[]string{"auth-conf", "auth"}, "", "auth", nil},
		{[]string{"auth-conf"}, QOPAuth, "", ErrUnsupported},
	} {
		got, err := (&Challenge{QOP: tc.offered}).SelectQOP(tc.preferred)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("SelectQOP(%q) of %q = %q, %v; want %q, %v", tc.preferred, tc.offered, got, err, tc.want, tc.err)
		}
	}
}

func TestAnswerErrors(t *testing.T) {
	cr := Credentials{Username: "u", Method: "REGISTER", URI: "sip:d", QOP: QOPAuth, NC: 1, CNonce: "c"}
	for _, tc := range []struct {
		name string
		ch   Challenge
		qop  string
	}{
		{"unsupported algorithm", Challenge{Realm: "r", Nonce: "n", Algorithm: "MD5-sess", QOP: []string{"auth"}}, QOPAuth},
		{"qop not offered", Challenge{Realm: "r", Nonce: "n", QOP: []string{"auth-int"}}, QOPAuth},
		{"qop when none offered", Challenge{Realm: "r", Nonce: "n"}, QOPAuth},
		{"unknown qop", Challenge{Realm: "r", Nonce: "n", QOP: []string{"auth-conf"}}, "auth-conf"},
	} {
		c := cr
		c.QOP = tc.qop
		if a, err := tc.ch.Answer(c); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: Answer = %+v, %v; want ErrUnsupported", tc.name, a, err)
		}
	}
}

func TestAnswerEchoes(t *testing.T) {
	ch := &Challenge{Realm: "r", Nonce: "n", Algorithm: "akav1-md5", Opaque: "o", HasOpaque: true}
	a, err := ch.Answer(Credentials{Username: "u", Realm: "ignored", Nonce: "ignored", Method: "REGISTER", URI: "sip:d", NC: 5, CNonce: "c"})
	if err != nil {
		t.Fatal(err)
	}
	want := Authorization{Username: "u", Realm: "r", Nonce: "n", URI: "sip:d", Algorithm: "akav1-md5", Opaque: "o", HasOpaque: true,
		Response: Response(Credentials{Username: "u", Realm: "r", Nonce: "n", Method: "REGISTER", URI: "sip:d"})}
	if !reflect.DeepEqual(*a, want) {
		t.Errorf("Answer without qop\n got %+v\nwant %+v", *a, want)
	}
}
