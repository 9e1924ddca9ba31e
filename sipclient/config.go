package sipclient

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/sipnet"
)

// Defaults. DefaultPort is the SIP port (RFC 3261 §19.1.2): the P-CSCF's
// when Config.PCSCF has none, and the Config.LocalPort a UE needs towards a
// Kamailio P-CSCF, which accepts an initial REGISTER only from it (the
// README's Interop table).
const (
	DefaultPort         = 5060
	DefaultExpires      = 600000 * time.Second // what commercial UEs request
	DefaultDeregTimeout = 4 * time.Second
	DefaultMaxUDPSize   = 1300 // RFC 3261 §18.1.1, path MTU unknown
	// ICSIMMTel is the MMTel service identifier (TS 24.173 §5.1, IR.92).
	ICSIMMTel = "urn:urn-7:3gpp-service.ims.icsi.mmtel"
	// DefaultMinRefresh is the default floor of the refresh interval.
	DefaultMinRefresh = 5 * time.Second
)

// DefaultAlgs and DefaultEAlgs are offered when Config.Algs or EAlgs is
// empty, in preference order. Together they make four Security-Client
// entries, which real P-CSCFs (Kamailio 5.6 included) accept.
var (
	DefaultAlgs  = []ipsec.Auth{ipsec.AuthHMACSHA196, ipsec.AuthHMACMD596}
	DefaultEAlgs = []ipsec.Enc{ipsec.EncAESCBC, ipsec.EncNull}
)

// Config is what a Client needs. Auth and PCSCF are required; every other
// zero field takes the documented default.
type Config struct {
	// Auth answers the AKA challenges (software ISIM, card, or a test
	// double). The Client does not close it.
	Auth isim.Authenticator
	// Identity overrides Auth.Identity (e.g. an IMPU from the profile).
	Identity *isim.Identity

	// PCSCF is the P-CSCF's unprotected address; port 0 means 5060.
	PCSCF netip.AddrPort
	// LocalIP is the UE address; zero means the source address the kernel
	// routes towards PCSCF.
	LocalIP netip.Addr
	// LocalPort is the unprotected port the initial REGISTER leaves from;
	// 0 lets the system pick an ephemeral one (UDP: bound once; TCP: one
	// per connection). Set DefaultPort for a P-CSCF that insists on 5060.
	LocalPort uint16
	// ServerPort is port_us, the protected server port, kept for the whole
	// life of the Client; 0 lets the system pick one.
	ServerPort uint16
	// ClientPort, when set, is port_uc of the initial registration's SA
	// set (for reproducible captures); re-registrations take new ports
	// (TS 33.203 §7.4). It must differ from ServerPort and LocalPort.
	ClientPort uint16
	// Transport is "udp" (default) or "tcp".
	Transport string

	// Backend installs the SA sets; nil means ipsec.None{} (plan only).
	Backend ipsec.Backend
	// Algs and EAlgs are offered in Security-Client, in preference order
	// (one entry per pair, algs outer). Empty means DefaultAlgs/DefaultEAlgs.
	Algs  []ipsec.Auth
	EAlgs []ipsec.Enc

	// AKAv2 announces AKAv2-MD5 in the initial Authorization (the S-CSCF
	// chooses the algorithm in its challenge) and refuses a challenge with
	// a weaker algorithm (ErrAlgorithmDowngrade). Without it the UE answers
	// AKAv1-MD5, AKAv2-MD5 or (with Password) MD5, whichever it is given.
	AKAv2 bool
	// Password answers a plain MD5 Digest challenge (cores without AKA).
	Password string

	// Expires is the registration lifetime requested; 0 means
	// DefaultExpires. It is sent in whole seconds.
	Expires time.Duration
	// DeregTimeout bounds the wait for the answer to the de-REGISTER: a
	// Kamailio P-CSCF deletes its SAs before forwarding the 200, so the
	// answer may never arrive. 0 means DefaultDeregTimeout.
	DeregTimeout time.Duration
	// Timers are the SIP timers: UDP retransmissions start at T1, double up
	// to T2, and a transaction fails after Timer F = 64·T1. Zero fields
	// take a UE's values of TS 24.229 Table 7.7.1 (sipnet.UETimers: T1
	// 2 s, T2 16 s, T4 17 s, so Timer F is 128 s).
	Timers sipnet.Timers
	// Net is where the sockets come from; nil means the host's kernel
	// (sipnet.Kernel). Tests use an in-memory network (sipnet/memnet).
	Net sipnet.Net
	// MaxUDPSize is the largest request sent over UDP; a larger one goes
	// over TCP as RFC 3261 §18.1.1 requires (falling back to UDP if the
	// connection is refused). 0 means DefaultMaxUDPSize; negative means no
	// limit.
	MaxUDPSize int
	// Instance is the Contact's +sip.instance (RFC 5626 §4.1, TS 24.229
	// §5.1.1.2.1): the IMEI URN of TS 23.003 §13.8, or a UUID URN kept
	// stable across runs. Empty: none (and no GRUU is asked for).
	Instance string
	// ICSI lists the IMS communication service identifiers put in the
	// Contact's +g.3gpp.icsi-ref (TS 24.229 §5.1.1.2.1, §7.9.2); nil means
	// MMTel (IR.92), an empty non-nil slice none.
	ICSI []string
	// SMSIP adds +g.3gpp.smsip to the Contact (TS 24.341 §5.3.1.2).
	SMSIP bool
	// PANI, when set, is sent as P-Access-Network-Info (TS 24.229 §7.2A.4).
	PANI string
	// MinRefresh is the shortest interval between two refreshes, however
	// short the lifetime granted (a broken or hostile registrar granting
	// 1 s must not make the UE refresh in a loop). 0 means
	// DefaultMinRefresh; tests with lifetimes of seconds lower it.
	MinRefresh time.Duration
	// AllowUnauthenticated accepts a 200 OK to the initial REGISTER that
	// came without a challenge (no authentication of the network, no SAs);
	// by default that is ErrUnauthenticated.
	AllowUnauthenticated bool
	// NoRegEvent disables the reg-event subscription in Run.
	NoRegEvent bool
	// UserAgent is sent in User-Agent; empty means "imsue".
	UserAgent string
	// Headers are added to every REGISTER and SUBSCRIBE, each "Name: value"
	// (e.g. a P-Access-Network-Info some cores require, TS 24.229
	// §5.1.1.2.1). A header replaces the UE's own header of the same name,
	// compared case-insensitively.
	Headers []string

	// Trace receives every SIP message sent and received, timestamped,
	// as text (--trace). Only this Client's messages: the trace does not
	// use sipgo's process-global tracer.
	Trace io.Writer
	// Capture receives every SIP message as a packet (e.g. a PcapWriter).
	Capture sipnet.PacketSink
	// Logger receives state changes (registered, refreshed, SA sets);
	// nil discards them.
	Logger *slog.Logger
}

// settings is Config with defaults applied and fields checked.
type settings struct {
	Config
	network    string // "udp" or "tcp"
	pcscf      netip.AddrPort
	expires    time.Duration
	deregWait  time.Duration
	timers     sipnet.Timers
	minRefresh time.Duration
	icsi       []string
	maxUDP     int // 0 = unlimited
	backend    ipsec.Backend
	algs       []ipsec.Auth
	ealgs      []ipsec.Enc
	userAgent  string
	extra      [][2]string // Headers, split
	log        *slog.Logger
}

func (cfg *Config) settings() (*settings, error) {
	s := &settings{Config: *cfg}
	if cfg.Auth == nil {
		return nil, errors.New("sipclient: Config.Auth is nil")
	}
	if !cfg.PCSCF.Addr().IsValid() {
		return nil, errors.New("sipclient: Config.PCSCF: no address")
	}
	s.pcscf = netip.AddrPortFrom(cfg.PCSCF.Addr().Unmap(), cfg.PCSCF.Port())
	if s.pcscf.Port() == 0 {
		s.pcscf = netip.AddrPortFrom(s.pcscf.Addr(), DefaultPort)
	}
	if cfg.LocalIP.IsValid() {
		s.LocalIP = cfg.LocalIP.Unmap()
		if s.LocalIP.Is4() != s.pcscf.Addr().Is4() {
			return nil, fmt.Errorf("sipclient: Config.LocalIP %s and PCSCF %s are of different address families", s.LocalIP, s.pcscf.Addr())
		}
	}
	if cfg.ServerPort != 0 && cfg.ServerPort == cfg.LocalPort {
		return nil, fmt.Errorf("sipclient: Config.ServerPort %d equals the unprotected port", cfg.ServerPort)
	}
	switch strings.ToLower(cfg.Transport) {
	case "", "udp":
		s.network = "udp"
	case "tcp":
		s.network = "tcp"
	default:
		return nil, fmt.Errorf("sipclient: Config.Transport %q: want udp or tcp", cfg.Transport)
	}
	s.expires = cfg.Expires
	if s.expires == 0 {
		s.expires = DefaultExpires
	}
	if s.expires < time.Second {
		return nil, fmt.Errorf("sipclient: Config.Expires %s is shorter than 1 s", cfg.Expires)
	}
	s.deregWait = cfg.DeregTimeout
	if s.deregWait <= 0 {
		s.deregWait = DefaultDeregTimeout
	}
	if cfg.ClientPort != 0 && (cfg.ClientPort == cfg.ServerPort || cfg.ClientPort == cfg.LocalPort) {
		return nil, fmt.Errorf("sipclient: Config.ClientPort %d is also the server or the unprotected port", cfg.ClientPort)
	}
	if cfg.ServerPort != 0 && cfg.ServerPort == cfg.LocalPort {
		return nil, fmt.Errorf("sipclient: Config.ServerPort %d is also the unprotected port", cfg.ServerPort)
	}
	s.icsi = cfg.ICSI
	if s.icsi == nil {
		s.icsi = []string{ICSIMMTel}
	}
	for _, u := range s.icsi {
		if !strings.HasPrefix(strings.ToLower(u), "urn:") || strings.ContainsAny(u, "\",; \t\r\n") {
			return nil, fmt.Errorf("sipclient: Config.ICSI: %q is not a URN", u)
		}
	}
	if strings.ContainsAny(cfg.Instance, "\"<>\r\n") || (cfg.Instance != "" && !strings.HasPrefix(strings.ToLower(cfg.Instance), "urn:")) {
		return nil, fmt.Errorf("sipclient: Config.Instance: %q is not a URN", cfg.Instance)
	}
	if strings.ContainsAny(cfg.PANI, "\r\n") {
		return nil, errors.New("sipclient: Config.PANI: more than one line")
	}
	s.timers = cfg.Timers
	if s.timers.T1 <= 0 {
		s.timers.T1 = sipnet.UETimers.T1
	}
	if s.timers.T2 <= 0 {
		s.timers.T2 = max(sipnet.UETimers.T2, s.timers.T1)
	}
	if s.timers.T4 <= 0 {
		s.timers.T4 = sipnet.UETimers.T4
	}
	if s.minRefresh = cfg.MinRefresh; s.minRefresh <= 0 {
		s.minRefresh = DefaultMinRefresh
	}
	switch {
	case cfg.MaxUDPSize == 0:
		s.maxUDP = DefaultMaxUDPSize
	case cfg.MaxUDPSize < 0:
		s.maxUDP = 0
	default:
		s.maxUDP = cfg.MaxUDPSize
	}
	s.backend = cfg.Backend
	if s.backend == nil {
		s.backend = ipsec.None{}
	}
	s.algs, s.ealgs = cfg.Algs, cfg.EAlgs
	if len(s.algs) == 0 {
		s.algs = DefaultAlgs
	}
	if len(s.ealgs) == 0 {
		s.ealgs = DefaultEAlgs
	}
	s.userAgent = cfg.UserAgent
	if s.userAgent == "" {
		s.userAgent = "imsue"
	}
	for _, h := range cfg.Headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("sipclient: Config.Headers: %q is not \"Name: value\" on one line", h)
		}
		switch strings.ToLower(name) {
		case "via", "v", "call-id", "i", "cseq", "from", "f", "to", "t", "content-length", "l",
			"contact", "m", "expires", "authorization", "security-client", "security-verify":
			return nil, fmt.Errorf("sipclient: Config.Headers: %s is the UE's own", name)
		}
		s.extra = append(s.extra, [2]string{name, strings.TrimSpace(value)})
	}
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}
