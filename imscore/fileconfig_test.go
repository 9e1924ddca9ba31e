package imscore

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim/milenage"
)

func TestParseConfigFile(t *testing.T) {
	fc, err := ParseConfigFile([]byte(sampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	set1 := vectors.Milenage()[0]
	k, op := set1.K, set1.OP
	want := set1.OPc // TS 35.208 set 1: OPc from OP
	s := fc.Subscribers[0]
	switch {
	case fc.Domain != "ims.mnc001.mcc001.3gppnetwork.org" || fc.Addr != netip.MustParseAddrPort("127.0.0.1:0"):
		t.Errorf("domain %q addr %v", fc.Domain, fc.Addr)
	case fc.Algorithm != "AKAv2-MD5" || fc.QOP != "auth,auth-int" || fc.IPsecBackend != "none":
		t.Errorf("algorithm %q qop %q ipsec %q", fc.Algorithm, fc.QOP, fc.IPsecBackend)
	case fc.MaxExpires != time.Hour || fc.MinExpires != time.Minute || fc.AuthTimeout != 240*time.Second || fc.ReauthExpires != 30*time.Second:
		t.Errorf("durations %v %v %v %v", fc.MaxExpires, fc.MinExpires, fc.AuthTimeout, fc.ReauthExpires)
	case len(fc.Mechanisms) != 2 || fc.Mechanisms[0].Alg != ipsec.AuthHMACSHA196 || fc.Mechanisms[0].Q != 500 || fc.Mechanisms[1].EAlg != ipsec.EncNull:
		t.Errorf("mechanisms %+v", fc.Mechanisms)
	case s.IMPI != "001010123456789@ims.mnc001.mcc001.3gppnetwork.org" || len(s.IMPUs) != 2 || s.IMPUs[1] != "tel:+15551234567":
		t.Errorf("identities %q %q", s.IMPI, s.IMPUs)
	case s.K != k || s.OPc != want || s.OPc != milenage.OPc(k, op):
		t.Errorf("keys: OPc derived from OP does not match TS 35.208 set 1")
	case s.SQN != 0x20 || s.AMF != [2]byte{0x80, 0}:
		t.Errorf("sqn %#x amf %x", s.SQN, s.AMF)
	case fc.Subscribers[1].IMPUs[0] != "sip:alice@ims.mnc001.mcc001.3gppnetwork.org":
		t.Errorf("default IMPU %q", fc.Subscribers[1].IMPUs)
	}
	def := DefaultFileConfig()
	if def.Addr.String() != DefaultListen || len(def.Subscribers) != 1 || def.Subscribers[0].OPc != want {
		t.Errorf("defaults %+v", def.Config.Addr)
	}
}

func TestParseConfigFileErrors(t *testing.T) {
	const key = "465b5ce8b199b49faa5f0a2ee238a6bc"
	sub := "subscribers: [{impi: a@x, k: " + key + ", opc: " + key + "}]\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "opC: 1\n" + sub, "opC"},
		{"unknown subscriber key", "subscribers: [{impi: a@x, kk: " + key + "}]", "kk"},
		{"no subscribers", "domain: x\n", "subscribers"},
		{"bad listen", "listen: localhost\n" + sub, "listen"},
		{"bad algorithm", "algorithm: SHA256\n" + sub, "Algorithm"},
		{"bad qop", "qop: auth-conf\n" + sub, "QOP"},
		{"bad ipsec", "ipsec: strongswan\n" + sub, "ipsec"},
		{"bad duration", "max_expires: soon\n" + sub, "max_expires"},
		{"short k", "subscribers: [{impi: a@x, k: 0011, opc: " + key + "}]", "k: want 32 hex digits"},
		{"k not hex", "subscribers: [{impi: a@x, k: " + strings.Repeat("z", 32) + ", opc: " + key + "}]", "k: not hex"},
		{"op and opc", "subscribers: [{impi: a@x, k: " + key + ", op: " + key + ", opc: " + key + "}]", "op, opc"},
		{"no opc", "subscribers: [{impi: a@x, k: " + key + "}]", "op or opc"},
		{"no k for AKA", "subscribers: [{impi: a@x, password: p}]", "k: required"},
		{"sqn too big", "subscribers: [{impi: a@x, k: " + key + ", opc: " + key + ", sqn: 0x1000000000000}]", "sqn"},
		{"bad imsi", "subscribers: [{imsi: 12ab, k: " + key + ", opc: " + key + "}]", "imsi"},
		{"imsi of another domain", "subscribers: [{imsi: \"001020123456789\", k: " + key + ", opc: " + key + "}]", "home domain"},
		{"duplicate impi", "subscribers: [{impi: a@x, k: " + key + ", opc: " + key + "}, {impi: A@x, k: " + key + ", opc: " + key + "}]", "twice"},
		{"bad q", "mechanisms: [{alg: hmac-md5-96, q: 2}]\n" + sub, "q"},
		{"unsupported alg", "mechanisms: [{alg: hmac-sha-256-128}]\n" + sub, "unsupported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfigFile([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), strings.Repeat("z", 32)) {
				t.Errorf("error quotes a key: %v", err)
			}
		})
	}
}

// TestSubscriberRedacted: no formatting of a Subscriber (or a Config that
// holds one) shows K, OPc or the password.
func TestSubscriberRedacted(t *testing.T) {
	s := testSubscriber(t)
	s.Password = "hunter2hunter2"
	k, opc := hex.EncodeToString(s.K[:]), hex.EncodeToString(s.OPc[:])
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "sub", s)
	cfg := Config{Subscribers: []Subscriber{s}}
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprintf("%v %+v", cfg, cfg), logged.String()} {
		for _, secret := range []string{k, opc, s.Password, fmt.Sprint(s.K[:4])} {
			if strings.Contains(out, secret) {
				t.Errorf("output shows a secret: %s", out)
			}
		}
		if !strings.Contains(out, s.IMPI) {
			t.Errorf("output lacks the IMPI: %s", out)
		}
	}
}
