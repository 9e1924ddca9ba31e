// Package apdu encodes and decodes ISO/IEC 7816-4 short APDUs and runs them
// over a Transport with the transport-level rules of ISO/IEC 7816-3 that
// PC/SC leaves to the application: GET RESPONSE after 61xx, a resend with the
// right Le after 6Cxx, and no Le on case-4 commands under T=0.
//
// Only short APDUs are supported (Lc ≤ 255, Ne ≤ 256): every UICC command
// imsue needs fits, and extended lengths are optional on UICCs.
package apdu

import (
	"errors"
	"fmt"
)

// MaxData is the largest command data field of a short APDU (Lc).
const MaxData = 255

// MaxNe is the largest expected response length of a short APDU (Le = 00).
const MaxNe = 256

// Command is one command APDU.
//
// Ne is the number of response bytes expected (ISO/IEC 7816-4 "Ne"): 0 means
// the command has no Le field, 1..256 is encoded as one Le byte (256 as 00).
// The four ISO cases follow from Data and Ne: case 1 (neither), case 2 (Ne
// only), case 3 (Data only), case 4 (both).
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	Ne               int
}

// Case returns the ISO/IEC 7816-3 command case, 1 to 4.
func (c *Command) Case() int {
	switch {
	case len(c.Data) == 0 && c.Ne == 0:
		return 1
	case len(c.Data) == 0:
		return 2
	case c.Ne == 0:
		return 3
	default:
		return 4
	}
}

// Errors from encoding and decoding.
var (
	ErrDataTooLong = errors.New("apdu: command data longer than 255 bytes")
	ErrBadNe       = errors.New("apdu: Ne out of range 0..256")
	ErrShort       = errors.New("apdu: too short")
	ErrExtended    = errors.New("apdu: extended-length APDUs are not supported")
	ErrLength      = errors.New("apdu: length bytes disagree with the APDU length")
)

// Append appends the encoded command to dst.
func (c *Command) Append(dst []byte) ([]byte, error) {
	return c.appendLe(dst, true)
}

// appendLe encodes c, leaving out Le when withLe is false.
func (c *Command) appendLe(dst []byte, withLe bool) ([]byte, error) {
	if len(c.Data) > MaxData {
		return dst, fmt.Errorf("%w (%d)", ErrDataTooLong, len(c.Data))
	}
	if c.Ne < 0 || c.Ne > MaxNe {
		return dst, fmt.Errorf("%w (%d)", ErrBadNe, c.Ne)
	}
	dst = append(dst, c.CLA, c.INS, c.P1, c.P2)
	if len(c.Data) > 0 {
		dst = append(dst, byte(len(c.Data)))
		dst = append(dst, c.Data...)
	}
	if c.Ne > 0 && withLe {
		dst = append(dst, byte(c.Ne)) // 256 → 00
	}
	return dst, nil
}

// MarshalBinary returns the encoded command.
func (c *Command) MarshalBinary() ([]byte, error) {
	return c.Append(make([]byte, 0, 5+len(c.Data)+1))
}

// ParseCommand decodes a short command APDU. Data aliases b. A command of
// exactly 5 bytes is case 2 (the fifth byte is Le, 00 meaning 256); a longer
// one carries Lc, and Lc = 00 (an extended APDU) is refused.
func ParseCommand(b []byte) (Command, error) {
	if len(b) < 4 {
		return Command{}, fmt.Errorf("%w: command of %d bytes, need at least 4", ErrShort, len(b))
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	switch body := b[4:]; {
	case len(body) == 0:
	case len(body) == 1:
		c.Ne = neFromLe(body[0])
	case body[0] == 0:
		return Command{}, ErrExtended
	default:
		lc := int(body[0])
		switch len(body) - 1 - lc {
		case 0:
		case 1:
			c.Ne = neFromLe(body[len(body)-1])
		default:
			return Command{}, fmt.Errorf("%w: Lc %d with %d bytes after the header", ErrLength, lc, len(body))
		}
		c.Data = body[1 : 1+lc]
	}
	return c, nil
}

func neFromLe(le byte) int {
	if le == 0 {
		return MaxNe
	}
	return int(le)
}

// Response is one response APDU: the data field and the status word.
type Response struct {
	Data []byte
	SW   SW
}

// ParseResponse splits a response APDU into data and status word. Data
// aliases b.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, fmt.Errorf("%w: response of %d bytes, need the 2 status bytes", ErrShort, len(b))
	}
	n := len(b) - 2
	return Response{Data: b[:n:n], SW: SW(b[n])<<8 | SW(b[n+1])}, nil
}

// Append appends the encoded response (data then SW1 SW2) to dst.
func (r *Response) Append(dst []byte) []byte {
	dst = append(dst, r.Data...)
	return append(dst, r.SW.SW1(), r.SW.SW2())
}
