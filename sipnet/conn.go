package sipnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Conn is one TCP connection of a Transport, dialled or accepted.
type Conn struct {
	t       *Transport
	sc      StreamConn
	key     connKey
	inbound bool // accepted (counted against MaxInbound)
	wmu     sync.Mutex
	// done is closed when the reader stops (peer closed, reset, Release).
	done chan struct{}
}

// Local returns the connection's local address.
func (c *Conn) Local() netip.AddrPort { return c.key.local }

// Remote returns the peer's address.
func (c *Conn) Remote() netip.AddrPort { return c.key.remote }

// Done is closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Dial returns the connection from local address from (port 0: a new
// connection from an ephemeral port) to dst, dialling it if there is none
// alive. The lookup is by both ends: one fixed local port may have
// connections to several peers (after a P-CSCF restart, or to the
// unprotected and a protected port) and each message must go to its own.
func (t *Transport) Dial(ctx context.Context, from, dst netip.AddrPort) (*Conn, error) {
	if from.Port() != 0 {
		t.mu.Lock()
		c := t.conns[connKey{from, dst}]
		t.mu.Unlock()
		if c != nil {
			select {
			case <-c.done:
			default:
				return c, nil
			}
		}
	}
	sc, err := t.net.DialTCP(ctx, from, dst)
	if err != nil {
		return nil, fmt.Errorf("connect TCP %s -> %s: %w", from, dst, err)
	}
	return t.adopt(sc, false)
}

func (t *Transport) adopt(sc StreamConn, inbound bool) (*Conn, error) {
	c := &Conn{t: t, sc: sc, key: connKey{sc.LocalAddr(), sc.RemoteAddr()}, inbound: inbound, done: make(chan struct{})}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		sc.Abort()
		return nil, ErrClosed
	}
	old := t.conns[c.key]
	t.conns[c.key] = c
	t.wg.Add(1)
	t.mu.Unlock()
	if old != nil {
		old.sc.Close()
	}
	go c.read()
	return c, nil
}

func (t *Transport) accept(l Listener, local netip.AddrPort) {
	defer t.wg.Done()
	for {
		sc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Debug("TCP accept", "local", local, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if n := t.inbound.Add(1); t.maxIn > 0 && n > int64(t.maxIn) {
			t.inbound.Add(-1)
			t.stats.refused.Add(1)
			sc.Abort()
			continue
		}
		if _, err := t.adopt(sc, true); err != nil {
			t.inbound.Add(-1)
			return
		}
	}
}

// Write sends one whole message on the connection, within the
// Transport's write timeout.
func (c *Conn) Write(data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.t.emit(Packet{Time: time.Now(), Sent: true, Network: "tcp", Local: c.key.local, Remote: c.key.remote, Data: data})
	if err := c.writeLocked(data); err != nil {
		return fmt.Errorf("send TCP %s -> %s: %w", c.key.local, c.key.remote, err)
	}
	return nil
}

func (c *Conn) writeLocked(b []byte) error {
	_ = c.sc.SetWriteDeadline(time.Now().Add(c.t.wtime))
	_, err := c.sc.Write(b)
	return err
}

// Abort closes the connection with a reset. A SIP endpoint closes a
// connection when it is done with it (its port is released, or it closes),
// and an orderly close would leave the 4-tuple in TIME_WAIT here: a new
// connection between the same fixed ports (5060, port_uc), as a restarted
// UE makes, would then fail with EADDRNOTAVAIL for up to a minute.
func (c *Conn) Abort() { c.sc.Abort() }

// Close closes the connection in order.
func (c *Conn) Close() { c.sc.Close() }

// Drained waits, at most max, until the peer acknowledged everything
// written, and reports whether it did.
func (c *Conn) Drained(max time.Duration) bool { return c.sc.Drained(max) }

func (c *Conn) read() {
	t := c.t
	defer t.wg.Done()
	defer close(c.done)
	defer func() {
		c.sc.Close()
		t.mu.Lock()
		if t.conns[c.key] == c {
			delete(t.conns, c.key)
		}
		t.mu.Unlock()
		if c.inbound {
			t.inbound.Add(-1)
		}
	}()
	var idle *time.Timer
	if c.inbound && t.idle > 0 {
		idle = time.AfterFunc(t.idle, func() { c.sc.Abort() })
		defer idle.Stop()
	}
	var buf []byte // the part of a message read so far, when it spans reads
	cp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(cp)
	chunk := *cp
	crlf := 0 // CRLF bytes seen since the last message, across reads
	for {
		n, err := c.sc.Read(chunk)
		if n > 0 {
			if idle != nil {
				idle.Reset(t.idle)
			}
			// Messages are framed in chunk itself unless a partial one is
			// pending: deliver only borrows their bytes.
			data := chunk[:n]
			if len(buf) > 0 {
				buf = append(buf, data...)
				data = buf
			}
			for {
				skip, size, ferr := Frame(data)
				if ferr != nil {
					t.malformed(fmt.Errorf("TCP stream from %s: %w", c.key.remote, ferr))
					return // no boundary to resynchronise on
				}
				// A double-CRLF ping is answered with a CRLF pong (RFC 5626
				// §3.5.1); it may arrive split over several reads.
				for crlf += skip; crlf >= 4; crlf -= 4 {
					c.pong()
				}
				data = data[skip:]
				if size == 0 {
					break
				}
				crlf = 0
				t.deliver(data[:size], "tcp", c.key.local, c.key.remote, c)
				data = data[size:]
			}
			// What is left is the start of a message; the next read
			// overwrites chunk, so it moves to buf.
			if len(data) == 0 {
				buf = nil
			} else {
				buf = append(buf[:0], data...)
			}
		}
		if err != nil {
			return
		}
	}
}

// chunkBufs recycles the TCP read chunks (16 KiB a connection).
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 16384); return &b }}

func (c *Conn) pong() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeLocked([]byte("\r\n")) == nil {
		c.t.stats.pongs.Add(1)
	}
}
