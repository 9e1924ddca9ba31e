package imscore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/imsue/imsue/sipnet"
)

// ErrNotRegistered is returned by Deregister and Reauthenticate for a public
// identity that has no active registration.
var ErrNotRegistered = errors.New("imscore: public identity not registered")

// ErrClosed is returned by the methods of a closed Core.
var ErrClosed = errors.New("imscore: core closed")

// Core is a running lab IMS core: the P-CSCF, S-CSCF and HSS roles of one
// home network in one process, each with its own state and lock, talking
// through the interfaces a real deployment has between them (see the
// package documentation): the P-CSCF hands SIP messages to the S-CSCF
// (scscfPeer) and sends the S-CSCF's NOTIFYs to the UE (pcscfPeer), and the
// S-CSCF asks the HSS for vectors (hssClient). The Core owns what they
// share: the configuration, the transport and the bound ports, the
// counters, and the goroutines.
type Core struct {
	cfg Config
	log *slog.Logger
	tp  *sipnet.Transport // every socket of the core

	p *pcscf
	s *scscf

	epMu sync.Mutex
	eps  map[uint16]*endpoint // bound ports by number

	ctx       context.Context
	cancel    context.CancelFunc
	stopWatch func() bool    // unregisters the context.AfterFunc that closes the core with Start's ctx
	wg        sync.WaitGroup // timer callbacks and the TCP drain goroutines; added to only under a role's lock while it is open
	notifyWG  sync.WaitGroup // NOTIFY transactions in flight; the same rule

	ready  chan struct{} // closed once Start has bound the ports
	bindIP netip.Addr    // Config.Addr's IP (may be unspecified)
	unprot *endpoint     // Config.Addr
	server *endpoint     // port_ps

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
		cfg:    cfg,
		log:    cfg.Logger,
		eps:    map[uint16]*endpoint{},
		ctx:    cctx,
		cancel: cancel,
		bindIP: cfg.Addr.Addr(),
		ready:  make(chan struct{}),
	}
	h := newHSS(cfg.Subscribers)
	h.faults, h.log = cfg.Faults, cfg.Logger
	c.p = newPCSCF(c)
	c.s = &scscf{
		roleLock: roleLock{wg: &c.wg},
		c:        c,
		hss:      h,
		pcscf:    c.p,
		bindings: map[string]*binding{},
		subs:     map[string]*subscription{},
	}
	c.p.scscf = c.s
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
		for _, l := range []*roleLock{&c.p.roleLock, &c.s.roleLock} {
			l.mu.Lock()
			l.closed = true
			l.mu.Unlock()
		}
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
	c.s.mu.Lock()
	c.s.closed = true
	c.s.epoch++
	c.s.resetLocked()
	c.s.unlockQuiet()

	c.p.mu.Lock()
	c.p.closed = true
	c.p.epoch++
	c.p.resetLocked("core closed")
	err := c.p.unlock() // removes the SA sets

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
	c.s.mu.Lock()
	if c.s.closed {
		c.s.mu.Unlock()
		return ErrClosed
	}
	c.s.epoch++
	c.s.resetLocked()
	c.s.unlockQuiet()

	c.p.mu.Lock()
	if c.p.closed {
		c.p.mu.Unlock()
		return ErrClosed
	}
	c.p.epoch++
	c.p.resetLocked("P-CSCF restart")
	c.tp.ForgetServerTxs()
	c.stats.restarts.Add(1)
	c.log.Info("P-CSCF restarted: all registrations and SAs dropped")
	return c.p.unlock()
}

// resetLocked drops every binding and subscription.
func (s *scscf) resetLocked() {
	for _, b := range s.bindings {
		b.stopTimers()
	}
	for _, x := range s.subs {
		x.stop()
	}
	clear(s.bindings)
	clear(s.subs)
}

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

// roleLock is one role's lock, with what goes with it: the I/O its
// decisions queue, the closed flag and the epoch its timers check. No I/O
// happens under mu: what the state decided is queued (later) and run, in
// order, by the goroutine that releases mu (unlock).
type roleLock struct {
	mu     sync.Mutex
	ioq    []func() error
	closed bool
	epoch  uint64          // bumped by Restart and Close: timers of an older epoch do nothing
	wg     *sync.WaitGroup // the Core's: timer callbacks and goroutines
}

// later queues I/O that a decision under mu calls for (sending, installing
// or removing SAs, closing ports, handing a message to another role); it
// runs when mu is released by unlock, in the order queued. Call it under
// mu.
func (l *roleLock) later(f func() error) { l.ioq = append(l.ioq, f) }

// unlock releases mu and then runs the I/O queued under it, returning the
// errors the queued functions returned.
func (l *roleLock) unlock() error {
	q := l.ioq
	l.ioq = nil
	l.mu.Unlock()
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
func (l *roleLock) unlockQuiet() { _ = l.unlock() }

// after runs f under mu after d, unless the role restarted or closed
// meanwhile. Call it under mu.
func (l *roleLock) after(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, l.guarded(f))
}

// guarded returns a function that runs f under mu, unless the role
// restarted or closed since guarded was called. Call it under mu. The call
// is counted in the Core's WaitGroup, so that Close waits for a timer
// callback that began before it.
func (l *roleLock) guarded(f func()) func() {
	epoch := l.epoch
	return func() {
		l.mu.Lock()
		if l.closed || l.epoch != epoch {
			l.mu.Unlock()
			return
		}
		l.wg.Add(1)
		defer l.wg.Done() // after the queued I/O
		f()
		l.unlockQuiet()
	}
}

// goLocked runs f in a goroutine that Close waits for. Call it under mu;
// it does nothing once the role is closed.
func (l *roleLock) goLocked(f func()) {
	if l.closed {
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// checkInvariants verifies the P-CSCF's bookkeeping (for tests and fuzzing):
// every live SA set belongs to a contact in the slot its state names and is
// the set of its flow, and every contact's sets are live.
func (c *Core) checkInvariants() error {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, s := range p.sets {
		switch {
		case s.removed:
			return fmt.Errorf("set %d: removed but still listed", id)
		case s.b == nil:
			return fmt.Errorf("set %d: no contact", id)
		case p.ues[s.b.key] != s.b:
			return fmt.Errorf("set %d: its contact is not listed", id)
		case p.byFlow[s.flow()] != s:
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
			return fmt.Errorf("set %d (%v): not in its contact's %v slot", id, s.state, s.state)
		}
	}
	for flow, s := range p.byFlow {
		if p.sets[s.id] != s {
			return fmt.Errorf("flow %v: set %d is not live", flow, s.id)
		}
	}
	for key, u := range p.ues {
		for _, s := range []*secSet{u.cur, u.next, u.old} {
			if s != nil && p.sets[s.id] != s {
				return fmt.Errorf("contact %q: set %d is not live", key, s.id)
			}
		}
		if !u.registered && u.cur != nil {
			return fmt.Errorf("contact %q: never registered but with an established set", key)
		}
	}
	return nil
}
