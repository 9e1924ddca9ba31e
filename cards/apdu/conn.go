package apdu

import (
	"errors"
	"fmt"
)

// Transport carries one command APDU to a card and brings back its response
// APDU (data followed by SW1 SW2). It does not interpret status words: a
// PC/SC reader, the virtual UICC in cards/vcard and the scripted double in
// apdutest all implement it.
//
// The returned slice may be overwritten by the next Transmit.
type Transport interface {
	Transmit(cmd []byte) ([]byte, error)
}

// Protocol is the transmission protocol of ISO/IEC 7816-3 the reader
// negotiated from the ATR.
type Protocol int

const (
	T0 Protocol = 0 // character protocol: case-4 commands go without Le
	T1 Protocol = 1 // block protocol: APDUs pass unchanged
)

func (p Protocol) String() string {
	switch p {
	case T0:
		return "T=0"
	case T1:
		return "T=1"
	}
	return fmt.Sprintf("T=%d?", int(p))
}

// Limits on what one command may chain, so that a card that keeps answering
// 61xx cannot keep the UE busy forever.
const (
	maxGetResponse = 32
	maxResponse    = 64 << 10
)

// Errors of the transport-level procedure.
var (
	ErrTooManyGetResponse = errors.New("apdu: card kept answering 61xx")
	ErrRepeated6C         = errors.New("apdu: card answered 6Cxx again after a resend with its Le")
)

// Conn runs commands over a Transport the way ISO/IEC 7816-3 §12 (and TS 102
// 221 §7.3) expects of a terminal, because neither pcscd nor the usual
// readers do it:
//
//   - under T=0 a case-4 command is sent as case 3 (no Le); the card then
//     answers 61xx;
//   - on 61xx, GET RESPONSE (INS C0, Le = xx) fetches the data, repeatedly,
//     the parts concatenated; its CLA keeps the command's logical channel;
//   - on 6Cxx (wrong Le), the command is sent once more with Le = xx.
//
// A Conn is not safe for concurrent use; Response.Data is valid until the
// next call.
type Conn struct {
	t     Transport
	proto Protocol
	cmd   []byte // encoding buffer
	data  []byte // accumulated response data
}

// NewConn returns a Conn sending over t with the protocol the reader
// negotiated.
func NewConn(t Transport, p Protocol) *Conn {
	return &Conn{t: t, proto: p, cmd: make([]byte, 0, 5+MaxData+1), data: make([]byte, 0, 512)}
}

// Protocol returns the protocol given to NewConn.
func (c *Conn) Protocol() Protocol { return c.proto }

// Transmit sends cmd and returns the final response: the data of every 61xx
// part joined, and the status word of the last part. A status word other
// than 61xx or 6Cxx is returned as is, with a nil error: judging it is the
// caller's business. The error is non-nil only when the exchange itself
// failed.
func (c *Conn) Transmit(cmd Command) (Response, error) {
	c.data = c.data[:0]
	r, err := c.exchange(&cmd)
	if err != nil {
		return Response{}, err
	}
	for i := 0; r.SW.SW1() == 0x61; i++ {
		if i == maxGetResponse {
			return Response{}, fmt.Errorf("%w (%d times)", ErrTooManyGetResponse, i)
		}
		c.data = append(c.data, r.Data...)
		if len(c.data) > maxResponse {
			return Response{}, fmt.Errorf("apdu: response longer than %d bytes", maxResponse)
		}
		gr := Command{CLA: GetResponseCLA(cmd.CLA), INS: 0xC0, Ne: neFromLe(r.SW.SW2())}
		if r, err = c.exchange(&gr); err != nil {
			return Response{}, fmt.Errorf("GET RESPONSE: %w", err)
		}
	}
	c.data = append(c.data, r.Data...)
	return Response{Data: c.data, SW: r.SW}, nil
}

// exchange sends cmd once, and once more with the card's Le after 6Cxx.
func (c *Conn) exchange(cmd *Command) (Response, error) {
	r, err := c.send(cmd)
	if err != nil || r.SW.SW1() != 0x6C {
		return r, err
	}
	again := *cmd
	again.Ne = neFromLe(r.SW.SW2())
	if r, err = c.send(&again); err != nil {
		return r, err
	}
	if r.SW.SW1() == 0x6C {
		return Response{}, fmt.Errorf("%w (%v)", ErrRepeated6C, r.SW)
	}
	return r, nil
}

func (c *Conn) send(cmd *Command) (Response, error) {
	// T=0 has no way to carry Le after command data: the card answers 61xx.
	withLe := !(c.proto == T0 && len(cmd.Data) > 0)
	var err error
	if c.cmd, err = cmd.appendLe(c.cmd[:0], withLe); err != nil {
		return Response{}, err
	}
	raw, err := c.t.Transmit(c.cmd)
	if err != nil {
		return Response{}, err
	}
	return ParseResponse(raw)
}

// Wipe zeroes the Conn's buffers, so that a PIN sent in the last command
// does not stay in memory.
func (c *Conn) Wipe() {
	clear(c.cmd[:cap(c.cmd)])
	clear(c.data[:cap(c.data)])
}

// GetResponseCLA returns the class byte of a GET RESPONSE that follows a
// command sent with cla: the interindustry class 00 (or 40 for the further
// logical channels 4-19) with cla's logical-channel bits, so the response is
// fetched on the channel that produced it. The GSM class A0 stays A0.
func GetResponseCLA(cla byte) byte {
	switch {
	case cla == 0xA0:
		return 0xA0
	case cla&0x40 != 0: // 4X, 6X, CX, EX: channel 4 + low nibble
		return 0x40 | cla&0x0F
	default: // 0X, 2X, 8X, AX: channel in b2-b1
		return cla & 0x03
	}
}
