package digest

import "testing"

func BenchmarkParseChallenge(b *testing.B) {
	s := `Digest realm="` + imsRealm + `", nonce="` + set19 + `", algorithm=AKAv1-MD5, qop="auth,auth-int"`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseChallenge(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthorizationString(b *testing.B) {
	a := Authorization{Username: impi, Realm: imsRealm, Nonce: set19, URI: imsURI, Response: set19Rs,
		Algorithm: AKAv1MD5, CNonce: "0a4f113b", QOP: "auth", NC: 1}
	b.ReportAllocs()
	for b.Loop() {
		_ = a.String()
	}
}

func BenchmarkVerify(b *testing.B) {
	ch := &Challenge{Realm: imsRealm, Nonce: set19, Algorithm: AKAv1MD5, QOP: []string{"auth"}}
	res := []byte{0x28, 0xd7, 0xb0, 0xf2, 0xa2, 0xec, 0x3d, 0xe5}
	a, err := ParseAuthorization(`Digest username="` + impi + `", realm="` + imsRealm + `", nonce="` + set19 + `", uri="` + imsURI +
		`", response="` + set19Rs + `", algorithm=AKAv1-MD5, cnonce="0a4f113b", qop=auth, nc=00000001`)
	if err != nil {
		b.Fatal(err)
	}
	if err := Verify(ch, a, "REGISTER", nil, res); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Verify(ch, a, "REGISTER", nil, res)
	}
}
