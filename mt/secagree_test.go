package mt

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imsue/imsue/ipsec"
)

// Real-world header values. The Kamailio ones are what Kamailio 5.6.3 sent
// in the project's interop runs (README, "Interop"); the capture one is a
// live capture's Security-Client, in the RFC 3329 §2.2 syntax with the
// TS 33.203 Annex H parameters, and the spaced one the same with LWS
// around each ";" (SEMI, RFC 3261 §25.1).
const (
	kamailioServer = "ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200;alg=hmac-sha-1-96;ealg=null"
	kamailioAESCBC = "ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200;alg=hmac-sha-1-96;ealg=aes-cbc"
	captureClient  = "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=1546543;spi-s=1546542;port-c=32773;port-s=6000"
	spacedClient   = "ipsec-3gpp; alg=hmac-md5-96; ealg=des-ede3-cbc; spi-c=3929102; spi-s=3929103; port-c=5100; port-s=5101"
	// A four-mechanism Security-Server as a commercial P-CSCF might send it.
	fourServer = "ipsec-3gpp;q=0.5;alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=222227;spi-s=222228;port-c=9950;port-s=9900, " +
		"ipsec-3gpp;q=0.4;alg=hmac-md5-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=222227;spi-s=222228;port-c=9950;port-s=9900, " +
		"ipsec-3gpp;q=0.3;alg=hmac-sha-1-96;ealg=null;prot=esp;mod=trans;spi-c=222227;spi-s=222228;port-c=9950;port-s=9900, " +
		"ipsec-3gpp;q=0.2;alg=hmac-md5-96;ealg=null;prot=esp;mod=trans;spi-c=222227;spi-s=222228;port-c=9950;port-s=9900"
)

func TestParseSecurity(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []Mechanism
	}{
		{
			name:   "Kamailio 5.6 Security-Server",
			values: []string{kamailioServer},
			want: []Mechanism{{
				Name: "ipsec-3gpp", Alg: "hmac-sha-1-96", EAlg: "null", Prot: "esp", Mode: "trans",
				SPIc: 4096, SPIs: 4097, PortC: 7100, PortS: 7200,
			}},
		},
		{
			name:   "live capture Security-Client",
			values: []string{captureClient},
			want: []Mechanism{{
				Name: "ipsec-3gpp", Alg: "hmac-sha-1-96", EAlg: "aes-cbc", Prot: "esp", Mode: "trans",
				SPIc: 1546543, SPIs: 1546542, PortC: 32773, PortS: 6000,
			}},
		},
		{
			name:   "spaces after semicolons, defaults for prot and mod",
			values: []string{spacedClient},
			want: []Mechanism{{
				Name: "ipsec-3gpp", Alg: "hmac-md5-96", EAlg: "des-ede3-cbc", Prot: "esp", Mode: "trans",
				SPIc: 3929102, SPIs: 3929103, PortC: 5100, PortS: 5101,
			}},
		},
		{
			name:   "white space and folding around ; , =",
			values: []string{" ipsec-3gpp ;\talg = hmac-md5-96\r\n ; spi-c= 1000 ;port-c =1 , ipsec-3gpp;alg=hmac-sha-1-96;q = 1 "},
			want: []Mechanism{
				{Name: "ipsec-3gpp", Alg: "hmac-md5-96", EAlg: "null", Prot: "esp", Mode: "trans", SPIc: 1000, PortC: 1},
				{Name: "ipsec-3gpp", Alg: "hmac-sha-1-96", EAlg: "null", Prot: "esp", Mode: "trans", Q: 1000, HasQ: true},
			},
		},
		{
			name:   "case-insensitive names and values",
			values: []string{"IPSec-3GPP;ALG=HMAC-MD5-96;EAlg=AES-CBC;PROT=ESP;Mod=udp-ENC-tun;SPI-C=4294967295;Port-S=65535;Q=0.123"},
			want: []Mechanism{{
				Name: "IPSec-3GPP", Alg: "hmac-md5-96", EAlg: "aes-cbc", Prot: "esp", Mode: "UDP-enc-tun",
				SPIc: 4294967295, PortS: 65535, Q: 123, HasQ: true,
			}},
		},
		{
			name:   "several header values and several mechanisms per value, in order",
			values: []string{"ipsec-3gpp;alg=hmac-md5-96;ealg=null, ipsec-3gpp;alg=hmac-md5-96;ealg=aes-cbc", "ipsec-3gpp;alg=hmac-sha-1-96;ealg=des-ede3-cbc;mod=tun;prot=ah"},
			want: []Mechanism{
				{Name: "ipsec-3gpp", Alg: "hmac-md5-96", EAlg: "null", Prot: "esp", Mode: "trans"},
				{Name: "ipsec-3gpp", Alg: "hmac-md5-96", EAlg: "aes-cbc", Prot: "esp", Mode: "trans"},
				{Name: "ipsec-3gpp", Alg: "hmac-sha-1-96", EAlg: "des-ede3-cbc", Prot: "ah", Mode: "tun"},
			},
		},
		{
			name:   "unknown parameters kept in order, unknown values kept as received",
			values: []string{`ipsec-3gpp;alg=aes-gmac;ealg=AES-GCM;x-vendor = "a, b;c" ;flag;alg2=Foo;mediasec;prot=Weird`},
			want: []Mechanism{{
				Name: "ipsec-3gpp", Alg: "aes-gmac", EAlg: "aes-gcm", Prot: "Weird", Mode: "trans",
				Other: []string{`x-vendor="a, b;c"`, "flag", "alg2=Foo", "mediasec"},
			}},
		},
		{
			name:   "unknown mechanisms parsed, their parameters in Other",
			values: []string{`digest;d-alg=md5;d-qop=auth;d-ver="0123456789abcdef0123456789abcdef";q=0.1;` + "x=\"tab\there, \\\"esc\\\"\r\n folded\"" + `, tls;q=0.2;maddr=[2001:db8::1], sdes-srtp;mediasec`},
			want: []Mechanism{
				{Name: "digest", Q: 100, HasQ: true, Other: []string{"d-alg=md5", "d-qop=auth", `d-ver="0123456789abcdef0123456789abcdef"`, "x=\"tab\there, \\\"esc\\\"\r\n folded\""}},
				{Name: "tls", Q: 200, HasQ: true, Other: []string{"maddr=[2001:db8::1]"}},
				{Name: "sdes-srtp", Other: []string{"mediasec"}},
			},
		},
		{
			name:   "alg on a non-3GPP mechanism is just a parameter",
			values: []string{"ipsec-ike;alg=x;alg2=y"},
			want:   []Mechanism{{Name: "ipsec-ike", Other: []string{"alg=x", "alg2=y"}}},
		},
		{
			name:   "qvalue forms",
			values: []string{"a;q=0, b;q=0., c;q=0.5, d;q=0.05, e;q=0.005, f;q=1., g;q=1.000, h;q=0.999"},
			want: []Mechanism{
				{Name: "a", HasQ: true}, {Name: "b", HasQ: true}, {Name: "c", Q: 500, HasQ: true},
				{Name: "d", Q: 50, HasQ: true}, {Name: "e", Q: 5, HasQ: true}, {Name: "f", Q: 1000, HasQ: true},
				{Name: "g", Q: 1000, HasQ: true}, {Name: "h", Q: 999, HasQ: true},
			},
		},
		{
			name:   "SPI 0, leading zeros",
			values: []string{"ipsec-3gpp;alg=hmac-md5-96;spi-c=0;spi-s=0004097;port-c=00080"},
			want:   []Mechanism{{Name: "ipsec-3gpp", Alg: "hmac-md5-96", EAlg: "null", Prot: "esp", Mode: "trans", SPIs: 4097, PortC: 80}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecurity(tt.values...)
			if err != nil {
				t.Fatalf("ParseSecurity: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d mechanisms, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				g.Text = ""
				if !deepEqualMech(g, w) {
					t.Errorf("mechanism %d:\n got %+v\nwant %+v", i, g, w)
				}
				if !containsText(tt.values, got[i].Text) {
					t.Errorf("mechanism %d: Text %q is not a piece of the input", i, got[i].Text)
				}
			}
		})
	}
}

// deepEqualMech compares every field exactly (Equal is lenient on purpose).
func deepEqualMech(a, b Mechanism) bool {
	if a.Name != b.Name || a.Alg != b.Alg || a.EAlg != b.EAlg || a.Prot != b.Prot || a.Mode != b.Mode ||
		a.SPIc != b.SPIc || a.SPIs != b.SPIs || a.PortC != b.PortC || a.PortS != b.PortS ||
		a.Q != b.Q || a.HasQ != b.HasQ || a.Text != b.Text || len(a.Other) != len(b.Other) {
		return false
	}
	for i := range a.Other {
		if a.Other[i] != b.Other[i] {
			return false
		}
	}
	return true
}

func containsText(values []string, text string) bool {
	for _, v := range values {
		if text != "" && strings.Contains(v, text) {
			return true
		}
	}
	return false
}

// TestParseSecurityText checks that each mechanism keeps its exact text:
// Security-Verify is built from what the server sent, byte for byte.
func TestParseSecurityText(t *testing.T) {
	v := " ipsec-3gpp; alg=hmac-md5-96 ;q=0.1 ,ipsec-3gpp;ALG=hmac-sha-1-96;x=\"a,b\"  ,  digest"
	ms, err := ParseSecurity(v, kamailioServer)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ipsec-3gpp; alg=hmac-md5-96 ;q=0.1", `ipsec-3gpp;ALG=hmac-sha-1-96;x="a,b"`, "digest", kamailioServer}
	if len(ms) != len(want) {
		t.Fatalf("got %d mechanisms, want %d", len(ms), len(want))
	}
	for i, m := range ms {
		if m.Text != want[i] {
			t.Errorf("mechanism %d Text = %q, want %q", i, m.Text, want[i])
		}
	}
}

func TestParseSecurityErrors(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []string // substrings of the error
	}{
		{"no header", nil, []string{"no header"}},
		{"empty value", []string{""}, []string{"mechanism 1: empty"}},
		{"blank value", []string{"  "}, []string{"empty"}},
		{"trailing comma", []string{kamailioServer + ","}, []string{"mechanism 2: empty"}},
		{"leading comma", []string{", " + kamailioServer}, []string{"mechanism 1: empty"}},
		{"alg missing", []string{"ipsec-3gpp;ealg=null;spi-c=1"}, []string{"alg missing"}},
		{"port-s=0 from Kamailio", []string{"ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=0;alg=hmac-sha-1-96;ealg=null"},
			[]string{"port-s=0", "Kamailio", "5060"}},
		{"port-c=0", []string{"ipsec-3gpp;alg=hmac-md5-96;port-c=0"}, []string{"port-c=0"}},
		{"port too big", []string{"ipsec-3gpp;alg=hmac-md5-96;port-c=65536"}, []string{"port-c=65536", "1..65535"}},
		{"port not a number", []string{"ipsec-3gpp;alg=hmac-md5-96;port-s=-1"}, []string{"port-s=-1"}},
		{"spi too big", []string{"ipsec-3gpp;alg=hmac-md5-96;spi-s=4294967296"}, []string{"spi-s=4294967296"}},
		{"spi hex", []string{"ipsec-3gpp;alg=hmac-md5-96;spi-c=0x1000"}, []string{"spi-c=0x1000"}},
		{"spi huge", []string{"ipsec-3gpp;alg=hmac-md5-96;spi-c=99999999999999999999999999"}, []string{"spi-c"}},
		{"duplicate alg", []string{"ipsec-3gpp;alg=hmac-md5-96;alg=hmac-sha-1-96"}, []string{"alg: parameter given twice"}},
		{"duplicate across case", []string{"ipsec-3gpp;alg=hmac-md5-96;SPI-C=1;spi-c=1"}, []string{"spi-c: parameter given twice"}},
		{"duplicate q", []string{"digest;q=0.1;Q=0.2"}, []string{"q: parameter given twice"}},
		{"duplicate unknown", []string{"ipsec-3gpp;alg=hmac-md5-96;foo=1;FOO=2"}, []string{"FOO: parameter given twice"}},
		{"q=.5", []string{"ipsec-3gpp;alg=hmac-md5-96;q=.5"}, []string{"q=.5"}},
		{"q=1.5", []string{"digest;q=1.5"}, []string{"q=1.5"}},
		{"q=1.001", []string{"digest;q=1.001"}, []string{"q=1.001"}},
		{"q=0.1234", []string{"digest;q=0.1234"}, []string{"q=0.1234"}},
		{"q=2", []string{"digest;q=2"}, []string{"q=2"}},
		{"q without value", []string{"digest;q"}, []string{"q: value missing"}},
		{"alg without value", []string{"ipsec-3gpp;alg="}, []string{"alg", "value expected"}},
		{"quoted alg", []string{`ipsec-3gpp;alg="hmac-md5-96"`}, []string{"value must be a token"}},
		{"empty parameter", []string{"ipsec-3gpp;;alg=hmac-md5-96"}, []string{"parameter name expected"}},
		{"no name", []string{";alg=hmac-md5-96"}, []string{"mechanism name expected"}},
		{"space in name", []string{"ipsec 3gpp;alg=hmac-md5-96"}, []string{"';' or ',' expected"}},
		{"unterminated quote", []string{`digest;d-ver="abc`}, []string{"unterminated"}},
		{"bare LF", []string{"ipsec-3gpp;alg=hmac-md5-96;\nX-Evil: 1"}, []string{"parameter name expected"}},
		{"CRLF that does not fold", []string{"ipsec-3gpp;alg=hmac-md5-96\r\n;spi-c=1"}, []string{"';' or ',' expected"}},
		{"CRLF at the end", []string{"ipsec-3gpp;alg=hmac-md5-96\r\n"}, []string{"';' or ',' expected"}},
		{"control character in quoted string", []string{"digest;x=\"a\x01b\""}, []string{"control character 0x01"}},
		{"DEL in quoted string", []string{"digest;x=\"a\x7fb\""}, []string{"control character 0x7f"}},
		{"escaped CR in quoted string", []string{"digest;x=\"a\\\rb\""}, []string{"bad escape"}},
		{"CR in quoted string", []string{"digest;x=\"a\rb\""}, []string{"CR in quoted string"}},
		{"NUL", []string{"ipsec-3gpp;alg=hmac-md5-96\x00"}, []string{"';' or ',' expected"}},
		{"bad IPv6 reference", []string{"tls;maddr=[zz]"}, []string{"IPv6"}},
		{"bad mechanism after a good one", []string{kamailioServer, "ipsec-3gpp;alg=hmac-md5-96;spi-c=x"}, []string{"mechanism 2", "spi-c=x"}},
		{"too many parameters", []string{"digest" + manyParams(65)}, []string{"more than 64 parameters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ParseSecurity(tt.values...)
			if err == nil {
				t.Fatalf("ParseSecurity(%q) = %+v, want an error", tt.values, ms)
			}
			if !errors.Is(err, ErrBadSecurityHeader) {
				t.Errorf("error %v does not wrap ErrBadSecurityHeader", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestMechanismString(t *testing.T) {
	tests := []struct {
		m    Mechanism
		want string
	}{
		{
			Mechanism{Name: "ipsec-3gpp", Alg: ipsec.AuthHMACSHA196, SPIc: 4096, SPIs: 4097, PortC: 7100, PortS: 7200},
			"ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200",
		},
		{
			Mechanism{Name: "ipsec-3gpp", Alg: ipsec.AuthHMACMD596, EAlg: ipsec.EncAESCBC, Prot: "esp", Mode: "trans",
				SPIc: 1, SPIs: 4294967295, PortC: 1, PortS: 65535, Q: 100, HasQ: true, Other: []string{"x=1", "flag"}},
			"ipsec-3gpp;alg=hmac-md5-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=1;spi-s=4294967295;port-c=1;port-s=65535;q=0.1;x=1;flag",
		},
		{Mechanism{Name: "digest", Q: 1000, HasQ: true, Other: []string{"d-alg=md5"}}, "digest;q=1;d-alg=md5"},
		{Mechanism{Name: "tls", Q: 0, HasQ: true}, "tls;q=0"},
		{Mechanism{Name: "tls", Q: 50, HasQ: true}, "tls;q=0.05"},
		{Mechanism{Name: "tls", Q: 5, HasQ: true}, "tls;q=0.005"},
		{Mechanism{Name: "tls", Q: 120, HasQ: true}, "tls;q=0.12"},
		{Mechanism{Name: "tls", Q: 5000, HasQ: true}, "tls;q=1"},
		{Mechanism{Name: "tls", Q: -3, HasQ: true}, "tls;q=0"},
		{Mechanism{Name: "tls", Q: 500}, "tls"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestRoundTrip checks the property the fuzz target checks, on the samples.
func TestRoundTrip(t *testing.T) {
	for _, v := range fuzzSeeds {
		ms, err := ParseSecurity(v)
		if err != nil {
			t.Fatalf("seed %q: %v", v, err)
		}
		checkRoundTrip(t, ms)
	}
}

func TestFormatSecurity(t *testing.T) {
	ms, err := ParseSecurity(spacedClient, kamailioServer)
	if err != nil {
		t.Fatal(err)
	}
	got := FormatSecurity(ms)
	want := "ipsec-3gpp;alg=hmac-md5-96;ealg=des-ede3-cbc;prot=esp;mod=trans;spi-c=3929102;spi-s=3929103;port-c=5100;port-s=5101, " +
		"ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200"
	if got != want {
		t.Errorf("FormatSecurity =\n%q\nwant\n%q", got, want)
	}
	if FormatSecurity(nil) != "" {
		t.Error("FormatSecurity(nil) is not empty")
	}
}

func TestVerifyValue(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{kamailioServer}, kamailioServer},
		{[]string{"ipsec-3gpp; alg=hmac-md5-96 ;q=0.1", "ipsec-3gpp;ALG=hmac-sha-1-96"}, "ipsec-3gpp; alg=hmac-md5-96 ;q=0.1, ipsec-3gpp;ALG=hmac-sha-1-96"},
	}
	for _, tt := range tests {
		if got := VerifyValue(tt.in); got != tt.want {
			t.Errorf("VerifyValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// The Security-Verify value parses to the same mechanisms as the
		// Security-Server it copies (RFC 3329 §2.3.1).
		a, err1 := ParseSecurity(tt.in...)
		b, err2 := ParseSecurity(VerifyValue(tt.in))
		if err1 != nil || err2 != nil || len(a) != len(b) {
			t.Fatalf("parse: %v %v", err1, err2)
		}
		for i := range a {
			if !deepEqualMech(a[i], b[i]) {
				t.Errorf("mechanism %d differs: %+v vs %+v", i, a[i], b[i])
			}
		}
	}
}

func TestMechanismEqualAndParams(t *testing.T) {
	a := Mechanism{Name: "ipsec-3gpp", Alg: ipsec.AuthHMACMD596, SPIc: 300, SPIs: 301, PortC: 5, PortS: 6}
	b := a
	b.Name, b.EAlg, b.Prot, b.Mode, b.Text = "IPSEC-3GPP", ipsec.EncNull, "esp", ipsec.ModeTransport, "whatever"
	if !a.Equal(b) {
		t.Error("defaults and name case should not matter")
	}
	for _, mod := range []func(*Mechanism){
		func(m *Mechanism) { m.EAlg = ipsec.EncAESCBC },
		func(m *Mechanism) { m.Mode = ModeTunnel },
		func(m *Mechanism) { m.SPIs++ },
		func(m *Mechanism) { m.HasQ = true },
		func(m *Mechanism) { m.Other = []string{"x"} },
	} {
		c := a
		mod(&c)
		if a.Equal(c) {
			t.Errorf("%+v should differ from %+v", c, a)
		}
	}
	if got, want := a.Params(), (Params{SPIc: 300, SPIs: 301, PortC: 5, PortS: 6}); got != want {
		t.Errorf("Params() = %+v, want %+v", got, want)
	}
}

func TestNormAuthEnc(t *testing.T) {
	for in, want := range map[ipsec.Auth]ipsec.Auth{
		"hmac-sha-1-96": ipsec.AuthHMACSHA196,
		"HMAC-SHA-1-96": ipsec.AuthHMACSHA196,
		"Hmac-Md5-96":   ipsec.AuthHMACMD596,
		"AES-GMAC":      authAESGMAC,
		"hmac-sha-256":  "hmac-sha-256", // unknown: unchanged
		"":              "",
	} {
		if got := NormAuth(in); got != want {
			t.Errorf("NormAuth(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[ipsec.Enc]ipsec.Enc{
		"":             ipsec.EncNull, // absent: the Annex H default
		"NULL":         ipsec.EncNull,
		"AES-CBC":      ipsec.EncAESCBC,
		"des-ede3-cbc": ipsec.EncDES3EDECBC,
		"Aes-Gcm":      encAESGCM,
		"blowfish":     "blowfish", // unknown: unchanged
	} {
		if got := NormEnc(in); got != want {
			t.Errorf("NormEnc(%q) = %q, want %q", in, got, want)
		}
	}
}

// manyParams returns n distinct parameters ";p0;p1;...".
func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ";p%d", i)
	}
	return b.String()
}
