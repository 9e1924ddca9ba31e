package digest

import (
	"encoding/base64"
	"errors"
	"reflect"
	"testing"
)

// Fuzz properties: the parsers never panic, every error wraps ErrMalformed
// or ErrUnsupported, and whatever parses formats back to text that parses to
// the same value.

func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		`Digest realm="ims.mnc001.mcc001.3gppnetwork.org", nonce="` + set19 + `", algorithm=AKAv1-MD5, qop="auth,auth-int"`,
		`Digest realm="R", nonce="` + set19 + `", algorithm=AKAv1-MD5, ck="` + set19CK + `", ik="` + set19IK + `", qop="auth,auth-int"`,
		`Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
		`digest REALM=r,NONCE=n=,Algorithm=akav2-md5,QOP=auth,stale=TRUE`,
		`Digest realm="a \"q\" \\", nonce="n", opaque=""`,
		`Basic realm="x"`,
		`Digest realm="x", nonce="y`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChallenge(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("ParseChallenge(%q): untyped error %v", s, err)
			}
			return
		}
		_, _ = c.Variant()
		text := c.String()
		c2, err := ParseChallenge(text)
		if err != nil {
			t.Fatalf("ParseChallenge(%q) ok, but its String %q does not parse: %v", s, text, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip of %q via %q\n got %#v\nwant %#v", s, text, c2, c)
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		`Digest username="` + impi + `", realm="` + imsRealm + `", uri="` + imsURI + `", nonce="", response=""`,
		`Digest username="` + impi + `",realm="` + imsRealm + `",nonce="` + set19 + `",uri="` + imsURI +
			`",response="` + set19Rs + `",algorithm=AKAv1-MD5,cnonce="0a4f113b",qop=auth,nc=00000001`,
		`Digest username="u", realm="r", nonce="n", uri="sip:d", response="", qop="auth-int", nc=0000000a, cnonce="c", auts="wpIP4kifW3qJJYGbYUs=", opaque="o"`,
		`Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
		`Digest username="u", nc=0000000A`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuthorization(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("ParseAuthorization(%q): untyped error %v", s, err)
			}
			return
		}
		text := a.String()
		a2, err := ParseAuthorization(text)
		if err != nil {
			t.Fatalf("ParseAuthorization(%q) ok, but its String %q does not parse: %v", s, text, err)
		}
		want := *a
		if want.QOP == "" { // String omits cnonce and nc without qop (RFC 2617)
			want.CNonce, want.NC = "", 0
		}
		if !reflect.DeepEqual(*a2, want) {
			t.Fatalf("round trip of %q via %q\n got %+v\nwant %+v", s, text, *a2, want)
		}
		// Verify must not panic on anything that parses.
		ch := &Challenge{Realm: a.Realm, Nonce: a.Nonce, Algorithm: a.Algorithm, Opaque: a.Opaque, HasOpaque: a.HasOpaque}
		if a.QOP != "" {
			ch.QOP = []string{a.QOP}
		}
		_ = Verify(ch, a, "REGISTER", nil, nil)
	})
}

func FuzzAKANonce(f *testing.F) {
	f.Add(set19)
	f.Add("AAECAwQFBgcICQoLDA0ODwAAAAAAAAAAAAAAAAAAAAA=")
	f.Add("gekrbA7g4S6866jZKpnfpbtS6Rx0esOrKlwj0V7jUdU")
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 48)))
	f.Add("dcd98b7102dd2f0e8b11d0f600bfb0c093")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		rand, autn, err := AKANonce(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("AKANonce(%q): untyped error %v", s, err)
			}
			return
		}
		r2, a2, err := AKANonce(EncodeAKANonce(rand, autn, nil))
		if err != nil || r2 != rand || a2 != autn {
			t.Fatalf("AKANonce(%q) = %x, %x, but re-encoding gives %x, %x, %v", s, rand, autn, r2, a2, err)
		}
	})
}
