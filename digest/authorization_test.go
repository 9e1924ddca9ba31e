package digest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	impi    = "001010000000001@ims.mnc001.mcc001.3gppnetwork.org"
	imsURI  = "sip:ims.mnc001.mcc001.3gppnetwork.org"
	set19Rs = "c2c6dd76738697b5475f891daa89115b" // response of the set-19 AKAv1 qop=auth vector
)

func TestAuthorizationString(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    Authorization
		want string
	}{{
		name: "initial IMS REGISTER (TS 24.229 5.1.1.2.2)",
		a:    Authorization{Username: impi, Realm: imsRealm, URI: imsURI},
		want: `Digest username="` + impi + `", realm="` + imsRealm + `", nonce="", uri="` + imsURI + `", response=""`,
	}, {
		name: "AKAv1 answer with qop",
		a: Authorization{Username: impi, Realm: imsRealm, Nonce: set19, URI: imsURI, Response: set19Rs,
			Algorithm: AKAv1MD5, CNonce: "0a4f113b", QOP: "auth", NC: 1},
		want: `Digest username="` + impi + `", realm="` + imsRealm + `", nonce="` + set19 + `", uri="` + imsURI +
			`", response="` + set19Rs + `", algorithm=AKAv1-MD5, cnonce="0a4f113b", qop=auth, nc=00000001`,
	}, {
		name: "sync failure with auts and opaque",
		a: Authorization{Username: impi, Realm: imsRealm, Nonce: set19, URI: imsURI, Response: "ff00e388f91094529ff01579fc6940da",
			Algorithm: AKAv1MD5, CNonce: "0a4f113b", QOP: "auth", NC: 0xab, Opaque: "op", HasOpaque: true,
			AUTS: "wpIP4kifW3qJJYGbYUs=", HasAUTS: true},
		want: `Digest username="` + impi + `", realm="` + imsRealm + `", nonce="` + set19 + `", uri="` + imsURI +
			`", response="ff00e388f91094529ff01579fc6940da", algorithm=AKAv1-MD5, cnonce="0a4f113b", qop=auth, nc=000000ab` +
			`, opaque="op", auts="wpIP4kifW3qJJYGbYUs="`,
	}, {
		name: "MAC failure: empty response, no qop",
		a:    Authorization{Username: impi, Realm: imsRealm, Nonce: set19, URI: imsURI, Algorithm: AKAv1MD5},
		want: `Digest username="` + impi + `", realm="` + imsRealm + `", nonce="` + set19 + `", uri="` + imsURI +
			`", response="", algorithm=AKAv1-MD5`,
	}, {
		name: "no qop: cnonce and nc not written",
		a:    Authorization{Username: "u", Realm: "r", Nonce: "n", URI: "sip:d", Response: "x", CNonce: "c", NC: 3},
		want: `Digest username="u", realm="r", nonce="n", uri="sip:d", response="x"`,
	}, {
		name: "escapes",
		a:    Authorization{Username: `a"b\c`, Realm: "r", URI: "sip:d"},
		want: `Digest username="a\"b\\c", realm="r", nonce="", uri="sip:d", response=""`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.String(); got != tc.want {
				t.Errorf("String()\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Authorization
	}{{
		name: "initial IMS REGISTER",
		in:   `Digest username="` + impi + `", realm="` + imsRealm + `", uri="` + imsURI + `", nonce="", response=""`,
		want: Authorization{Username: impi, Realm: imsRealm, URI: imsURI},
	}, {
		name: "UE answer without spaces, as phones send it",
		in: `Digest username="` + impi + `",realm="` + imsRealm + `",nonce="` + set19 + `",uri="` + imsURI +
			`",response="` + set19Rs + `",algorithm=AKAv1-MD5,cnonce="0a4f113b",qop=auth,nc=00000001`,
		want: Authorization{Username: impi, Realm: imsRealm, Nonce: set19, URI: imsURI, Response: set19Rs,
			Algorithm: AKAv1MD5, CNonce: "0a4f113b", QOP: "auth", NC: 1},
	}, {
		name: "quoted qop, integrity-protected from a P-CSCF, lowercase names mixed",
		in: `digest Username="u", REALM="r", nonce="n", uri="sip:d", response="` + strings.ToUpper(set19Rs) +
			`", qop="auth-int", NC=0000000a, cnonce="c", integrity-protected="ip-assoc-pending", auts="wpIP4kifW3qJJYGbYUs="`,
		want: Authorization{Username: "u", Realm: "r", Nonce: "n", URI: "sip:d", Response: strings.ToUpper(set19Rs),
			QOP: "auth-int", NC: 10, CNonce: "c", AUTS: "wpIP4kifW3qJJYGbYUs=", HasAUTS: true},
	}, {
		name: "RFC 2617 §3.5 example",
		in: "Digest username=\"Mufasa\",\r\n realm=\"testrealm@host.com\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n" +
			" uri=\"/dir/index.html\",\r\n qop=auth,\r\n nc=00000001,\r\n cnonce=\"0a4f113b\",\r\n" +
			" response=\"6629fae49393a05397450978507c4ef1\",\r\n opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
		want: Authorization{Username: "Mufasa", Realm: "testrealm@host.com", Nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
			URI: "/dir/index.html", QOP: "auth", NC: 1, CNonce: "0a4f113b", Response: "6629fae49393a05397450978507c4ef1",
			Opaque: "5ccc069c403ebaf9f0171e9517f40e41", HasOpaque: true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAuthorization(tc.in)
			if err != nil {
				t.Fatalf("ParseAuthorization(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("ParseAuthorization(%q)\n got %+v\nwant %+v", tc.in, *got, tc.want)
			}
		})
	}
}

func TestParseAuthorizationErrors(t *testing.T) {
	const ok = `username="u", realm="r", nonce="n", uri="sip:d", response=""`
	for _, tc := range []struct {
		name, in string
		is       error
		mention  string
	}{
		{"other scheme", `Basic dXNlcjpwYXNz`, ErrUnsupported, `"Basic"`},
		{"other scheme with params", `Bearer realm="r"`, ErrUnsupported, `"Bearer"`},
		{"missing username", `Digest realm="r", nonce="", uri="sip:d", response=""`, ErrMalformed, `"username"`},
		{"missing realm", `Digest username="u", nonce="", uri="sip:d", response=""`, ErrMalformed, `"realm"`},
		{"missing nonce", `Digest username="u", realm="r", uri="sip:d", response=""`, ErrMalformed, `"nonce"`},
		{"missing uri", `Digest username="u", realm="r", nonce="", response=""`, ErrMalformed, `"uri"`},
		{"missing response", `Digest username="u", realm="r", nonce="", uri="sip:d"`, ErrMalformed, `"response"`},
		{"response not hex", `Digest ` + strings.Replace(ok, `response=""`, `response="xyz"`, 1), ErrMalformed, `"response"`},
		{"response 31 digits", `Digest ` + strings.Replace(ok, `response=""`, `response="`+set19Rs[1:]+`"`, 1), ErrMalformed, `"response"`},
		{"qop without cnonce", `Digest ` + ok + `, qop=auth, nc=00000001`, ErrMalformed, `"cnonce"`},
		{"qop without nc", `Digest ` + ok + `, qop=auth, cnonce="c"`, ErrMalformed, `"nc"`},
		{"nc uppercase", `Digest ` + ok + `, qop=auth, cnonce="c", nc=0000000A`, ErrMalformed, `"nc"`},
		{"nc short", `Digest ` + ok + `, qop=auth, cnonce="c", nc=1`, ErrMalformed, `"nc"`},
		{"nc long", `Digest ` + ok + `, qop=auth, cnonce="c", nc=000000001`, ErrMalformed, `"nc"`},
		{"nc not hex", `Digest ` + ok + `, qop=auth, cnonce="c", nc=0000000g`, ErrMalformed, `"nc"`},
		{"duplicate response", `Digest ` + ok + `, response=""`, ErrMalformed, `"response"`},
		{"unterminated", `Digest username="u`, ErrMalformed, `"username"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAuthorization(tc.in)
			if !errors.Is(err, tc.is) {
				t.Fatalf("ParseAuthorization(%q) = %+v, %v; want %v", tc.in, a, err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %s", err, tc.mention)
			}
		})
	}
}

func TestAuthorizationRoundTrip(t *testing.T) {
	for _, a := range []Authorization{
		{Username: impi, Realm: imsRealm, URI: imsURI},
		{Username: impi, Realm: imsRealm, Nonce: set19, URI: imsURI, Response: set19Rs, Algorithm: AKAv2MD5,
			CNonce: "c", QOP: "auth-int", NC: 0xffffffff, Opaque: "", HasOpaque: true, AUTS: "wpIP4kifW3qJJYGbYUs=", HasAUTS: true},
		{Username: `we"ird\`, Realm: "a, b", Nonce: "=", URI: "sip:x;lr", Algorithm: "not a token", CNonce: "", QOP: "odd qop", NC: 0},
	} {
		got, err := ParseAuthorization(a.String())
		if err != nil {
			t.Errorf("ParseAuthorization(%q): %v", a.String(), err)
			continue
		}
		if !reflect.DeepEqual(*got, a) {
			t.Errorf("round trip of %q\n got %+v\nwant %+v", a.String(), *got, a)
		}
	}
}

func TestVerify(t *testing.T) {
	res := unhex(t, "28d7b0f2a2ec3de5") // set 19 RES
	body := []byte("v=0\r\n")
	ch := &Challenge{Realm: imsRealm, Nonce: set19, Algorithm: AKAv1MD5, QOP: []string{"auth", "auth-int"}, Opaque: "o", HasOpaque: true}
	answer := func(qop string) *Authorization {
		a, err := ch.Answer(Credentials{Username: impi, Password: res, Method: "REGISTER", URI: imsURI, QOP: qop, NC: 1, CNonce: "c", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, qop := range []string{"auth", "auth-int"} {
		if err := Verify(ch, answer(qop), "REGISTER", body, res); err != nil {
			t.Errorf("Verify of a correct %s answer: %v", qop, err)
		}
	}
	upper := answer("auth")
	upper.Response = strings.ToUpper(upper.Response)
	if err := Verify(ch, upper, "REGISTER", body, res); err != nil {
		t.Errorf("Verify of an uppercase-hex response: %v", err)
	}

	for _, tc := range []struct {
		name    string
		mod     func(a *Authorization, ch *Challenge) (method string, body, password []byte)
		is      error
		mention string
	}{
		{"wrong password", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			return "REGISTER", body, []byte("28d7b0f2a2ec3de5")
		}, ErrMismatch, "wrong response"},
		{"other method", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			return "INVITE", body, res
		}, ErrMismatch, "wrong response"},
		{"auth-int body changed", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			*a = *answer("auth-int")
			return "REGISTER", []byte("v=1\r\n"), res
		}, ErrMismatch, "wrong response"},
		{"realm", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.Realm = "other"
			return "REGISTER", body, res
		}, ErrMismatch, "realm"},
		{"nonce", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.Nonce = "other"
			return "REGISTER", body, res
		}, ErrMismatch, "nonce"},
		{"opaque missing", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.HasOpaque = false
			return "REGISTER", body, res
		}, ErrMismatch, "opaque"},
		{"algorithm", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.Algorithm = AKAv2MD5
			return "REGISTER", body, res
		}, ErrMismatch, "algorithm"},
		{"algorithm absent (MD5)", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.Algorithm = ""
			return "REGISTER", body, res
		}, ErrMismatch, "algorithm"},
		{"challenge algorithm unsupported", func(_ *Authorization, ch *Challenge) (string, []byte, []byte) {
			ch.Algorithm = "SHA-256"
			return "REGISTER", body, res
		}, ErrUnsupported, "SHA-256"},
		{"no qop though offered", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.QOP = ""
			return "REGISTER", body, res
		}, ErrMismatch, "qop"},
		{"qop not offered", func(a *Authorization, ch *Challenge) (string, []byte, []byte) {
			ch.QOP = []string{"auth-int"}
			return "REGISTER", body, res
		}, ErrMismatch, "qop"},
		{"qop unsupported", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.QOP = "auth-conf"
			return "REGISTER", body, res
		}, ErrUnsupported, "auth-conf"},
		{"empty response (MAC failure)", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.Response = ""
			return "REGISTER", body, res
		}, ErrMismatch, "empty"},
		{"auts (sync failure)", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.AUTS, a.HasAUTS = "wpIP4kifW3qJJYGbYUs=", true
			return "REGISTER", body, res
		}, ErrMismatch, "auts"},
		{"truncated response", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.Response = a.Response[:31]
			return "REGISTER", body, res
		}, ErrMismatch, "wrong response"},
		{"response with a trailing digit", func(a *Authorization, _ *Challenge) (string, []byte, []byte) {
			a.Response += "0"
			return "REGISTER", body, res
		}, ErrMismatch, "wrong response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := answer("auth")
			c := *ch
			method, b, pw := tc.mod(a, &c)
			err := Verify(&c, a, method, b, pw)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Verify = %v; want %v mentioning %q", err, tc.is, tc.mention)
			}
		})
	}
}
