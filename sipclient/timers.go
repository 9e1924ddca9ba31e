package sipclient

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// refreshDelay is when to re-register after a 200 OK granting d
// (TS 24.229 §5.1.1.4.1): 600 s before expiry when d is longer than
// 1200 s, else when half of d has passed; never sooner than floor
// (Config.MinRefresh), however short the lifetime a registrar grants. The
// same rule times the reg-event subscription refresh.
func refreshDelay(d, floor time.Duration) time.Duration {
	if d > 1200*time.Second {
		return d - 600*time.Second
	}
	return max(d/2, floor)
}

// Run keeps the registration alive until ctx is done: it re-registers on
// time (a challenged re-registration brings a new SA set; the old one is
// removed once the new one carries traffic), keeps the reg-event
// subscription, and acts on its NOTIFYs (shortened: re-register by the new
// expiry; deactivated: register again from scratch; rejected, unregistered
// or terminated: return ErrTerminated). When a re-registration gets no
// answer or is rejected (the P-CSCF restarted and lost the SAs), it drops
// the SAs and registers from scratch once; if that fails too, Run returns
// the error.
//
// Run returns nil when ctx is done; the caller then calls Deregister.
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := c.scope(ctx)
	defer cancel()
	c.op.Lock()
	if c.reg == nil {
		c.op.Unlock()
		return ErrNotRegistered
	}
	c.ensureSubscribed(ctx)
	c.op.Unlock()

	refresh := time.NewTimer(time.Hour)
	defer refresh.Stop()
	resub := time.NewTimer(time.Hour)
	defer resub.Stop()
	for {
		c.op.Lock()
		refresh.Reset(max(time.Until(c.refreshAt), 0))
		subIn := time.Duration(-1)
		if c.sub != nil && c.sub.active {
			subIn = max(time.Until(c.sub.at.Add(refreshDelay(c.sub.expires, c.s.minRefresh))), 0)
		}
		c.op.Unlock()
		var resubC <-chan time.Time
		if subIn >= 0 {
			resub.Reset(subIn)
			resubC = resub.C
		}

		var err error
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrClosed) {
				return ErrClosed
			}
			return nil
		case <-refresh.C:
			c.op.Lock()
			err = c.refresh(ctx)
			c.op.Unlock()
		case <-resubC:
			c.op.Lock()
			c.subscribe(ctx)
			c.op.Unlock()
		case ev := <-c.events:
			c.op.Lock()
			err = c.onNotify(ctx, ev)
			c.op.Unlock()
		}
		if err != nil {
			if ctx.Err() != nil {
				if errors.Is(context.Cause(ctx), ErrClosed) {
					return ErrClosed
				}
				return nil
			}
			return err
		}
	}
}

// refresh re-registers over the current SAs; when that gets no answer or a
// rejection it registers from scratch (unprotected, new SAs) once. A
// rejection worth retrying (503, 500, 480, 504) is retried after its
// Retry-After or the RFC 5626 §4.5 backoff (Retry), never at once, and Run
// goes on meanwhile.
func (c *Client) refresh(ctx context.Context) error {
	_, err := c.doRegister(ctx, c.expires)
	if err == nil {
		c.failures = 0
		c.ensureSubscribed(ctx)
		return nil
	}
	if c.retryLater(ctx, err) {
		return nil
	}
	var rej *RejectedError
	if ctx.Err() != nil || !(errors.Is(err, ErrNoAnswer) || errors.As(err, &rej)) {
		return err
	}
	c.s.log.Warn("re-registration failed; registering from scratch", "err", err)
	if err := c.fromScratch(ctx); err != nil {
		if c.retryLater(ctx, err) {
			return nil
		}
		return err
	}
	c.failures = 0
	return nil
}

// retryLater schedules the next attempt after a retryable failure.
func (c *Client) retryLater(ctx context.Context, err error) bool {
	d, ok := Retry(err, c.failures+1)
	if !ok || ctx.Err() != nil {
		return false
	}
	c.failures++
	c.refreshAt = time.Now().Add(d)
	c.s.log.Warn("registration refused; retrying later", "err", err, "in", d)
	return true
}

// fromScratch drops the SAs and the dialog state and makes an initial
// registration.
func (c *Client) fromScratch(ctx context.Context) error {
	if err := c.dropSecurity(ctx); err != nil {
		return err
	}
	c.setSubscription(nil)
	if _, err := c.doRegister(ctx, c.expires); err != nil {
		c.reg = nil
		return fmt.Errorf("registering again from scratch: %w", err)
	}
	c.ensureSubscribed(ctx)
	return nil
}
