package sipnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ClientTx is one non-INVITE client transaction (RFC 3261 §17.1.2).
type ClientTx struct {
	t      *Transport
	key    txKey
	method string
	route  Route // as resolved: Conn is set over TCP, nil over UDP
	// response is the first accepted final response; final is closed once
	// it is set. (A chan *Inbound would be two allocations: the channel and
	// its buffer.)
	response atomic.Pointer[Inbound]
	final    chan struct{}
	// proceeding is set by a provisional response: over UDP the next
	// retransmission is then scheduled T2 away (RFC 3261 §17.1.2.2). Wait
	// reads it only when it schedules one, so a flag does, not a channel.
	proceeding atomic.Bool
	msg        *bytes.Buffer // the request as sent, from msgBufs; released by Wait
	Route      string        // how the request left, for logs
}

// txKey identifies a client transaction (RFC 3261 §17.1.3): the top Via's
// branch and the CSeq method. A struct rather than a joined string, so that
// matching a response builds nothing.
type txKey struct {
	branch string
	method sip.RequestMethod
}

// Request runs one non-INVITE client transaction: it sends req along r and
// returns the first final response. Over UDP it retransmits at T1, 2·T1, …
// capped at T2, and at T2 once a provisional response arrived (RFC 3261
// §17.1.2.2); it gives up after Timer F with a *TimeoutError. A request
// larger than r.MaxUDP goes over TCP (see Route.MaxUDP).
//
// Responses that arrive after Request returned (retransmissions of the
// final response) match no transaction and are counted as stray: a
// retransmitted 401 is acted on only once.
func (t *Transport) Request(ctx context.Context, req *sip.Request, r Route) (*Inbound, error) {
	tx, err := t.Start(ctx, req, r)
	if err != nil {
		return nil, err
	}
	return tx.Wait(ctx)
}

// Start opens the client transaction of req and sends req once; Wait then
// runs the transaction to its end. A started transaction must be waited
// for (or the Transport closed).
func (t *Transport) Start(ctx context.Context, req *sip.Request, r Route) (*ClientTx, error) {
	method := string(req.Method)
	via := req.Via()
	if via == nil {
		return nil, fmt.Errorf("%s: request without Via", method)
	}
	branch, _ := via.Params.Get("branch")

	msg := marshal(req)
	started := false
	defer func() {
		if !started {
			putMsgBuf(msg)
		}
	}()
	if r.Conn == nil && r.Network == "udp" && r.MaxUDP > 0 && msg.Len() > r.MaxUDP {
		via.Transport = "TCP"
		if c, err := t.Dial(ctx, r.From, r.To); err == nil {
			r.Conn = c
			msg.Reset()
			req.StringWrite(msg)
			if t.log.Enabled(ctx, slog.LevelDebug) { // boxing the arguments allocates
				t.log.Debug("request over the UDP size limit: sent over TCP", "method", method, "bytes", msg.Len(), "limit", r.MaxUDP)
			}
		} else {
			via.Transport = "UDP"
			t.log.Info("request over the UDP size limit, TCP refused: sent over UDP", "method", method, "bytes", msg.Len(), "err", err)
		}
	}
	r, err := t.resolve(ctx, r)
	if err != nil {
		if errors.Is(err, ErrLocalAddress) {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		return nil, &TransportError{Method: method, Err: err}
	}
	tx := &ClientTx{
		t: t, key: txKey{branch, req.Method}, method: method, route: r,
		final: make(chan struct{}), msg: msg,
	}
	t.txMu.Lock()
	if t.closedTx() {
		t.txMu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := t.client[tx.key]; dup {
		t.txMu.Unlock()
		return nil, fmt.Errorf("%s: branch %s already in use", method, branch)
	}
	t.client[tx.key] = tx
	t.txMu.Unlock()
	if err := tx.send(); err != nil {
		tx.forget()
		return nil, &TransportError{Method: method, Err: err}
	}
	started = true
	return tx, nil
}

func (t *Transport) closedTx() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (tx *ClientTx) forget() {
	tx.t.txMu.Lock()
	if tx.t.client[tx.key] == tx {
		delete(tx.t.client, tx.key)
	}
	tx.t.txMu.Unlock()
}

// send sends the request along its route, through the route's Gate if any.
func (tx *ClientTx) send() error {
	if tx.route.Gate != nil {
		return tx.route.Gate(tx.sendNow)
	}
	return tx.sendNow()
}

func (tx *ClientTx) sendNow() error {
	if tx.msg == nil {
		return errTxEnded
	}
	return tx.t.write(&tx.route, tx.msg.Bytes())
}

// errTxEnded: a send after Wait returned, when the request's buffer is
// no longer the transaction's.
var errTxEnded = errors.New("sipnet: transaction ended")

// Wait retransmits as the transport requires and returns the final
// response, or an error: *TimeoutError after Timer F, *TransportError when
// the connection broke first, ctx's error, or ErrClosed. It is called once:
// the transaction ends with it.
func (tx *ClientTx) Wait(ctx context.Context) (*Inbound, error) {
	defer func() {
		tx.forget()
		// Nothing sends the request any more: its buffer can be reused.
		putMsgBuf(tx.msg)
		tx.msg = nil
	}()
	timers := tx.t.timers
	conn := tx.route.Conn
	if conn == nil {
		// One timer serves retransmissions and Timer F alike, firing at
		// whichever is due first: a time.Timer costs three allocations.
		now := time.Now()
		giveUp := now.Add(timers.F())
		interval := timers.T1
		resend := now.Add(interval)
		timer := time.NewTimer(interval)
		defer timer.Stop()
		for {
			select {
			case <-tx.final:
				return tx.response.Load(), nil
			case <-timer.C:
				now := time.Now()
				if !now.Before(giveUp) {
					return nil, &TimeoutError{Method: tx.method, After: timers.F()}
				}
				if !now.Before(resend) {
					if err := tx.send(); err != nil {
						tx.t.log.Debug("retransmission failed", "method", tx.method, "err", err)
					}
					interval = timers.next(interval, tx.proceeding.Load())
					resend = time.Now().Add(interval)
				}
				timer.Reset(time.Until(earliest(resend, giveUp)))
			case <-tx.t.closing:
				return nil, fmt.Errorf("%s: %w", tx.method, ErrClosed)
			case <-ctx.Done():
				return nil, ctxError(ctx, tx.method)
			}
		}
	}
	timerF := time.NewTimer(timers.F())
	defer timerF.Stop()
	connDone := conn.Done()
	for {
		select {
		case <-tx.final:
			return tx.response.Load(), nil
		case <-timerF.C:
			return nil, &TimeoutError{Method: tx.method, After: timers.F()}
		case <-connDone:
			select {
			case <-tx.final:
				return tx.response.Load(), nil
			default:
			}
			return nil, &TransportError{Method: tx.method, Err: fmt.Errorf("connection %s -> %s closed before the final response", conn.Local(), conn.Remote())}
		case <-tx.t.closing:
			return nil, fmt.Errorf("%s: %w", tx.method, ErrClosed)
		case <-ctx.Done():
			return nil, ctxError(ctx, tx.method)
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func ctxError(ctx context.Context, method string) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
		return fmt.Errorf("%s: %w (%w)", method, ctx.Err(), cause)
	}
	return fmt.Errorf("%s: %w", method, ctx.Err())
}

// matchResponse hands a response to its client transaction (RFC 3261
// §17.1.3: the top Via's branch and the CSeq method).
func (t *Transport) matchResponse(in *Inbound, res *sip.Response) {
	via, cseq := res.Via(), res.CSeq()
	if via == nil || cseq == nil {
		t.stats.stray.Add(1)
		return
	}
	branch, _ := via.Params.Get("branch")
	t.txMu.Lock()
	tx := t.client[txKey{branch, cseq.MethodName}]
	t.txMu.Unlock()
	if tx == nil {
		t.stats.stray.Add(1) // a retransmission after the transaction ended, or not ours
		return
	}
	if tx.route.Accept != nil && !tx.route.Accept(in) {
		t.stats.unaccepted.Add(1)
		t.log.Info("response refused by its transaction", "status", res.StatusCode, "method", tx.method,
			"network", in.Network, "from", in.Remote, "to", in.Local)
		return
	}
	if res.StatusCode < 200 {
		tx.proceeding.Store(true)
		return
	}
	if tx.response.CompareAndSwap(nil, in) {
		close(tx.final)
	} else {
		t.stats.stray.Add(1) // retransmitted final response, absorbed
	}
}
