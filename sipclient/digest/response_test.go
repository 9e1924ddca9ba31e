package digest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"testing"
)

// vector mirrors one entry of testdata/digest_vectors.json, copied from the
// project's shared spec folder (RFC 2617 §3.5, two external AKAv1-MD5
// vectors, and the set derived from MILENAGE test set 19).
type vector struct {
	Name          string `json:"name"`
	Username      string `json:"username"`
	Realm         string `json:"realm"`
	PasswordASCII string `json:"password_ascii"`
	PasswordHex   string `json:"password_hex"`
	Method        string `json:"method"`
	URI           string `json:"uri"`
	Nonce         string `json:"nonce"`
	NC            string `json:"nc"`
	CNonce        string `json:"cnonce"`
	QOP           string `json:"qop"`
	Algorithm     string `json:"algorithm"`
	Body          string `json:"body"`
	HBody         string `json:"H_entity_body"`
	HA1           string `json:"HA1"`
	HA2           string `json:"HA2"`
	Response      string `json:"response"`
	RAND          string `json:"RAND"`
	AUTN          string `json:"AUTN"`
	RES           string `json:"RES"`
	CK            string `json:"CK"`
	IK            string `json:"IK"`
	AUTS          string `json:"AUTS"`
	AUTSParam     string `json:"auts_param"`
	AKAv2Password string `json:"derived_AKAv2_password"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/digest_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 8 {
		t.Fatalf("testdata has %d vectors, want at least 8", len(f.Vectors))
	}
	return f.Vectors
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func unhex16(t testing.TB, s string) [16]byte {
	t.Helper()
	var a [16]byte
	if b := unhex(t, s); len(b) != 16 {
		t.Fatalf("%q: %d bytes, want 16", s, len(b))
	} else {
		copy(a[:], b)
	}
	return a
}

// password is the vector's digest password: ASCII text (MD5, AKAv2) or the
// raw octets (AKAv1 RES; empty for the sync-failure answer).
func (v vector) password(t testing.TB) []byte {
	if v.PasswordASCII != "" {
		return []byte(v.PasswordASCII)
	}
	return unhex(t, v.PasswordHex)
}

func (v vector) nc(t testing.TB) uint32 {
	n, err := strconv.ParseUint(v.NC, 16, 32)
	if err != nil {
		t.Fatalf("%s: nc %q: %v", v.Name, v.NC, err)
	}
	return uint32(n)
}

func (v vector) credentials(t testing.TB) Credentials {
	return Credentials{
		Username: v.Username,
		Realm:    v.Realm,
		Password: v.password(t),
		Method:   v.Method,
		URI:      v.URI,
		Nonce:    v.Nonce,
		QOP:      v.QOP,
		NC:       v.nc(t),
		CNonce:   v.CNonce,
		Body:     []byte(v.Body),
	}
}

func TestResponseVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			c := v.credentials(t)
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
			if v.HBody != "" {
				var hb [hexLen]byte
				md5Hex(&hb, []byte(v.Body))
				if string(hb[:]) != v.HBody {
					t.Errorf("H(body) = %s, want %s", hb, v.HBody)
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
			if v.RAND != "" {
				rand, autn, err := AKANonce(ch2.Nonce)
				if err != nil {
					t.Fatalf("AKANonce: %v", err)
				}
				if rand != unhex16(t, v.RAND) || autn != unhex16(t, v.AUTN) {
					t.Errorf("AKANonce = %x, %x; want %s, %s", rand, autn, v.RAND, v.AUTN)
				}
				if got := EncodeAKANonce(rand, autn, nil); got != v.Nonce {
					t.Errorf("EncodeAKANonce = %s, want %s", got, v.Nonce)
				}
			}
			cr := v.credentials(t)
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
			if err := Verify(ch2, got, v.Method, []byte(v.Body), v.password(t)); err != nil {
				t.Errorf("Verify(%q): %v", text, err)
			}
			wrong := append(bytes.Clone(v.password(t)), 'x')
			if err := Verify(ch2, got, v.Method, []byte(v.Body), wrong); !errors.Is(err, ErrMismatch) {
				t.Errorf("Verify with a wrong password = %v, want ErrMismatch", err)
			}
		})
	}
}

func TestAKAv2PasswordVectors(t *testing.T) {
	n := 0
	for _, v := range loadVectors(t) {
		want := v.AKAv2Password
		if v.Algorithm == AKAv2MD5 {
			want = v.PasswordASCII
		}
		if want == "" || v.RES == "" {
			continue
		}
		n++
		got := AKAv2Password(unhex(t, v.RES), unhex16(t, v.IK), unhex16(t, v.CK))
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
		if v.AUTS == "" {
			continue
		}
		n++
		var auts [14]byte
		copy(auts[:], unhex(t, v.AUTS))
		if got := EncodeAUTS(auts); got != v.AUTSParam {
			t.Errorf("%s: EncodeAUTS = %s, want %s", v.Name, got, v.AUTSParam)
		}
		back, err := DecodeAUTS(v.AUTSParam)
		if err != nil || back != auts {
			t.Errorf("%s: DecodeAUTS(%s) = %x, %v; want %s", v.Name, v.AUTSParam, back, err, v.AUTS)
		}
	}
	if n == 0 {
		t.Fatal("no sync-failure vector")
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
	var v vector
	for _, x := range loadVectors(b) {
		if x.Algorithm == AKAv1MD5 && x.QOP == QOPAuth && x.RAND == "81e92b6c0ee0e12ebceba8d92a99dfa5" && x.PasswordHex != "" {
			v = x
			break
		}
	}
	if v.Name == "" {
		b.Fatal("no AKAv1 qop=auth set-19 vector")
	}
	c := v.credentials(b)
	if Response(c) != v.Response {
		b.Fatal("wrong response")
	}
	b.ReportAllocs()
	for b.Loop() {
		Response(c)
	}
}
