package cards

import (
	"bytes"
	"context"
	"fmt"

	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/cards/uicc"
)

// Bounds on what a card may make the UE read: the IMS files are a few
// hundred bytes, and a card that claims more is broken.
const (
	maxEFSize  = 4096
	maxRecords = 254
)

const (
	insSelect     = 0xA4
	insReadBinary = 0xB0
	insReadRecord = 0xB2
)

// selectFID selects a file by identifier without asking for its FCP (P2 =
// 0C): a case-3 command, the same under T=0 and T=1.
func (c *Card) selectFID(ctx context.Context, op string, fid uint16) error {
	_, err := c.do(ctx, op, apdu.Command{CLA: c.cla, INS: insSelect, P1: 0x00, P2: 0x0C,
		Data: []byte{byte(fid >> 8), byte(fid)}})
	return err
}

// selectFCP selects a file by identifier and returns its FCP (P2 = 04).
func (c *Card) selectFCP(ctx context.Context, op string, fid uint16) (uicc.FCP, error) {
	r, err := c.do(ctx, op, apdu.Command{CLA: c.cla, INS: insSelect, P1: 0x00, P2: 0x04,
		Data: []byte{byte(fid >> 8), byte(fid)}, Ne: apdu.MaxNe})
	if err != nil {
		return uicc.FCP{}, err
	}
	fcp, err := uicc.ParseFCP(r.Data)
	if err != nil {
		return uicc.FCP{}, &Error{Op: op, Err: err}
	}
	return fcp, nil
}

// selectAID selects an application by (possibly partial) AID, asking for
// its FCP (P2 = 04) as TS 102 221 terminals do; the FCP is not used.
func (c *Card) selectAID(ctx context.Context, aid []byte) error {
	op := "select " + uicc.KindOf(aid).String() + " by AID"
	_, err := c.do(ctx, op, apdu.Command{CLA: c.cla, INS: insSelect, P1: 0x04, P2: 0x04,
		Data: aid, Ne: apdu.MaxNe})
	return err
}

// do transmits cmd and turns a failed exchange or a status word other than
// a normal ending into an *Error.
func (c *Card) do(ctx context.Context, op string, cmd apdu.Command) (apdu.Response, error) {
	if err := ctx.Err(); err != nil {
		return apdu.Response{}, ctxErr(op, err)
	}
	r, err := c.conn.Transmit(cmd)
	if err != nil {
		return apdu.Response{}, &Error{Op: op, Err: exchangeErr(err)}
	}
	if !r.SW.OK() {
		return r, &Error{Op: op, SW: r.SW}
	}
	return r, nil
}

// readTransparent selects a transparent EF in the current DF and reads it
// whole. It asks for up to 256 bytes at a time (Le = 00) and relies on the
// card to say how much there is: data with 9000 or 6282 (end of file), or
// 6Cxx under T=0, which the Conn resends. A card that answers 6700 (wrong
// length) instead gets its size read from the FCP.
func (c *Card) readTransparent(ctx context.Context, name string, fid uint16) ([]byte, error) {
	op := "read " + name
	if err := c.selectFID(ctx, op, fid); err != nil {
		return nil, err
	}
	var out []byte
	size := -1 // unknown
	for off := 0; off < maxEFSize; {
		ne := apdu.MaxNe
		if size >= 0 {
			if off >= size {
				break
			}
			ne = min(size-off, apdu.MaxNe)
		}
		r, err := c.conn.Transmit(apdu.Command{CLA: c.cla, INS: insReadBinary,
			P1: byte(off >> 8), P2: byte(off), Ne: ne})
		if err != nil {
			return nil, &Error{Op: op, Err: exchangeErr(err)}
		}
		switch {
		case r.SW == apdu.SWWrongLength && size < 0:
			fcp, err := c.selectFCP(ctx, op, fid)
			if err != nil {
				return nil, err
			}
			size = min(fcp.Size, maxEFSize)
			continue
		case r.SW == apdu.SWWrongOffset && off > 0:
			return out, nil // the previous read ended exactly at the end
		case !r.SW.OK() && r.SW != apdu.SWEndOfFile:
			return nil, &Error{Op: op, SW: r.SW}
		}
		out = append(out, r.Data...)
		off += len(r.Data)
		if size < 0 && (len(r.Data) < ne || r.SW == apdu.SWEndOfFile) {
			break
		}
		if len(r.Data) == 0 {
			break
		}
	}
	return out, nil
}

// readLinear selects a linear fixed EF in the current DF and reads its
// records from 1 until the card answers 6A83 (record not found). Le = 00
// lets the card give the record length (6Cxx under T=0); after 6700 the
// record length and count come from the FCP.
func (c *Card) readLinear(ctx context.Context, name string, fid uint16) ([][]byte, error) {
	op := "read " + name
	if err := c.selectFID(ctx, op, fid); err != nil {
		return nil, err
	}
	var recs [][]byte
	ne, count := apdu.MaxNe, maxRecords
	for n := 1; n <= count; n++ {
		if err := ctx.Err(); err != nil {
			return nil, ctxErr(op, err)
		}
		r, err := c.conn.Transmit(apdu.Command{CLA: c.cla, INS: insReadRecord, P1: byte(n), P2: 0x04, Ne: ne})
		if err != nil {
			return nil, &Error{Op: op, Err: exchangeErr(err)}
		}
		switch {
		case r.SW == apdu.SWRecordNotFound:
			return recs, nil
		case r.SW == apdu.SWWrongLength && ne == apdu.MaxNe:
			fcp, err := c.selectFCP(ctx, op, fid)
			if err != nil {
				return nil, err
			}
			if fcp.RecordLen < 1 || fcp.RecordLen > apdu.MaxNe {
				return nil, &Error{Op: op, Err: fmt.Errorf("FCP gives a record length of %d", fcp.RecordLen)}
			}
			ne, count = fcp.RecordLen, min(fcp.NumRecords, maxRecords)
			n--
			continue
		case !r.SW.OK() && r.SW != apdu.SWEndOfFile:
			return nil, &Error{Op: op, SW: r.SW}
		}
		recs = append(recs, bytes.Clone(r.Data))
	}
	return recs, nil
}
