package imscore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
	"github.com/imsue/imsue/mt"
)

// The YAML configuration of `imsue core --config FILE`:
//
//	domain: ims.mnc001.mcc001.3gppnetwork.org   # default
//	listen: 127.0.0.1:5060                      # default; port 0 = any
//	port_ps: 0                                  # protected server port; 0 = any
//	algorithm: AKAv1-MD5                        # or AKAv2-MD5, MD5
//	qop: auth                                   # or "auth,auth-int", auth-int, none
//	max_expires: 3600                           # seconds, or a Go duration ("1h")
//	min_expires: 0
//	auth_timeout: 240
//	reauth_expires: 60
//	ipsec: none                                 # or kernel
//	ck_ik_in_challenge: false                   # bare S-CSCF behind a real P-CSCF
//	trust_integrity_protected: false            # accept de-REGISTERs over the SAs unchecked
//	challenge_refreshes: false                  # challenge every re-registration
//	mechanisms:                                 # optional Security-Server list
//	  - {alg: hmac-sha-1-96, ealg: aes-cbc, q: 0.5}
//	subscribers:
//	  - imsi: "001010123456789"                 # derives impi/impu/domain (TS 23.003 §13)
//	    mnc_length: 2
//	    impi: ...                               # or explicit identities
//	    impu: [sip:..., tel:...]
//	    k: 465b5ce8b199b49faa5f0a2ee238a6bc
//	    opc: cd63cb71954a9f4e48a5994e37a02baf    # or op:
//	    sqn: 0                                  # SQN_HE, decimal or 0x hex
//	    amf: "8000"                             # default 0000
//	    password: ...                           # for algorithm MD5
//
// Unknown keys are errors (a typo must not silently drop a key), and no
// error quotes a key value.

// FileConfig is a parsed configuration file: the core's Config and the
// name of the IPsec backend the CLI must open for it ("none" or "kernel").
type FileConfig struct {
	Config
	IPsecBackend string
}

type yamlConfig struct {
	Domain          string          `yaml:"domain"`
	Listen          string          `yaml:"listen"`
	PortPS          uint16          `yaml:"port_ps"`
	Algorithm       string          `yaml:"algorithm"`
	QOP             string          `yaml:"qop"`
	MaxExpires      string          `yaml:"max_expires"`
	MinExpires      string          `yaml:"min_expires"`
	AuthTimeout     string          `yaml:"auth_timeout"`
	ReauthExpires   string          `yaml:"reauth_expires"`
	IPsec           string          `yaml:"ipsec"`
	CKIKInChallenge bool            `yaml:"ck_ik_in_challenge"`
	TrustIP         bool            `yaml:"trust_integrity_protected"`
	ChallengeRefr   bool            `yaml:"challenge_refreshes"`
	Mechanisms      []yamlMechanism `yaml:"mechanisms"`
	Subscribers     []yamlSub       `yaml:"subscribers"`
}

type yamlMechanism struct {
	Alg  string   `yaml:"alg"`
	EAlg string   `yaml:"ealg"`
	Q    *float64 `yaml:"q"`
}

type yamlSub struct {
	IMSI      string   `yaml:"imsi"`
	MNCLength int      `yaml:"mnc_length"`
	IMPI      string   `yaml:"impi"`
	IMPU      []string `yaml:"impu"`
	K         string   `yaml:"k"`
	OP        string   `yaml:"op"`
	OPc       string   `yaml:"opc"`
	SQN       string   `yaml:"sqn"`
	AMF       string   `yaml:"amf"`
	Password  string   `yaml:"password"`
}

// Lab defaults: the subscriber of the README's example profile (section
// "Profile"; TS 35.208 test set 1 keys), so that `imsue core` and `imsue register`
// with that profile work out of the box.
const (
	DefaultDomain = "ims.mnc001.mcc001.3gppnetwork.org"
	DefaultListen = "127.0.0.1:5060"
	defaultIMSI   = "001010123456789"
	defaultK      = "465b5ce8b199b49faa5f0a2ee238a6bc"
	defaultOPc    = "cd63cb71954a9f4e48a5994e37a02baf"
)

// DefaultFileConfig is the configuration without a file: one lab subscriber
// (IMSI 001010123456789) on 127.0.0.1:5060.
func DefaultFileConfig() FileConfig {
	fc, err := ParseConfigFile([]byte("subscribers:\n  - imsi: \"" + defaultIMSI + "\"\n    k: " + defaultK + "\n    opc: " + defaultOPc + "\n"))
	if err != nil {
		panic("imscore: default configuration: " + err.Error()) // a constant input
	}
	return fc
}

// ParseConfigFile parses the YAML configuration of `imsue core`.
func ParseConfigFile(data []byte) (fc FileConfig, err error) {
	defer func() {
		if p := recover(); p != nil { // yaml.v3 should not panic; a bad file is still only a bad file
			fc, err = FileConfig{}, fmt.Errorf("config: not valid YAML (decoder failure: %v)", p)
		}
	}()
	var y yamlConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("config: %w", err)
	}
	cfg := &fc.Config
	cfg.Domain = orDefault(y.Domain, DefaultDomain)
	listen := orDefault(y.Listen, DefaultListen)
	if cfg.Addr, err = netip.ParseAddrPort(listen); err != nil {
		return fc, fmt.Errorf("config: listen %q: want IP:PORT: %w", listen, err)
	}
	cfg.PortPS = y.PortPS
	cfg.Algorithm, cfg.QOP, cfg.CKIKInChallenge = y.Algorithm, y.QOP, y.CKIKInChallenge
	cfg.TrustIntegrityProtected, cfg.ChallengeRefreshes = y.TrustIP, y.ChallengeRefr
	for _, d := range []struct {
		name string
		v    string
		dst  *time.Duration
	}{
		{"max_expires", y.MaxExpires, &cfg.MaxExpires},
		{"min_expires", y.MinExpires, &cfg.MinExpires},
		{"auth_timeout", y.AuthTimeout, &cfg.AuthTimeout},
		{"reauth_expires", y.ReauthExpires, &cfg.ReauthExpires},
	} {
		if *d.dst, err = parseSeconds(d.v); err != nil {
			return fc, fmt.Errorf("config: %s: %w", d.name, err)
		}
	}
	switch fc.IPsecBackend = orDefault(strings.ToLower(y.IPsec), "none"); fc.IPsecBackend {
	case "none", "kernel":
	default:
		return fc, fmt.Errorf("config: ipsec %q: want none or kernel", y.IPsec)
	}
	for i, m := range y.Mechanisms {
		mech := mt.Mechanism{Name: mt.MechanismIPsec3GPP, Alg: ipsec.Auth(strings.ToLower(m.Alg)), EAlg: ipsec.Enc(strings.ToLower(orDefault(m.EAlg, "null")))}
		if m.Q != nil {
			if *m.Q < 0 || *m.Q > 1 {
				return fc, fmt.Errorf("config: mechanisms[%d]: q %v is outside 0..1", i, *m.Q)
			}
			mech.Q, mech.HasQ = int(*m.Q*1000+0.5), true
		}
		cfg.Mechanisms = append(cfg.Mechanisms, mech)
	}
	for i, ys := range y.Subscribers {
		s, err := ys.subscriber(cfg.Domain, !strings.EqualFold(cfg.Algorithm, "MD5"))
		if err != nil {
			return fc, fmt.Errorf("config: subscribers[%d]: %w", i, err)
		}
		cfg.Subscribers = append(cfg.Subscribers, s)
	}
	if len(cfg.Subscribers) == 0 {
		return fc, errors.New("config: subscribers: none configured")
	}
	// Validate now, so that the CLI reports every mistake as a usage error.
	if _, err := cfg.withDefaults(); err != nil {
		return fc, err
	}
	return fc, nil
}

func (ys yamlSub) subscriber(domain string, aka bool) (Subscriber, error) {
	var s Subscriber
	if ys.IMSI != "" {
		mnc := ys.MNCLength
		if mnc == 0 {
			mnc = 2
		}
		id, err := isim.IdentityFromIMSI(ys.IMSI, mnc)
		if err != nil {
			return s, fmt.Errorf("imsi: %w", err)
		}
		s.IMPI, s.IMPUs = id.IMPI, id.IMPUs
		if id.Domain != domain && ys.IMPI == "" {
			return s, fmt.Errorf("imsi: its home domain %s is not the core's domain %s (set impi/impu, or domain)", id.Domain, domain)
		}
	} else if ys.MNCLength != 0 {
		return s, errors.New("mnc_length: only with imsi")
	}
	if ys.IMPI != "" {
		s.IMPI = ys.IMPI
	}
	if len(ys.IMPU) > 0 {
		s.IMPUs = ys.IMPU
	}
	if s.IMPI == "" {
		return s, errors.New("impi (or imsi): required")
	}
	if len(s.IMPUs) == 0 {
		s.IMPUs = []string{"sip:" + s.IMPI}
	}
	s.Password = ys.Password
	switch {
	case ys.K == "" && !aka:
		// A digest-only subscriber.
	case ys.K == "":
		return s, errors.New("k: required for AKA")
	default:
		if err := isim.DecodeHex(s.K[:], ys.K); err != nil {
			return s, fmt.Errorf("k: %w", err)
		}
		switch {
		case ys.OP != "" && ys.OPc != "":
			return s, errors.New("op, opc: give one, not both")
		case ys.OPc != "":
			if err := isim.DecodeHex(s.OPc[:], ys.OPc); err != nil {
				return s, fmt.Errorf("opc: %w", err)
			}
		case ys.OP != "":
			var op [16]byte
			if err := isim.DecodeHex(op[:], ys.OP); err != nil {
				return s, fmt.Errorf("op: %w", err)
			}
			s.OPc = milenage.OPc(s.K, op)
		default:
			return s, errors.New("op or opc: required with k")
		}
	}
	if ys.SQN != "" {
		v, err := strconv.ParseUint(ys.SQN, 0, 64)
		if err != nil || v >= 1<<48 {
			return s, errors.New("sqn: want a 48-bit number (decimal, or hex with 0x)")
		}
		s.SQN = v
	}
	if ys.AMF != "" {
		if err := isim.DecodeHex(s.AMF[:], ys.AMF); err != nil {
			return s, fmt.Errorf("amf: %w", err)
		}
	}
	return s, nil
}

// parseSeconds reads a duration: whole seconds, or a Go duration ("90s", "1h").
func parseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want seconds or a duration such as 90s", s)
	}
	return d, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
