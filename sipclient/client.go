// Package sipclient is the UE side of IMS registration: the REGISTER state
// machine of TS 24.229 §5.1.1 with Digest AKA (RFC 3310/4169), RFC 3329
// sec-agree and the TS 33.203 SA sets, the refresh timer, the reg-event
// subscription (RFC 3680) and de-registration.
//
// A registration goes like this:
//
//	REGISTER (unprotected port → P-CSCF:5060; Security-Client, empty Authorization)
//	401 (WWW-Authenticate: RAND‖AUTN; Security-Server)
//	    AKA on the ISIM; choose the mechanism; install 4 SAs (temporary)
//	REGISTER (port_uc → port_ps; Authorization response, the same
//	          Security-Client, Security-Verify = the Security-Server text)
//	200 (P-Associated-URI, Service-Route, expires): the SAs are established
//
// The messages are sipgo's (github.com/emiago/sipgo/sip); the transport and
// transaction layer is imsue's sipnet, so that every message leaves from the
// port TS 33.203 prescribes and each Client has its own timers and trace.
//
// Real P-CSCFs this tolerates (Kamailio 5.6 ims_ipsec_pcscf): one
// Security-Server without q, the 200 for UDP from port_pc to port_us, and a
// de-REGISTER whose 200 never arrives (its SAs are gone before it answers):
// Deregister waits at most Config.DeregTimeout and removes the SAs anyway.
package sipclient

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// Registration is the state of a successful registration, as the 200 OK
// told it.
type Registration struct {
	IMPI string
	// IMPU is the default public identity: the first P-Associated-URI
	// (TS 24.229 §5.1.1.2.1), else the IMPU registered.
	IMPU           string
	AssociatedURIs []string // P-Associated-URI, in order
	ServiceRoute   []string // Service-Route entries, as received
	Contact        string   // the UE's contact URI
	// PubGRUU and TempGRUU are the GRUUs the registrar assigned to the
	// UE's binding (RFC 5627 §5.1), when it asked for them (Instance).
	PubGRUU, TempGRUU string
	Expires           time.Duration
	At                time.Time // when the 200 OK arrived
	// Security is the SA set in use; nil when the core uses plain MD5
	// Digest (no AKA keys, so no SAs) or did not authenticate.
	Security *Security
	// Unauthenticated: the network registered the UE without a challenge
	// (accepted only with Config.AllowUnauthenticated).
	Unauthenticated bool
	Timings         Timings
}

// Security describes the SA set of a registration (no keys).
type Security struct {
	SetID                      uint64
	Alg                        ipsec.Auth
	EAlg                       ipsec.Enc
	Mode                       ipsec.Mode
	SPIuc, SPIus, SPIpc, SPIps uint32
	PortUC, PortUS             uint16
	PortPC, PortPS             uint16
}

// Timings of the last registration procedure.
type Timings struct {
	Total     time.Duration // first REGISTER sent → 200 received
	Challenge time.Duration // first REGISTER sent → 401 received
	AKA       time.Duration // the Authenticator's answer
	SAInstall time.Duration // Backend.Install
	Protected time.Duration // protected REGISTER sent → 200 received
}

// Client is one UE registering one IMPI through one P-CSCF.
//
// Register, Run and Deregister are called one after the other (Run holds
// the Client until its context ends); Close may be called at any time, also
// concurrently, and always removes every SA set the Client installed.
type Client struct {
	s      *settings
	id     isim.Identity
	domain string  // home network domain: realm, Request-URI host
	regURI string  // "sip:" + domain
	impu   sip.Uri // From and To of REGISTER
	local  netip.Addr
	portUS uint16
	// unprotPort is the unprotected port (UDP: bound; TCP: 0 means an
	// ephemeral port per connection).
	unprotPort uint16
	alloc      *mt.Allocator

	tp     *sipnet.Transport
	life   context.Context // cancelled with cause ErrClosed by Close
	kill   context.CancelCauseFunc
	closed atomic.Bool
	// malformed counts requests too broken to answer (no Via, CSeq, …).
	malformed atomic.Int64
	// unanswered counts requests that came over no live SA set.
	unanswered atomic.Int64
	// sendMu is held for reading while a response to a request that came
	// over an SA set is sent, and for writing while a set is withdrawn
	// before its removal: a response then either leaves while the SAs are
	// still there or not at all, never in clear (TS 33.203 §7.1).
	sendMu   sync.RWMutex
	respPort atomic.Uint32 // port_uc of the current set (UDP responses), 0: none

	mu        sync.Mutex
	installed map[uint64]*ipsec.SASet
	// withdrawn marks installed sets whose removal has begun: a request
	// that arrived over one of them is no longer answered (see sendMu).
	withdrawn map[uint64]bool
	subCallID string // reg-event subscription, for matching NOTIFYs

	events chan *notifyEvent

	// Registration state, guarded by op.
	op     sync.Mutex
	callID string
	cseq   uint32
	// sets is the lifecycle of the registration's SA sets (TS 33.203 §7.4):
	// the pending (temporary), current and old set, and when each goes.
	// sas holds what the UE agreed for each set sets tracks.
	sets     mt.Lifecycle
	sas      map[uint64]*saState
	digest   *digestState // what answers the last nonce again
	authed   bool         // the registration was authenticated (a challenge was answered)
	failures int          // consecutive retryable failures (Retry)
	// subRefused: the network ended the reg-event subscription for good
	// (rejected, noresource, invariant): not subscribed again.
	subRefused bool
	reg        *Registration
	expires    time.Duration // the expiry REGISTER asks for: Config.Expires, or Min-Expires after a 423
	refreshAt  time.Time
	sub        *subscription
}

// A UE accepts TCP connections on port_us from its P-CSCF only (one per
// SA set, and a restarted P-CSCF's): anyone else who opens many would grow
// it without bound. Beyond maxInbound live connections a new one is
// reset; one idle for inboundIdle is closed (a P-CSCF dials again when it
// has a request).
const (
	maxInbound  = 32
	inboundIdle = 15 * time.Minute
)

// New checks cfg, opens the unprotected socket (UDP) and port_us (UDP and
// TCP), and returns a Client ready to Register. Errors are configuration or
// local environment errors (a port in use, an address not on this host).
func New(cfg Config) (*Client, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := &Client{
		s:         s,
		installed: map[uint64]*ipsec.SASet{},
		withdrawn: map[uint64]bool{},
		sas:       map[uint64]*saState{},
		expires:   s.expires,
		events:    make(chan *notifyEvent, 16),
	}
	if cfg.Identity != nil {
		c.id = *cfg.Identity
	} else if c.id, err = cfg.Auth.Identity(context.Background()); err != nil {
		return nil, fmt.Errorf("sipclient: reading the identity: %w", err)
	}
	if err := c.setIdentity(); err != nil {
		return nil, err
	}
	if c.alloc, err = mt.NewAllocator(mt.PortRange{}, nil); err != nil {
		return nil, fmt.Errorf("sipclient: %w", err)
	}
	c.life, c.kill = context.WithCancelCause(context.Background())
	nw := cfg.Net
	if nw == nil {
		nw = sipnet.Kernel{}
	}
	c.local = s.LocalIP
	if !c.local.IsValid() {
		var ok bool
		if c.local, ok = nw.LocalFor(s.pcscf.Addr()); !ok {
			return nil, fmt.Errorf("sipclient: no route to the P-CSCF %s", s.pcscf)
		}
	}
	var sinks []sipnet.PacketSink
	if cfg.Trace != nil {
		sinks = append(sinks, sipnet.NewTextTracer(cfg.Trace))
	}
	if cfg.Capture != nil {
		sinks = append(sinks, cfg.Capture)
	}
	c.tp = sipnet.New(sipnet.Config{Net: nw, Timers: s.timers, Sinks: sinks, Handler: c.onRequest, Log: s.log,
		MaxInbound: maxInbound, IdleTimeout: inboundIdle})
	c.unprotPort = s.LocalPort
	if s.network == "udp" {
		a, err := c.tp.BindUDP(netip.AddrPortFrom(c.local, c.unprotPort))
		if err != nil {
			c.tp.Close()
			return nil, fmt.Errorf("sipclient: unprotected port: %w: %w", ErrLocalAddress, err)
		}
		c.unprotPort = a.Port()
	}
	if c.portUS, err = c.bindServerPort(); err != nil {
		c.tp.Close()
		return nil, fmt.Errorf("sipclient: port_us: %w: %w", ErrLocalAddress, err)
	}
	return c, nil
}

// setIdentity derives the home domain and the IMPU registered.
func (c *Client) setIdentity() error {
	if c.id.IMPI == "" {
		return errors.New("sipclient: identity has no IMPI")
	}
	c.domain = c.id.Domain
	if c.domain == "" {
		if _, d, ok := strings.Cut(c.id.IMPI, "@"); ok && d != "" {
			c.domain = d
		} else {
			return fmt.Errorf("sipclient: identity has no home domain and IMPI %q has no realm part", c.id.IMPI)
		}
	}
	c.regURI = "sip:" + c.domain
	impu := "sip:" + c.id.IMPI
	if len(c.id.IMPUs) > 0 {
		impu = c.id.IMPUs[0]
	}
	u, err := parseURI(impu)
	if err != nil {
		return fmt.Errorf("sipclient: IMPU: %w", err)
	}
	c.impu = u
	return nil
}

// bindServerPort binds port_us for UDP and TCP: Config.ServerPort, or the
// kept server port of the mt.Allocator.
func (c *Client) bindServerPort() (uint16, error) {
	if c.s.ServerPort != 0 {
		return c.bindServer(c.s.ServerPort)
	}
	p, err := c.alloc.Allocate() // chooses the kept server port
	if err != nil {
		return 0, err
	}
	defer func() { c.alloc.Release(p) }()
	for tries := 0; ; tries++ {
		port, err := c.bindServer(p.PortS)
		if err == nil {
			return port, nil
		}
		if tries == 16 {
			return 0, err
		}
		if p, err = c.alloc.PortBusy(p.PortS); err != nil {
			return 0, err
		}
	}
}

// bindServer binds port (0: any) for UDP and TCP.
func (c *Client) bindServer(port uint16) (uint16, error) {
	a, err := c.tp.Bind(netip.AddrPortFrom(c.local, port), false)
	return a.Port(), err
}

// LocalAddr is the UE's address; ServerPort is port_us.
func (c *Client) LocalAddr() netip.Addr { return c.local }

// ServerPort returns port_us.
func (c *Client) ServerPort() uint16 { return c.portUS }

// Identity returns the identity the Client registers.
func (c *Client) Identity() isim.Identity { return c.id }

// Registration returns a copy of the current registration, or nil.
func (c *Client) Registration() *Registration {
	c.op.Lock()
	defer c.op.Unlock()
	if c.reg == nil {
		return nil
	}
	r := *c.reg
	return &r
}

// Close removes every SA set the Client installed, closes its sockets and
// ends a running Register, Run or Deregister. It does not de-register (call
// Deregister first) and does not close Config.Auth or Config.Backend. It
// returns the first Backend error.
func (c *Client) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.kill(ErrClosed)
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	sets := make([]*ipsec.SASet, 0, len(c.installed))
	for _, set := range c.installed {
		sets = append(sets, set)
	}
	c.mu.Unlock()
	var errs []error
	for _, set := range sets {
		c.withdraw(set.ID)
		if err := c.s.backend.Remove(context.Background(), set); err != nil {
			errs = append(errs, &IPsecError{Op: "remove", Set: set.ID, Err: err})
			continue
		}
		c.mu.Lock()
		delete(c.installed, set.ID)
		delete(c.withdrawn, set.ID)
		c.mu.Unlock()
	}
	c.sets.Clear()
	clear(c.sas)
	c.digest.forget()
	c.digest = nil
	c.reg = nil
	c.tp.Close()
	return errors.Join(errs...)
}

// InstalledSets returns the IDs of the SA sets installed and not removed.
func (c *Client) InstalledSets() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]uint64, 0, len(c.installed))
	for id := range c.installed {
		ids = append(ids, id)
	}
	return ids
}
