package imscore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/imsue/imsue/digest"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// Subscriber is one HSS record: the identities and the long-term AKA
// credentials of a subscriber.
type Subscriber struct {
	IMPI  string
	IMPUs []string // the implicit registration set; the first is the default IMPU
	// K and OPc are the subscriber key and the derived operator key (TS 35.206).
	K, OPc [16]byte
	// SQN is the highest sequence number the HSS has issued (SQN_HE, 48 bits,
	// SEQ‖IND with 5 IND bits): the first vector carries SEQ+1. Its IND bits
	// select the fixed IND the HSS uses for every vector (TS 33.102 §C.1.2).
	SQN uint64
	// AMF goes into every AUTN as given. The zero value (0000) is the
	// non-EPS value of TS 33.102 Annex H; IMS AKA ignores the separation bit,
	// so 8000 works as well.
	AMF [2]byte
	// Password is the plain digest password when Config.Algorithm is MD5.
	Password string
}

// Config configures a lab core. The zero value of every field but Domain and
// Subscribers has a working default.
type Config struct {
	// Domain is the home network domain: the digest realm, the REGISTER
	// Request-URI host and the domain of the S-CSCF's Service-Route.
	Domain string
	// Addr is the P-CSCF's unprotected address, where initial REGISTERs
	// arrive; UDP and TCP listen on the same port. Port 0 picks a free one;
	// the invalid (zero) address means 127.0.0.1:0.
	Addr netip.AddrPort
	// PortPS is the P-CSCF's protected server port (port_ps), kept for the
	// core's lifetime and shared by every UE; 0 picks a free one at Start.
	// port_pc is chosen per SA set (a new one at every re-registration, as
	// TS 33.203 §7.4 requires) from the ephemeral range.
	PortPS uint16
	// Algorithm is the digest algorithm of the challenges: "AKAv1-MD5" (the
	// default), "AKAv2-MD5" or "MD5" (plain digest with Subscriber.Password,
	// no sec-agree and no SAs).
	Algorithm string
	// QOP is the qop offered in challenges: "auth" (the default),
	// "auth,auth-int", "auth-int" or "none" (RFC 2069 style, no qop).
	QOP string
	// Mechanisms lists the ipsec-3gpp (alg, ealg, q) entries the P-CSCF
	// supports and returns in Security-Server, all of them, with its own SPIs
	// and ports; the P-CSCF installs the entry the UE will choose by the
	// TS 33.203 rule (mt.Choose). Empty: accept the first pair of the UE's
	// Security-Client that the core supports and return only that one, as
	// Kamailio does.
	Mechanisms []mt.Mechanism
	// MaxExpires caps the granted registration expiry (default 3600 s).
	MaxExpires time.Duration
	// MinExpires, when set, answers shorter requested expiries with 423
	// Interval Too Brief (RFC 3261 §10.3); 0 accepts any.
	MinExpires time.Duration
	// AuthTimeout is the P-CSCF's reg-await-auth timer: how long a
	// challenge and its temporary SA set wait for the protected REGISTER
	// (default mt.TemporaryLifetime, 4 min).
	AuthTimeout time.Duration
	// ReauthExpires is the registration lifetime left after Reauthenticate
	// (the "shortened" contact event, TS 24.229 §5.4.1.6; default 60 s).
	ReauthExpires time.Duration
	// CKIKInChallenge makes the core a bare S-CSCF and HSS behind an
	// external P-CSCF such as Kamailio: the 401 carries ck and ik for that
	// P-CSCF, and the core does no sec-agree, installs no SA and accepts
	// every request on Addr (the P-CSCF in front protects the UE's path).
	CKIKInChallenge bool
	// TrustIntegrityProtected makes the S-CSCF trust integrity-protected
	// ="yes" as some cores do: a de-REGISTER over an established SA set is
	// accepted without checking its Authorization. By default the S-CSCF
	// verifies every REGISTER as Kamailio's ims_auth does: a nonce is
	// answered again only with nc = the last nc + 1 and a correct response
	// (RFC 2617 §3.2.2); a repeated nc is a replay (403), an unknown nonce
	// is challenged.
	TrustIntegrityProtected bool
	// ChallengeRefreshes challenges every re-registration even when it
	// answers the last nonce correctly (ims_auth with max_nonce_reuse 0):
	// each refresh then costs an AKA run and a new SA set.
	ChallengeRefreshes bool
	Subscribers        []Subscriber
	// IPsec installs the P-CSCF's mirror SA sets (mt.PlanPCSCF); nil means
	// ipsec.None{}. The caller owns it: Close removes the core's sets but
	// does not close the Backend.
	IPsec ipsec.Backend
	// Logger receives one record per event; at slog.LevelDebug each SIP
	// message is logged in full (ck and ik are redacted). nil discards.
	Logger *slog.Logger
	// Faults, when set, injects failures for tests; it may be changed while
	// the core runs.
	Faults *Faults
	// Timers are the core's SIP timers; zero fields take RFC 3261's
	// (sipnet.RFC3261Timers). Tests shorten them.
	Timers sipnet.Timers
	// Net is where the core's sockets come from; nil means the host's
	// kernel (sipnet.Kernel).
	Net sipnet.Net
}

// Defaults.
const (
	DefaultMaxExpires    = 3600 * time.Second
	DefaultReauthExpires = 60 * time.Second
)

// withDefaults returns a copy of cfg with defaults filled in, or an error
// naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Domain == "" {
		return cfg, errors.New("imscore: config: Domain is empty")
	}
	if !cfg.Addr.IsValid() {
		cfg.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)
	}
	if cfg.Addr.Addr().Zone() != "" {
		return cfg, fmt.Errorf("imscore: config: Addr %s: zoned addresses are not supported", cfg.Addr)
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = digest.AKAv1MD5
	} else if v, err := digest.ParseVariant(cfg.Algorithm); err == nil {
		cfg.Algorithm = v.String() // the canonical spelling
	} else {
		return cfg, fmt.Errorf("imscore: config: Algorithm %q: want AKAv1-MD5, AKAv2-MD5 or MD5", cfg.Algorithm)
	}
	switch q := strings.ReplaceAll(strings.ToLower(cfg.QOP), " ", ""); q {
	case "":
		cfg.QOP = digest.QOPAuth
	case digest.QOPAuth, digest.QOPAuthInt, "auth,auth-int", "none":
		cfg.QOP = q
	case "auth-int,auth":
		cfg.QOP = "auth-int,auth"
	default:
		return cfg, fmt.Errorf("imscore: config: QOP %q: want auth, auth-int, \"auth,auth-int\" or none", cfg.QOP)
	}
	for i, m := range cfg.Mechanisms {
		if !mt.Supported(m.Alg, m.EAlg) {
			return cfg, fmt.Errorf("imscore: config: Mechanisms[%d]: alg %q ealg %q: %w", i, m.Alg, m.EAlg, mt.ErrUnsupportedAlgorithm)
		}
		if m.HasQ && (m.Q < 0 || m.Q > 1000) {
			return cfg, fmt.Errorf("imscore: config: Mechanisms[%d]: q %d is outside 0..1000 thousandths", i, m.Q)
		}
	}
	if cfg.MaxExpires == 0 {
		cfg.MaxExpires = DefaultMaxExpires
	}
	if cfg.MaxExpires < time.Second {
		return cfg, fmt.Errorf("imscore: config: MaxExpires %v is shorter than 1 s", cfg.MaxExpires)
	}
	if cfg.MinExpires < 0 || cfg.MinExpires > cfg.MaxExpires {
		return cfg, fmt.Errorf("imscore: config: MinExpires %v is outside 0..MaxExpires", cfg.MinExpires)
	}
	if cfg.AuthTimeout == 0 {
		cfg.AuthTimeout = mt.TemporaryLifetime
	}
	if cfg.AuthTimeout < 0 {
		return cfg, fmt.Errorf("imscore: config: AuthTimeout %v is negative", cfg.AuthTimeout)
	}
	if cfg.ReauthExpires == 0 {
		cfg.ReauthExpires = DefaultReauthExpires
	}
	if cfg.ReauthExpires < time.Second {
		return cfg, fmt.Errorf("imscore: config: ReauthExpires %v is shorter than 1 s", cfg.ReauthExpires)
	}
	if cfg.IPsec == nil {
		cfg.IPsec = ipsec.None{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Faults == nil {
		cfg.Faults = &Faults{}
	}
	seen := map[string]bool{}
	for i, s := range cfg.Subscribers {
		if s.IMPI == "" {
			return cfg, fmt.Errorf("imscore: config: Subscribers[%d]: IMPI is empty", i)
		}
		if len(s.IMPUs) == 0 {
			return cfg, fmt.Errorf("imscore: config: subscriber %s: no IMPU", s.IMPI)
		}
		if s.SQN >= 1<<48 {
			return cfg, fmt.Errorf("imscore: config: subscriber %s: SQN %#x exceeds 48 bits", s.IMPI, s.SQN)
		}
		if cfg.Algorithm == digest.MD5 && s.Password == "" {
			return cfg, fmt.Errorf("imscore: config: subscriber %s: algorithm MD5 needs a Password", s.IMPI)
		}
		keys := []string{"impi:" + strings.ToLower(s.IMPI)}
		for _, u := range s.IMPUs {
			if u == "" {
				return cfg, fmt.Errorf("imscore: config: subscriber %s: empty IMPU", s.IMPI)
			}
			keys = append(keys, "impu:"+canonURI(u))
		}
		for _, k := range keys {
			if seen[k] {
				return cfg, fmt.Errorf("imscore: config: subscriber %s: %s is configured twice", s.IMPI, k)
			}
			seen[k] = true
		}
	}
	return cfg, nil
}

// isAKA reports whether the core challenges with IMS AKA (and so runs
// sec-agree and installs SAs) rather than plain MD5 digest.
func (cfg *Config) isAKA() bool { return cfg.Algorithm != digest.MD5 }

// qops returns the configured qop list for a challenge.
func (cfg *Config) qops() []string {
	if cfg.QOP == "none" {
		return nil
	}
	return strings.Split(cfg.QOP, ",")
}

// supportedAuth and supportedEnc are the ESP algorithms whose keys
// TS 33.203 Annex I (and mt.ExpandKeys) define, in the order the P-CSCF
// lists them; mt.Supported is the rule for a pair.
var (
	supportedAuth = []ipsec.Auth{ipsec.AuthHMACSHA196, ipsec.AuthHMACMD596}
	supportedEnc  = []ipsec.Enc{ipsec.EncAESCBC, ipsec.EncDES3EDECBC, ipsec.EncNull}
)

// String describes the subscriber without its secrets (K, OPc, Password).
func (s Subscriber) String() string {
	return fmt.Sprintf("Subscriber{IMPI: %s, IMPUs: %v, SQN: %#x, AMF: %x, K/OPc: [redacted]}", s.IMPI, s.IMPUs, s.SQN, s.AMF)
}

// GoString is String: %#v must not print the keys either.
func (s Subscriber) GoString() string { return s.String() }

// LogValue implements slog.LogValuer without the secrets.
func (s Subscriber) LogValue() slog.Value {
	return slog.GroupValue(slog.String("impi", s.IMPI), slog.Any("impus", s.IMPUs), slog.Uint64("sqn", s.SQN))
}
