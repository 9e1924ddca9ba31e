package vcard

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// vpcd control bytes (vsmartcard's vpcd protocol): a one-byte payload.
const (
	ctrlPowerOff = 0x00
	ctrlPowerOn  = 0x01
	ctrlReset    = 0x02
	ctrlGetATR   = 0x04
)

// Serve speaks vpcd's protocol on conn until ctx ends or vpcd closes the
// connection (pcscd stopping): both directions carry a 2-byte big-endian
// length and a payload; a 1-byte payload from vpcd is a control (power off,
// power on, reset: no reply; get ATR: the ATR), anything longer a command
// APDU answered with the response APDU. Closing the connection removes the
// card. A nil error means vpcd went away or ctx ended.
//
// Before each read the socket re-arms TCP_QUICKACK: vpcd waits for each
// reply before sending more, so delayed ACKs meeting Nagle on vpcd's side
// would otherwise cost 40 ms or more per APDU.
func (c *Card) Serve(ctx context.Context, conn net.Conn) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	var hdr [2]byte
	buf := make([]byte, 0, 512)
	out := make([]byte, 0, 512)
	quick := !c.cfg.NoQuickACK
	for {
		if quick {
			quickACK(conn)
		}
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return endErr(ctx, err)
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if quick {
			quickACK(conn)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			return endErr(ctx, err)
		}
		var reply []byte
		switch {
		case n == 0:
			continue
		case n == 1:
			switch buf[0] {
			case ctrlPowerOn, ctrlReset:
				c.powerUp()
			case ctrlPowerOff:
				c.Reset()
			case ctrlGetATR:
				reply = c.atr
			}
			if reply == nil {
				continue
			}
		default:
			reply, _ = c.Transmit(buf)
		}
		out = binary.BigEndian.AppendUint16(out[:0], uint16(len(reply)))
		out = append(out, reply...)
		if _, err := conn.Write(out); err != nil { // one write: one segment
			return endErr(ctx, err)
		}
	}
}

func endErr(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("vpcd: %w", err)
}

// Dial connects to vpcd at addr (host:port; vpcd's default slot is port
// 35963) — which inserts the card — and serves it until ctx ends or vpcd
// closes the connection.
func (c *Card) Dial(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("vpcd %s: %w", addr, err)
	}
	defer conn.Close()
	return c.Serve(ctx, conn)
}
