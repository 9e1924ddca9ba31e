package mt

import (
	"strings"
	"testing"
)

// fuzzSeeds are real-world and edge-case header values.
var fuzzSeeds = []string{
	kamailioServer,
	kamailioAESCBC,
	captureClient,
	spacedClient,
	fourServer,
	"ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200;alg=hmac-sha-1-96;ealg=null;q=0.1",
	`digest;d-alg=md5;d-qop=auth;d-ver="0123456789abcdef0123456789abcdef";q=0.1, tls;q=0.2;maddr=[2001:db8::1]`,
	"IPSec-3GPP;ALG=HMAC-MD5-96;EAlg=AES-CBC;Mod=udp-enc-tun;spi-c=0;q=1.000;x-a=\"q\\\"uote\";flag",
	" ipsec-3gpp ;\talg = hmac-md5-96\r\n ; spi-c= 1000 ;port-c =1 , ipsec-3gpp;alg=hmac-sha-1-96;q = 1 ",
	"ipsec-3gpp;alg=aes-gmac;ealg=aes-gcm;prot=ah;mod=tun;q=0.",
}

// checkRoundTrip checks that String() of every parsed mechanism re-parses to
// one mechanism with the same fields, and that String() is then stable.
func checkRoundTrip(t *testing.T, ms []Mechanism) {
	t.Helper()
	for i, m := range ms {
		s := m.String()
		again, err := ParseSecurity(s)
		if err != nil {
			t.Fatalf("mechanism %d: String() %q does not parse: %v", i, s, err)
		}
		if len(again) != 1 {
			t.Fatalf("mechanism %d: String() %q parses to %d mechanisms", i, s, len(again))
		}
		if !again[0].Equal(m) {
			t.Fatalf("mechanism %d: round trip changed fields:\n was %+v\n now %+v", i, m, again[0])
		}
		if again[0].Text != s {
			t.Fatalf("mechanism %d: Text %q, want %q", i, again[0].Text, s)
		}
		if s2 := again[0].String(); s2 != s {
			t.Fatalf("mechanism %d: String() not stable: %q then %q", i, s, s2)
		}
	}
}

func FuzzParseSecurity(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "")
	}
	f.Add(kamailioServer, captureClient)
	f.Fuzz(func(t *testing.T, a, b string) {
		values := []string{a}
		if b != "" {
			values = append(values, b)
		}
		ms, err := ParseSecurity(values...)
		if err != nil {
			return
		}
		if len(ms) == 0 {
			t.Fatal("no error and no mechanism")
		}
		for i, m := range ms {
			if m.Text == "" || !(strings.Contains(a, m.Text) || strings.Contains(b, m.Text)) {
				t.Fatalf("mechanism %d: Text %q is not a piece of the input", i, m.Text)
			}
		}
		checkRoundTrip(t, ms)
		// Security-Verify built from the values parses to the same list.
		v, err := ParseSecurity(VerifyValue(values))
		if err != nil || len(v) != len(ms) {
			t.Fatalf("VerifyValue does not re-parse to %d mechanisms: %v", len(ms), err)
		}
	})
}

func BenchmarkParseSecurity(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(fourServer)))
	for b.Loop() {
		ms, err := ParseSecurity(fourServer)
		if err != nil || len(ms) != 4 {
			b.Fatal(err)
		}
	}
}

func BenchmarkMechanismString(b *testing.B) {
	ms, err := ParseSecurity(fourServer)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = ms[0].String()
	}
}
