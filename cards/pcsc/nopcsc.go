//go:build !pcsc

package pcsc

import (
	"context"

	"github.com/imsue/imsue/cards"
	"github.com/imsue/imsue/cards/apdu"
)

// Enabled reports whether this build has PC/SC support.
const Enabled = false

// Transport is not available without the pcsc build tag.
type Transport struct{}

// ListReaders reports that PC/SC support is not built in.
func ListReaders() ([]Reader, error) {
	return nil, &cards.Error{Op: "list readers", Err: cards.ErrNoPCSC}
}

// Open reports that PC/SC support is not built in.
func Open(context.Context, Options) (*Transport, error) {
	return nil, &cards.Error{Op: "open reader", Err: cards.ErrNoPCSC}
}

func (*Transport) Transmit([]byte) ([]byte, error) { return nil, cards.ErrNoPCSC }
func (*Transport) Close() error                    { return nil }
func (*Transport) Reader() string                  { return "" }
func (*Transport) ATR() []byte                     { return nil }
func (*Transport) Protocol() apdu.Protocol         { return apdu.T1 }
