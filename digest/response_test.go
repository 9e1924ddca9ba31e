package digest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
)

func loadVectors(t testing.TB) []vectors.DigestVector {
	t.Helper()
	v := vectors.Digest()
	if len(v) < 8 {
		t.Fatalf("internal/vectors has %d digest vectors, want at least 8", len(v))
	}
	return v
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func nc(t testing.TB, v vectors.DigestVector) uint32 {
	n, err := strconv.ParseUint(v.NC, 16, 32)
	if err != nil {
		t.Fatalf("%s: nc %q: %v", v.Name, v.NC, err)
	}
	return uint32(n)
}

func credentials(t testing.TB, v vectors.DigestVector) Credentials {
	return Credentials{
		Username: v.Username,
		Realm:    v.Realm,
		Password: v.Password,
		Method:   v.Method,
		URI:      v.URI,
		Nonce:    v.Nonce,
		QOP:      v.QOP,
		NC:       nc(t, v),
		CNonce:   v.CNonce,
		Body:     []byte(v.Body),
	}
}

func TestResponseVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			c := credentials(t, v)
			if got := Response(c); got != v.Response {
				t.Errorf("Response = %s, want %s", got, v.Response)
			}
			var ha1, ha2 [hexLen]byte
			ha1Hex(&ha1, nil, c.Username, c.Realm, c.Password)
			ha2Hex(&ha2, nil, c.Method, c.URI, c.QOP, c.Body)
			if v.HA1 != "" && string(ha1[:]) != v.HA1 {
				t.Errorf("HA1 = %s, want %s", ha1, v.HA1)
			}
			if v.HA2 != "" && string(ha2[:]) != v.HA2 {
				t.Errorf("HA2 = %s, want %s", ha2, v.HA2)
			}
			if v.HEntityBody != "" {
				var hb [hexLen]byte
				md5Hex(&hb, []byte(v.Body))
				if string(hb[:]) != v.HEntityBody {
					t.Errorf("H(body) = %s, want %s", hb, v.HEntityBody)
				}
			}
			if string(appendNC(nil, c.NC)) != v.NC {
				t.Errorf("nc formats as %s, want %s", appendNC(nil, c.NC), v.NC)
			}
		})
	}
}

// TestVectorsEndToEnd runs each vector through the path the UE and the
// S-CSCF take: challenge → nonce → Answer → header text → parse → Verify.
func TestVectorsEndToEnd(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			ch := &Challenge{Realm: v.Realm, Nonce: v.Nonce, Algorithm: v.Algorithm}
			if v.QOP != "" {
				ch.QOP = []string{QOPAuth, QOPAuthInt}
			}
			ch2, err := ParseChallenge(ch.String())
			if err != nil {
				t.Fatalf("ParseChallenge(%q): %v", ch.String(), err)
			}
			if v.AKA != nil {
				rand, autn, err := AKANonce(ch2.Nonce)
				if err != nil {
					t.Fatalf("AKANonce: %v", err)
				}
				if rand != v.AKA.RAND || autn != v.AKA.AUTN {
					t.Errorf("AKANonce = %x, %x; want %x, %x", rand, autn, v.AKA.RAND, v.AKA.AUTN)
				}
				if got := EncodeAKANonce(rand, autn, nil); got != v.Nonce {
					t.Errorf("EncodeAKANonce = %s, want %s", got, v.Nonce)
				}
			}
			cr := credentials(t, v)
			cr.Realm, cr.Nonce = "", "" // Answer takes them from the challenge
			a, err := ch2.Answer(cr)
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			if a.Response != v.Response {
				t.Errorf("Answer response = %s, want %s", a.Response, v.Response)
			}
			text := a.String()
			got, err := ParseAuthorization(text)
			if err != nil {
				t.Fatalf("ParseAuthorization(%q): %v", text, err)
			}
			if err := Verify(ch2, got, v.Method, []byte(v.Body), v.Password); err != nil {
				t.Errorf("Verify(%q): %v", text, err)
			}
			wrong := append(bytes.Clone(v.Password), 'x')
			if err := Verify(ch2, got, v.Method, []byte(v.Body), wrong); !errors.Is(err, ErrMismatch) {
				t.Errorf("Verify with a wrong password = %v, want ErrMismatch", err)
			}
		})
	}
}

func TestAKAv2PasswordVectors(t *testing.T) {
	n := 0
	for _, v := range loadVectors(t) {
		if v.AKA == nil {
			continue
		}
		want := v.AKA.AKAv2Password
		if v.Algorithm == AKAv2MD5 {
			want = string(v.Password)
		}
		if want == "" {
			continue
		}
		n++
		got := AKAv2Password(v.AKA.RES, v.AKA.IK, v.AKA.CK)
		if string(got) != want {
			t.Errorf("%s: AKAv2Password = %s, want %s", v.Name, got, want)
		}
	}
	if n < 3 {
		t.Fatalf("only %d vectors carry an AKAv2 password", n)
	}
}

func TestAUTSVectors(t *testing.T) {
	n := 0
	for _, v := range loadVectors(t) {
		if v.AKA == nil || v.AKA.Resync == nil {
			continue
		}
		n++
		r := v.AKA.Resync
		auts := r.AUTS
		if got := EncodeAUTS(auts); got != r.Param {
			t.Errorf("%s: EncodeAUTS = %s, want %s", v.Name, got, r.Param)
		}
		back, err := DecodeAUTS(r.Param)
		if err != nil || back != auts {
			t.Errorf("%s: DecodeAUTS(%s) = %x, %v; want %x", v.Name, r.Param, back, err, r.AUTS)
		}
		// RFC 3310 §3.4 carries AUTS base64-encoded; UEs also send it
		// without the padding, which carries no information.
		if !strings.HasSuffix(r.Param, "=") {
			t.Fatalf("%s: auts parameter %s is not padded: the unpadded case below would test nothing", v.Name, r.Param)
		}
		unpadded := strings.TrimRight(r.Param, "=")
		back, err = DecodeAUTS(unpadded)
		if err != nil || back != auts {
			t.Errorf("%s: DecodeAUTS(%s) = %x, %v; want %x", v.Name, unpadded, back, err, r.AUTS)
		}
	}
	if n == 0 {
		t.Fatal("no sync-failure vector")
	}
}

// TestDecodeAUTSMilenage decodes the AUTS of every TS 35.208 test set
// (SQN_MS = the set's SQN), base64-encoded by the standard library with and
// without padding, as UEs send it (RFC 3310 §3.4).
func TestDecodeAUTSMilenage(t *testing.T) {
	for _, set := range vectors.Milenage() {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			s := enc.EncodeToString(set.AUTS[:])
			if got, err := DecodeAUTS(s); err != nil || got != set.AUTS {
				t.Errorf("%s: DecodeAUTS(%s) = %x, %v; want %x", set.Name, s, got, err, set.AUTS)
			}
		}
	}
}

// TestResponseSensitivity: every input of the digest changes it, and the
// inputs that the qop form leaves out do not.
func TestResponseSensitivity(t *testing.T) {
	base := Credentials{
		Username: "u", Realm: "r", Password: []byte("p"), Method: "REGISTER",
		URI: "sip:d", Nonce: "n", QOP: QOPAuthInt, NC: 1, CNonce: "c", Body: []byte("b"),
	}
	ref := Response(base)
	for name, mod := range map[string]func(*Credentials){
		"username": func(c *Credentials) { c.Username = "v" },
		"realm":    func(c *Credentials) { c.Realm = "s" },
		"password": func(c *Credentials) { c.Password = []byte("q") },
		"method":   func(c *Credentials) { c.Method = "INVITE" },
		"uri":      func(c *Credentials) { c.URI = "sip:e" },
		"nonce":    func(c *Credentials) { c.Nonce = "m" },
		"qop":      func(c *Credentials) { c.QOP = QOPAuth },
		"nc":       func(c *Credentials) { c.NC = 2 },
		"cnonce":   func(c *Credentials) { c.CNonce = "d" },
		"body":     func(c *Credentials) { c.Body = []byte("x") },
	} {
		c := base
		mod(&c)
		if Response(c) == ref {
			t.Errorf("changing %s does not change the response", name)
		}
	}
	// Without qop, nc, cnonce and body are not hashed; with auth, the body is not.
	noQOP := base
	noQOP.QOP = ""
	r := Response(noQOP)
	noQOP.NC, noQOP.CNonce, noQOP.Body = 7, "other", nil
	if Response(noQOP) != r {
		t.Error("without qop the response depends on nc, cnonce or body")
	}
	auth := base
	auth.QOP = QOPAuth
	r = Response(auth)
	auth.Body = []byte("other")
	if Response(auth) != r {
		t.Error("with qop=auth the response depends on the body")
	}
}

func TestResponseQOP(t *testing.T) {
	c := Credentials{Username: "u", Realm: "r", Method: "REGISTER", URI: "sip:d", Nonce: "n", NC: 1, CNonce: "c", Body: []byte("b")}
	c.QOP = QOPAuthInt
	lower := Response(c)
	c.QOP = "AUTH-INT"
	upper := Response(c)
	if upper == "" || upper == lower {
		// The qop is hashed as given, but recognised case-insensitively:
		// a different digest, still over the body.
		t.Fatalf("qop AUTH-INT: %q (auth-int: %q)", upper, lower)
	}
	c.Body = nil
	if Response(c) == upper {
		t.Error("qop AUTH-INT is not treated as auth-int (body not hashed)")
	}
	c.QOP = "auth-conf"
	if got := Response(c); got != "" {
		t.Errorf("unsupported qop: Response = %q, want \"\"", got)
	}
}

func TestAppendNC(t *testing.T) {
	for _, tc := range []struct {
		n    uint32
		want string
	}{{0, "00000000"}, {1, "00000001"}, {0xab, "000000ab"}, {0x10000000, "10000000"}, {0xffffffff, "ffffffff"}} {
		if got := string(appendNC(nil, tc.n)); got != tc.want {
			t.Errorf("appendNC(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func BenchmarkResponse(b *testing.B) {
	// AKAv1-MD5, qop=auth: the derived MILENAGE set 19 vector.
	var v vectors.DigestVector
	for _, x := range loadVectors(b) {
		if x.Algorithm == AKAv1MD5 && x.QOP == QOPAuth && x.AKA != nil && hex.EncodeToString(x.AKA.RAND[:]) == "81e92b6c0ee0e12ebceba8d92a99dfa5" && len(x.Password) != 0 {
			v = x
			break
		}
	}
	if v.Name == "" {
		b.Fatal("no AKAv1 qop=auth set-19 vector")
	}
	c := credentials(b, v)
	if Response(c) != v.Response {
		b.Fatal("wrong response")
	}
	b.ReportAllocs()
	for b.Loop() {
		Response(c)
	}
}
