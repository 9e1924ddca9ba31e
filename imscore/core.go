package imscore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/digest"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// ErrNotRegistered is returned by Deregister and Reauthenticate for a public
// identity that has no active registration.
var ErrNotRegistered = errors.New("imscore: public identity not registered")

// ErrClosed is returned by the methods of a closed Core.
var ErrClosed = errors.New("imscore: core closed")

// Core is a running lab IMS core: the P-CSCF, S-CSCF and HSS roles of one
// home network collapsed into one process. The roles keep the interfaces a
// real deployment has between them: the P-CSCF does sec-agree and the SAs
// and decides what reaches the S-CSCF, the S-CSCF authenticates and
// registers with vectors from the HSS, and the P-CSCF alone knows CK and IK
// and strips them (unless CKIKInChallenge).
type Core struct {
	cfg Config
	log *slog.Logger
	hss hssClient         // the S-CSCF's Cx peer
	tp  *sipnet.Transport // every socket of the core

	epMu sync.Mutex
	eps  map[uint16]*endpoint // bound ports by number

	ctx       context.Context
	cancel    context.CancelFunc
	stopWatch func() bool    // unregisters the context.AfterFunc that closes the core with Start's ctx
	wg        sync.WaitGroup // timer callbacks and the TCP drain goroutines; added to only under mu while not closed

	ready  chan struct{} // closed once Start has bound the ports
	bindIP netip.Addr    // Config.Addr's IP (may be unspecified)
	unprot *endpoint     // Config.Addr
	server *endpoint     // port_ps

	// mu guards the registrar and security-association state below. No I/O
	// happens under it: what the state decided is queued in ioq (later) and
	// run, in order, by the goroutine that releases mu (unlock).
	mu       sync.Mutex
	ioq      []func() error
	spiHeld  map[uint32]bool // SPIs of SA sets being installed outside mu
	closed   bool
	epoch    uint64                     // bumped by Restart: timers of an older epoch do nothing
	bindings map[string]*binding        // by bindingKey
	sets     map[uint64]*secSet         // every installed SA set
	byFlow   map[netip.AddrPort]*secSet // (UE IP, port_uc) → the set protected requests arrive over
	subs     map[string]*subscription   // reg-event subscriptions by dialog
	notifyWG sync.WaitGroup             // NOTIFY transactions in flight

	stats counters

	closeOnce sync.Once
	closeErr  error
}

// Start binds the P-CSCF's unprotected port (UDP and TCP) and its protected
// server port, and serves until Close or until ctx is done.
func Start(ctx context.Context, cfg Config) (*Core, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &Core{
		cfg:      cfg,
		log:      cfg.Logger,
		eps:      map[uint16]*endpoint{},
		ctx:      cctx,
		cancel:   cancel,
		bindIP:   cfg.Addr.Addr(),
		bindings: map[string]*binding{},
		sets:     map[uint64]*secSet{},
		byFlow:   map[netip.AddrPort]*secSet{},
		subs:     map[string]*subscription{},
		spiHeld:  map[uint32]bool{},
		ready:    make(chan struct{}),
	}
	h := newHSS(cfg.Subscribers)
	h.faults, h.log = cfg.Faults, cfg.Logger
	c.hss = h
	var sinks []sipnet.PacketSink
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		sinks = append(sinks, logSink{c.log})
	}
	c.tp = sipnet.New(sipnet.Config{Net: cfg.Net, Timers: cfg.Timers, Sinks: sinks, Handler: c.receive, Log: c.log})
	// The ports serve as soon as they are bound: requests wait for ready
	// (receive), so that none sees c.unprot or c.server unset.
	c.unprot, err = c.bindEndpoint(cfg.Addr.Port(), roleUnprotected)
	if err != nil {
		err = fmt.Errorf("imscore: P-CSCF unprotected port: %w", err)
	} else if cfg.isAKA() && !cfg.CKIKInChallenge {
		if c.server, err = c.bindEndpoint(cfg.PortPS, roleServer); err != nil {
			err = fmt.Errorf("imscore: P-CSCF protected server port (port_ps): %w", err)
		}
	}
	if err != nil {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.ready)
		c.tp.Close()
		cancel()
		return nil, err
	}
	close(c.ready)
	// Start's ctx ends the core. context.AfterFunc runs Close in a goroutine
	// of its own only once ctx is done; Close unregisters it otherwise, so
	// that no goroutine outlives Close.
	c.stopWatch = context.AfterFunc(ctx, func() { c.Close() })
	c.log.Info("lab IMS core started", "addr", c.Addr(), "port_ps", c.PortPS(), "domain", cfg.Domain,
		"algorithm", cfg.Algorithm, "qop", cfg.QOP, "ipsec", cfg.IPsec.Name(), "subscribers", len(cfg.Subscribers))
	return c, nil
}

// Addr returns the bound unprotected address (UDP and TCP).
func (c *Core) Addr() netip.AddrPort { return c.unprot.addr }

// PortPS returns the protected server port, or 0 when the core does no
// sec-agree (MD5 or CKIKInChallenge).
func (c *Core) PortPS() uint16 {
	if c.server == nil {
		return 0
	}
	return c.server.addr.Port()
}

// Close stops serving, removes every SA set the core installed and waits
// for its goroutines. It does not close Config.IPsec. Close is idempotent.
func (c *Core) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Core) close() error {
	if c.stopWatch != nil {
		c.stopWatch()
	}
	c.mu.Lock()
	c.closed = true
	c.epoch++
	c.resetLocked("core closed")
	err := c.unlock() // removes the SA sets

	c.cancel()
	c.tp.Close()
	c.notifyWG.Wait()
	c.wg.Wait()
	c.log.Info("lab IMS core stopped")
	return err
}

// Restart simulates a P-CSCF restart: every registration, subscription,
// pending challenge and SA set is dropped while the ports keep listening.
// A UE must re-register from scratch; until then its protected requests
// match no SA set and are discarded. The HSS keeps its SQNs.
func (c *Core) Restart() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.epoch++
	c.resetLocked("P-CSCF restart")
	c.tp.ForgetServerTxs()
	c.stats.restarts.Add(1)
	c.log.Info("P-CSCF restarted: all registrations and SAs dropped")
	return c.unlock()
}

// resetLocked drops every binding, subscription and SA set; the SA sets
// are removed when mu is released (unlock reports the errors).
func (c *Core) resetLocked(why string) {
	for _, b := range c.bindings {
		b.stopTimers()
	}
	for _, s := range c.subs {
		s.stop()
	}
	ids := make([]uint64, 0, len(c.sets))
	for id := range c.sets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c.dropSetLocked(c.sets[id], why)
	}
	clear(c.bindings)
	clear(c.subs)
}

// later queues I/O that a decision under c.mu calls for (sending,
// installing or removing SAs, closing ports); it runs when c.mu is
// released by unlock, in the order queued. Call it under c.mu.
func (c *Core) later(f func() error) { c.ioq = append(c.ioq, f) }

// unlock releases c.mu and then runs the I/O queued under it, returning
// the errors the queued functions returned.
func (c *Core) unlock() error {
	q := c.ioq
	c.ioq = nil
	c.mu.Unlock()
	var errs []error
	for _, f := range q {
		if err := f(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unlockQuiet is unlock for callers that have no use for the errors (the
// queued functions log them).
func (c *Core) unlockQuiet() { _ = c.unlock() }

// localFor returns the core's own address towards ue: Config.Addr's IP, or
// when that is unspecified the source address the kernel would route from.
func (c *Core) localFor(ue netip.Addr) netip.Addr {
	if !c.bindIP.IsUnspecified() {
		return c.bindIP
	}
	if a, ok := c.tp.Net().LocalFor(ue); ok {
		return a
	}
	return c.bindIP
}

// ---- state -------------------------------------------------------------

// bindState is the S-CSCF's state of one contact binding.
type bindState uint8

const (
	statePending    bindState = iota + 1 // challenged, never registered yet
	stateRegistered                      // registered (possibly with a re-authentication in progress)
)

func (s bindState) String() string {
	switch s {
	case statePending:
		return "pending"
	case stateRegistered:
		return "registered"
	}
	return "unknown"
}

// binding is one registered (or being registered) contact of a subscriber,
// with the SA sets the P-CSCF keeps for it.
type binding struct {
	key        string
	sub        Subscriber // identities only are used
	contact    *sip.ContactHeader
	ue         netip.AddrPort // the UE's IP and port_us (its Contact address)
	transport  string
	state      bindState
	expires    time.Time
	granted    time.Duration
	event      string // the last reginfo contact event (registered, refreshed, shortened)
	contactID  string
	chal       *challenge
	path       []string
	cur        *secSet        // established: carries the UE's traffic
	next       *secSet        // temporary: from the last 401, awaiting the protected REGISTER
	old        *secSet        // the previous established set, until the new one carries traffic
	flow       netip.AddrPort // MD5: where the REGISTER came from (its flow)
	expTimer   *time.Timer
	authTimer  *time.Timer
	registered time.Time
}

func (b *binding) stopTimers() {
	if b.expTimer != nil {
		b.expTimer.Stop()
	}
	if b.authTimer != nil {
		b.authTimer.Stop()
	}
}

// challenge is one outstanding digest challenge of the S-CSCF.
type challenge struct {
	dc  digest.Challenge // as sent (without ck and ik)
	vec vector           // AKA only
	set *secSet          // the temporary SA set created with it
}

// setState is the P-CSCF's state of one SA set (TS 33.203 §7.4).
type setState uint8

const (
	setTemporary setState = iota + 1
	setEstablished
	setOld
)

func (s setState) String() string {
	switch s {
	case setTemporary:
		return "temporary"
	case setEstablished:
		return "established"
	case setOld:
		return "old"
	}
	return "unknown"
}

// secSet is one security agreement with a UE and the mirror SA set the
// P-CSCF installed for it.
type secSet struct {
	id          uint64
	state       setState
	b           *binding
	ue, local   netip.Addr
	transport   string
	mech        mt.Mechanism   // the entry the UE is expected to choose, with the P-CSCF's parameters
	client      mt.Params      // the UE's spi_uc, spi_us, port_uc, port_us
	server      mt.Params      // the P-CSCF's spi_pc, spi_ps, port_pc, port_ps
	clientMechs []mt.Mechanism // the Security-Client that created the set
	serverMechs []mt.Mechanism // the Security-Server the P-CSCF sent
	sa          *ipsec.SASet
	pc          *endpoint    // port_pc
	tcpOut      *sipnet.Conn // TCP connection dialled from port_pc, for requests to the UE
	expires     time.Time    // established: registration expiry + 30 s (TS 33.203 §7.1)
	timer       *time.Timer
	removed     bool
}

func (s *secSet) flow() netip.AddrPort { return netip.AddrPortFrom(s.ue, s.client.PortC) }

// toUE is the route for the P-CSCF's UDP messages to the UE over this set:
// port_pc → port_us.
func (s *secSet) toUE() route {
	return udpRoute(s.pc, netip.AddrPortFrom(s.ue, s.client.PortS))
}

// bindingKey identifies a binding: the private identity and the contact's
// host and port.
func bindingKey(impi string, contact sip.Uri) string {
	return strings.ToLower(impi) + "\x00" + strings.ToLower(contact.Host) + ":" + fmt.Sprint(contact.Port)
}

// after runs f under c.mu after d, unless the core restarted or closed
// meanwhile. Call it under c.mu.
func (c *Core) after(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, c.guarded(f))
}

// guarded returns a function that runs f under c.mu, unless the core
// restarted or closed since guarded was called. Call it under c.mu. The
// call is counted in c.wg, so that Close waits for a timer callback that
// began before it.
func (c *Core) guarded(f func()) func() {
	epoch := c.epoch
	return func() {
		c.mu.Lock()
		if c.closed || c.epoch != epoch {
			c.mu.Unlock()
			return
		}
		c.wg.Add(1)
		defer c.wg.Done() // after the queued I/O
		f()
		c.unlockQuiet()
	}
}

// goLocked runs f in a goroutine that Close waits for. Call it under c.mu;
// it does nothing once the core is closed.
func (c *Core) goLocked(f func()) {
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// checkInvariants verifies the P-CSCF's bookkeeping (for tests and fuzzing):
// every live SA set belongs to a binding in the slot its state names and is
// the set of its flow, and every binding's sets are live.
func (c *Core) checkInvariants() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.sets {
		switch {
		case s.removed:
			return fmt.Errorf("set %d: removed but still listed", id)
		case s.b == nil:
			return fmt.Errorf("set %d: no binding", id)
		case c.byFlow[s.flow()] != s:
			return fmt.Errorf("set %d: not the set of its flow %v", id, s.flow())
		}
		var slot *secSet
		switch s.state {
		case setTemporary:
			slot = s.b.next
		case setEstablished:
			slot = s.b.cur
		case setOld:
			slot = s.b.old
		}
		if slot != s {
			return fmt.Errorf("set %d (%v): not in its binding's %v slot", id, s.state, s.state)
		}
	}
	for flow, s := range c.byFlow {
		if c.sets[s.id] != s {
			return fmt.Errorf("flow %v: set %d is not live", flow, s.id)
		}
	}
	for key, b := range c.bindings {
		for _, s := range []*secSet{b.cur, b.next, b.old} {
			if s != nil && c.sets[s.id] != s {
				return fmt.Errorf("binding %q: set %d is not live", key, s.id)
			}
		}
		if b.state == statePending && b.cur != nil {
			return fmt.Errorf("binding %q: pending with an established set", key)
		}
	}
	return nil
}
