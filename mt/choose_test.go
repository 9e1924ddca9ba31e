package mt

import (
	"errors"
	"strings"
	"testing"

	"github.com/imsue/imsue/ipsec"
)

var ueParams = Params{SPIc: 11111, SPIs: 22222, PortC: 61001, PortS: 61002}

func mustParse(t *testing.T, values ...string) []Mechanism {
	t.Helper()
	ms, err := ParseSecurity(values...)
	if err != nil {
		t.Fatalf("ParseSecurity(%q): %v", values, err)
	}
	return ms
}

func TestOffer(t *testing.T) {
	ms, err := Offer(
		[]ipsec.Auth{ipsec.AuthHMACSHA196, "HMAC-MD5-96", ipsec.AuthHMACSHA196},
		[]ipsec.Enc{ipsec.EncAESCBC, ipsec.EncNull},
		ueParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=11111;spi-s=22222;port-c=61001;port-s=61002",
		"ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;prot=esp;mod=trans;spi-c=11111;spi-s=22222;port-c=61001;port-s=61002",
		"ipsec-3gpp;alg=hmac-md5-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=11111;spi-s=22222;port-c=61001;port-s=61002",
		"ipsec-3gpp;alg=hmac-md5-96;ealg=null;prot=esp;mod=trans;spi-c=11111;spi-s=22222;port-c=61001;port-s=61002",
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d entries, want %d", len(ms), len(want))
	}
	for i, m := range ms {
		if m.Text != want[i] || m.String() != want[i] {
			t.Errorf("entry %d = %q (Text %q), want %q", i, m.String(), m.Text, want[i])
		}
	}
	// The header the UE sends parses back to the same offer.
	back := mustParse(t, FormatSecurity(ms))
	for i := range back {
		if !back[i].Equal(ms[i]) {
			t.Errorf("entry %d does not round-trip", i)
		}
	}
}

func TestOfferErrors(t *testing.T) {
	tests := []struct {
		name    string
		algs    []ipsec.Auth
		ealgs   []ipsec.Enc
		p       Params
		wantErr error
		want    string
	}{
		{"unknown alg", []ipsec.Auth{"hmac-sha-256"}, []ipsec.Enc{ipsec.EncNull}, ueParams, ErrUnsupportedAlgorithm, "hmac-sha-256"},
		{"aes-gmac has no keys yet", []ipsec.Auth{"aes-gmac"}, []ipsec.Enc{ipsec.EncNull}, ueParams, ErrUnsupportedAlgorithm, "aes-gmac"},
		{"unknown ealg", []ipsec.Auth{ipsec.AuthHMACMD596}, []ipsec.Enc{"aes-gcm"}, ueParams, ErrUnsupportedAlgorithm, "aes-gcm"},
		{"no alg", nil, []ipsec.Enc{ipsec.EncNull}, ueParams, nil, "at least one alg"},
		{"no ealg", []ipsec.Auth{ipsec.AuthHMACMD596}, nil, ueParams, nil, "at least one alg and one ealg"},
		{"reserved SPI", []ipsec.Auth{ipsec.AuthHMACMD596}, []ipsec.Enc{ipsec.EncNull}, Params{SPIc: 255, SPIs: 300, PortC: 1, PortS: 2}, nil, "spi_uc 255"},
		{"no port", []ipsec.Auth{ipsec.AuthHMACMD596}, []ipsec.Enc{ipsec.EncNull}, Params{SPIc: 256, SPIs: 300, PortS: 2}, nil, "port_uc is absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Offer(tt.algs, tt.ealgs, tt.p)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	offered, err := Offer(
		[]ipsec.Auth{ipsec.AuthHMACSHA196, ipsec.AuthHMACMD596},
		[]ipsec.Enc{ipsec.EncAESCBC, ipsec.EncNull},
		ueParams)
	if err != nil {
		t.Fatal(err)
	}
	md5Only, _ := Offer([]ipsec.Auth{ipsec.AuthHMACMD596}, []ipsec.Enc{ipsec.EncNull}, ueParams)
	const tail = ";spi-c=4096;spi-s=4097;port-c=7100;port-s=7200"
	tests := []struct {
		name    string
		offered []Mechanism
		server  string
		want    int // index in the server list, -1: ErrNoAcceptableMechanism
		why     string
	}{
		{"Kamailio: one entry, no q", offered, kamailioServer, 0, ""},
		{"highest q wins regardless of order", offered,
			"ipsec-3gpp;alg=hmac-md5-96;ealg=null;q=0.2" + tail + ", ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;q=0.9" + tail + ", ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;q=0.5" + tail, 1, ""},
		{"three decimals compared", offered,
			"ipsec-3gpp;alg=hmac-md5-96;ealg=null;q=0.101" + tail + ", ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;q=0.1" + tail, 0, ""},
		{"explicit q beats absent q, even q=0", offered,
			"ipsec-3gpp;alg=hmac-md5-96;ealg=null" + tail + ", ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;q=0" + tail, 1, ""},
		{"ties keep server order", offered,
			"ipsec-3gpp;alg=hmac-md5-96;ealg=null;q=0.5" + tail + ", ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;q=0.5" + tail, 0, ""},
		{"all absent: server order", offered,
			"ipsec-3gpp;alg=hmac-md5-96;ealg=aes-cbc" + tail + ", ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc" + tail, 0, ""},
		{"not-offered pair skipped even with the highest q", md5Only,
			"ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;q=1" + tail + ", ipsec-3gpp;alg=hmac-md5-96;ealg=null;q=0.1" + tail, 1, ""},
		{"absent ealg means null", md5Only, "ipsec-3gpp;alg=hmac-md5-96" + tail, 0, ""},
		{"unknown mechanisms and modes skipped", offered,
			"digest;q=1, ipsec-3gpp;alg=hmac-md5-96;ealg=null;mod=UDP-enc-tun;q=1" + tail + ", ipsec-3gpp;alg=hmac-md5-96;ealg=null;prot=ah;q=1" + tail + ", ipsec-3gpp;alg=hmac-md5-96;ealg=null;q=0.001" + tail, 3, ""},
		{"server picks a pair the UE did not offer", md5Only, kamailioServer, -1, "hmac-sha-1-96/null: not offered"},
		{"server picks an ealg the UE did not offer", md5Only, "ipsec-3gpp;alg=hmac-md5-96;ealg=des-ede3-cbc" + tail, -1, "hmac-md5-96/des-ede3-cbc: not offered"},
		{"mod=UDP-enc-tun only", offered, "ipsec-3gpp;alg=hmac-md5-96;ealg=null;mod=UDP-enc-tun" + tail, -1, "mod=UDP-enc-tun"},
		{"mod=tun only", offered, "ipsec-3gpp;alg=hmac-md5-96;ealg=null;mod=tun" + tail, -1, "mod=tun"},
		{"prot=ah only", offered, "ipsec-3gpp;alg=hmac-md5-96;ealg=null;prot=ah" + tail, -1, "prot=ah"},
		{"digest only", offered, "digest;d-alg=md5", -1, "mechanism not supported"},
		{"offer without ipsec-3gpp", mustParse(t, "digest"), kamailioServer, -1, "not offered"},
		{"nothing offered", nil, kamailioServer, -1, "not offered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := mustParse(t, tt.server)
			got, err := Choose(tt.offered, server)
			if tt.want < 0 {
				if !errors.Is(err, ErrNoAcceptableMechanism) {
					t.Fatalf("Choose = %q, %v; want ErrNoAcceptableMechanism", got.Text, err)
				}
				if !strings.Contains(err.Error(), tt.why) {
					t.Errorf("error %q does not say %q", err, tt.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Text != server[tt.want].Text {
				t.Errorf("chose %q, want %q", got.Text, server[tt.want].Text)
			}
		})
	}
}

func TestChooseEmpty(t *testing.T) {
	if _, err := Choose(nil, nil); !errors.Is(err, ErrNoAcceptableMechanism) {
		t.Errorf("Choose(nil, nil) error = %v", err)
	}
}
