package sipnet

import (
	"bytes"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// msgBufs recycles the buffers messages are marshalled into. sipgo's
// String grows a strings.Builder step by step (about ten allocations for a
// REGISTER) and the []byte conversion then copies the result once more.
var msgBufs = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 4096)) }}

// marshal writes m into a buffer from msgBufs. Hand it back with putMsgBuf
// once nothing refers to its bytes.
func marshal(m sip.Message) *bytes.Buffer {
	b := msgBufs.Get().(*bytes.Buffer)
	b.Reset()
	m.StringWrite(b)
	return b
}

// putMsgBuf returns b (nil is ignored) to msgBufs, unless it grew far past
// any SIP message this package accepts.
func putMsgBuf(b *bytes.Buffer) {
	if b != nil && b.Cap() <= 2*MaxMessage {
		msgBufs.Put(b)
	}
}
