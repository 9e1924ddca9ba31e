package sipclient

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/digest"
)

func parseResponse(t testing.TB, text string) *sip.Response {
	t.Helper()
	m, err := sip.ParseMessage([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	res, ok := m.(*sip.Response)
	if !ok {
		t.Fatalf("not a response: %T", m)
	}
	return res
}

const head = "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKx\nFrom: <sip:a@x>;tag=1\nTo: <sip:a@x>;tag=2\nCall-ID: c\nCSeq: 2 REGISTER\n"

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"<sip:a@x>, <tel:+1555>"}, []string{"<sip:a@x>", "<tel:+1555>"}},
		{[]string{"<sip:a@x>", "<sip:b@x>"}, []string{"<sip:a@x>", "<sip:b@x>"}},
		{[]string{`"Doe, John" <sip:j@x>;p=1, sip:k@x`}, []string{`"Doe, John" <sip:j@x>;p=1`, "sip:k@x"}},
		{[]string{"<sip:a@x;param=a,b>"}, []string{"<sip:a@x;param=a,b>"}},
		{[]string{`"q\"uote, x" <sip:q@x>`}, []string{`"q\"uote, x" <sip:q@x>`}},
		{[]string{" , ,<sip:a@x> ,"}, []string{"<sip:a@x>"}},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := splitList(tt.in...); !slices.Equal(got, tt.want) {
			t.Errorf("splitList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURIOf(t *testing.T) {
	tests := map[string]string{
		"<sip:orig@scscf.x;lr>":       "sip:orig@scscf.x;lr",
		`"Alice" <sip:alice@x>;tag=1`: "sip:alice@x",
		"sip:bob@x;user=phone":        "sip:bob@x",
		"<tel:+15551230001>":          "tel:+15551230001",
		"  tel:+1  ":                  "tel:+1",
		"<sip:unterminated@x":         "sip:unterminated@x",
	}
	for in, want := range tests {
		if got := uriOf(in); got != want {
			t.Errorf("uriOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOwnBinding(t *testing.T) {
	ue := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name    string
		headers string
		want    time.Duration
		bound   bool
	}{
		{"own contact among others", "Contact: <sip:other@192.0.2.9:5062>;expires=100, <sip:u@192.0.2.1:5062>;expires=1800\nExpires: 900\n", 1800 * time.Second, true},
		{"contact without expires", "Contact: <sip:u@192.0.2.1:5062>\nExpires: 300\n", 300 * time.Second, true},
		{"quoted expires", "Contact: <sip:u@192.0.2.1:5062>;EXPIRES=\"60\"\n", 60 * time.Second, true},
		{"own contact, nothing else: as asked", "Contact: <sip:u@192.0.2.1:5062>\n", 42 * time.Second, true},
		{"own contact, garbage Expires: as asked", "Contact: <sip:u@192.0.2.1:5062>\nExpires: soon\n", 42 * time.Second, true},
		{"own contact, expires=0", "Contact: <sip:u@192.0.2.1:5062>;expires=0\n", 0, true},
		// RFC 3261 §10.2.4: a lone Contact that is not the UE's is another
		// binding; no Contact at all lists no binding of the UE.
		{"single other contact", "Contact: <sip:u@10.0.0.1:7000>;expires=1200\n", 0, false},
		{"other port", "Contact: <sip:u@192.0.2.1:5063>;expires=1200\n", 0, false},
		{"Expires header only", "Expires: 600\n", 0, false},
		{"nothing", "", 0, false},
		{"compact form", "m: <sip:u@192.0.2.1:5062>;expires=77\n", 77 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := parseResponse(t, head+tt.headers+"Content-Length: 0\n\n")
			if got, bound := ownBinding(res, ue, 5062, 42*time.Second); got != tt.want || bound != tt.bound {
				t.Errorf("got %s, bound %v; want %s, %v", got, bound, tt.want, tt.bound)
			}
		})
	}
}

func TestRefreshDelay(t *testing.T) {
	tests := []struct{ granted, want time.Duration }{
		{600000 * time.Second, 599400 * time.Second},
		{3600 * time.Second, 3000 * time.Second},
		{1201 * time.Second, 601 * time.Second},
		{1200 * time.Second, 600 * time.Second},
		{600 * time.Second, 300 * time.Second},
		{20 * time.Second, 10 * time.Second},
		// The floor: a hostile or broken registrar granting seconds must
		// not make the UE refresh in a loop.
		{2 * time.Second, 5 * time.Second},
		{0, 5 * time.Second},
	}
	for _, tt := range tests {
		if got := refreshDelay(tt.granted, DefaultMinRefresh); got != tt.want {
			t.Errorf("refreshDelay(%s) = %s, want %s", tt.granted, got, tt.want)
		}
	}
}

// sipgo's RemoveHeader compares names case-sensitively and removes one
// header; removeHeader removes all, whatever their case (RFC 3261 §7.3.1).
func TestRemoveHeaderAnyCase(t *testing.T) {
	res := parseResponse(t, head+"security-verify: a\nSecurity-Verify: b\nSECURITY-VERIFY: c\nContent-Length: 0\n\n")
	if n := removeHeader(res, "Security-Verify"); n != 3 {
		t.Fatalf("removed %d, want 3", n)
	}
	if vs := headerValues(res, "security-verify"); len(vs) != 0 {
		t.Errorf("left: %q", vs)
	}
	setHeader(res, "expires", "5")
	setHeader(res, "Expires", "6")
	if vs := headerValues(res, "EXPIRES"); !slices.Equal(vs, []string{"6"}) {
		t.Errorf("after setHeader: %q", vs)
	}
	// Reading is case-insensitive too.
	res = parseResponse(t, head+"security-server: ipsec-3gpp;alg=hmac-md5-96\nContent-Length: 0\n\n")
	if vs := headerValues(res, "Security-Server"); len(vs) != 1 {
		t.Errorf("lowercase Security-Server not found: %q", vs)
	}
}

func TestChooseQOP(t *testing.T) {
	tests := []struct {
		offered []string
		want    string
		err     bool
	}{
		{nil, "", false},
		{[]string{"auth"}, "auth", false},
		{[]string{"auth-int", "auth"}, "auth", false},
		{[]string{"auth-int"}, "auth-int", false},
		{[]string{" AUTH "}, "auth", false},
		{[]string{"auth-conf"}, "", true},
	}
	for _, tt := range tests {
		// Through the challenge parser, as readChallenge gets them.
		hdr := `Digest realm="r", nonce="n"`
		if tt.offered != nil {
			hdr += `, qop="` + strings.Join(tt.offered, ",") + `"`
		}
		ch, err := digest.ParseChallenge(hdr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := chooseQOP(ch)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("chooseQOP(%q) = %q, %v", tt.offered, got, err)
		}
	}
}

func TestReadChallenge(t *testing.T) {
	nonce := digest.EncodeAKANonce([16]byte{1}, [16]byte{2}, nil)
	aka := func(alg string) string {
		return `WWW-Authenticate: Digest realm="r", nonce="` + nonce + `", algorithm=` + alg + `, qop="auth"` + "\n"
	}
	tests := []struct {
		name     string
		headers  string
		akav2    bool
		password string
		wantAlg  string
		wantErr  error
	}{
		{"AKAv1", aka("AKAv1-MD5"), false, "", digest.AKAv1MD5, nil},
		{"AKAv1 lowercase", aka("akav1-md5"), false, "", digest.AKAv1MD5, nil},
		{"AKAv2 required, offered second", aka("AKAv1-MD5") + aka("AKAv2-MD5"), true, "", digest.AKAv2MD5, nil},
		{"AKAv2 required, AKAv1 only", aka("AKAv1-MD5"), true, "", "", ErrAlgorithmDowngrade},
		{"MD5 with password", `WWW-Authenticate: Digest realm="r", nonce="abc", qop="auth"` + "\n", false, "pw", digest.MD5, nil},
		{"MD5 without password", `WWW-Authenticate: Digest realm="r", nonce="abc"` + "\n", false, "", "", ErrNoPassword},
		{"unknown algorithm", aka("SHA-256"), false, "", "", ErrBadChallenge},
		{"short nonce", `WWW-Authenticate: Digest realm="r", nonce="AAAA", algorithm=AKAv1-MD5` + "\n", false, "", "", ErrBadChallenge},
		{"none", "", false, "", "", ErrBadChallenge},
		{"Basic", "WWW-Authenticate: Basic realm=\"r\"\n", false, "", "", ErrBadChallenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{s: &settings{Config: Config{AKAv2: tt.akav2, Password: tt.password}}}
			res := parseResponse(t, strings.Replace(head, "200 OK", "401 Unauthorized", 1)+tt.headers+"Content-Length: 0\n\n")
			ch, err := c.readChallenge(res)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || ch.alg.String() != tt.wantAlg {
				t.Fatalf("got %+v, %v; want %s", ch, err, tt.wantAlg)
			}
			if ch.aka() && (ch.rand != [16]byte{1} || ch.autn != [16]byte{2}) {
				t.Errorf("RAND/AUTN %x %x", ch.rand, ch.autn)
			}
		})
	}
}

// The GRUUs of the UE's own binding (RFC 5627 §5.1), not another's.
func TestGRUUs(t *testing.T) {
	ue := netip.MustParseAddr("192.0.2.1")
	res := parseResponse(t, head+`Contact: <sip:other@192.0.2.9:5062>;pub-gruu="sip:x@ims.example;gr=other";expires=100, <sip:u@192.0.2.1:5062>;expires=600;pub-gruu="sip:u@ims.example;gr=urn:gsma:imei:35209900-176148-0";temp-gruu="sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@ims.example;gr"`+"\nContent-Length: 0\n\n")
	pub, temp := gruus(res, ue, 5062)
	if pub != "sip:u@ims.example;gr=urn:gsma:imei:35209900-176148-0" || temp != "sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@ims.example;gr" {
		t.Errorf("pub %q temp %q", pub, temp)
	}
}

// Retry-After and Warning of a rejection, and what is retried when
// (RFC 3261 §20.33, RFC 5626 §4.5).
func TestRejectionRetry(t *testing.T) {
	res := parseResponse(t, "SIP/2.0 503 Service Unavailable\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:a@x>\nCall-ID: c\nCSeq: 1 REGISTER\nRetry-After: 18000;duration=3600\nWarning: 399 pcscf.example \"overloaded\"\nContent-Length: 0\n\n")
	e := statusError("REGISTER", res)
	if e.RetryAfter != 18000*time.Second || e.Warning != `399 pcscf.example "overloaded"` {
		t.Errorf("%+v", e)
	}
	if d, ok := Retry(e, 1); !ok || d != 18000*time.Second {
		t.Errorf("Retry with Retry-After: %v, %v", d, ok)
	}
	e.RetryAfter = 0
	for failures, want := range map[int]time.Duration{1: 30 * time.Second, 2: 60 * time.Second, 7: 1800 * time.Second, 40: 1800 * time.Second} {
		d, ok := Retry(e, failures)
		if !ok || d < want/2 || d > want {
			t.Errorf("backoff after %d failures: %v; want within [%v, %v]", failures, d, want/2, want)
		}
	}
	for _, code := range []int{403, 404, 494} {
		if _, ok := Retry(&RejectedError{Status: code}, 1); ok {
			t.Errorf("%d retried", code)
		}
	}
	r494 := statusError("REGISTER", parseResponse(t, "SIP/2.0 494 Security Agreement Required\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:a@x>\nCall-ID: c\nCSeq: 1 REGISTER\nContent-Length: 0\n\n"))
	r420 := statusError("REGISTER", parseResponse(t, "SIP/2.0 420 Bad Extension\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:a@x>\nCall-ID: c\nCSeq: 1 REGISTER\nUnsupported: path, sec-agree\nContent-Length: 0\n\n"))
	r420other := statusError("REGISTER", parseResponse(t, "SIP/2.0 420 Bad Extension\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:a@x>\nCall-ID: c\nCSeq: 1 REGISTER\nUnsupported: foo\nContent-Length: 0\n\n"))
	if !errors.Is(r494, ErrSecAgreeRefused) || !errors.Is(r420, ErrSecAgreeRefused) || errors.Is(r420other, ErrSecAgreeRefused) {
		t.Errorf("494: %v; 420 sec-agree: %v; 420 other: %v", r494, r420, r420other)
	}
}

// noBody appends Content-Length: 0 without sipgo's lookup; the result is
// SetBody(nil)'s, with or without Config.Headers (which may carry a
// Content-Length of their own).
func TestNoBodyAsSetBody(t *testing.T) {
	for _, extra := range [][][2]string{nil, {{"X-Lab", "1"}}, {{"content-length", "5"}}, {{"l", "0"}}} {
		c := &Client{s: &settings{extra: extra}}
		build := func() *sip.Request {
			req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "ims.example"})
			req.AppendHeader(sip.NewHeader("Expires", "600"))
			c.addHeaders(req)
			return req
		}
		got, want := build(), build()
		c.noBody(got)
		want.SetBody(nil)
		if got.String() != want.String() || *got.ContentLength() != *want.ContentLength() {
			t.Errorf("headers %q:\n%s\nwant\n%s", extra, got, want)
		}
	}
}

// Branches carry RFC 3261's magic cookie; branches, tags, Call-IDs and
// cnonces are fresh random hex of their lengths.
func TestRandomTokens(t *testing.T) {
	for _, tt := range []struct {
		gen    func() string
		prefix string
		hex    int
	}{
		{newBranch, sip.RFC3261BranchMagicCookie, 20},
		{newTag, "", 12},
		{newCallID, "", 24},
		{func() string { return randHex("", 8) }, "", 16},
	} {
		a, b := tt.gen(), tt.gen()
		rest, ok := strings.CutPrefix(a, tt.prefix)
		if !ok || len(rest) != tt.hex || strings.Trim(rest, "0123456789abcdef") != "" || a == b {
			t.Errorf("got %q and %q; want %q and %d hex digits, differing", a, b, tt.prefix, tt.hex)
		}
	}
}
