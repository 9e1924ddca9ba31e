package sipnet

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// serverTx remembers the final response to one request, so that a
// retransmission of the request is answered with the same response and is
// not acted on again (RFC 3261 §17.2.2): one 401, one SA set.
type serverTx struct {
	data    []byte // nil while the request is being processed
	route   Route
	expires time.Time
}

// serverKey identifies a request's server transaction (RFC 3261 §17.2.3):
// the top Via's branch, sent-by and the method for an RFC 3261 branch; for
// an older one, Call-ID, CSeq, From tag, sent-by and method, which a
// retransmission repeats exactly, joined in legacy. The RFC 3261 case is
// kept in fields rather than a joined string: every request and every
// response is looked up, and sipgo's SentBy alone allocates thrice.
type serverKey struct {
	branch, host string
	port         int // the sent-by port; 0 when absent
	method       sip.RequestMethod
	legacy       string
}

func serverKeyOf(req *sip.Request) serverKey {
	via := req.Via()
	if via == nil {
		return serverKey{}
	}
	branch, _ := via.Params.Get("branch")
	if strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) {
		// SentBy omits a port ≤ 0, so all of them are the same sent-by.
		return serverKey{branch: branch, host: via.Host, port: max(via.Port, 0), method: req.Method}
	}
	var b strings.Builder
	if h := req.CallID(); h != nil {
		b.WriteString(h.Value())
	}
	b.WriteByte(0)
	if h := req.CSeq(); h != nil {
		b.WriteString(strconv.FormatUint(uint64(h.SeqNo), 10))
	}
	b.WriteByte(0)
	if h := req.From(); h != nil {
		tag, _ := h.Params.Get("tag")
		b.WriteString(tag)
	}
	b.WriteByte(0)
	b.WriteString(via.SentBy())
	b.WriteByte(0)
	b.WriteString(string(req.Method))
	return serverKey{legacy: b.String()}
}

// Begin opens the server transaction of req and reports whether it is new. A retransmission of a request already answered gets
// the stored final response again; one still being processed is absorbed.
// Either way Begin returns false and the caller must not act on it again.
func (t *Transport) Begin(req *sip.Request) bool {
	key := serverKeyOf(req)
	now := time.Now()
	t.txMu.Lock()
	tx, ok := t.server[key]
	if ok && now.After(tx.expires) {
		delete(t.server, key)
		ok = false
	}
	if !ok {
		// Sweep at most once a second: a sweep per new transaction would
		// make each request cost O(live transactions), and under load every
		// one of them is live for Timer J.
		if len(t.server) > 64 && now.Sub(t.swept) > time.Second {
			t.swept = now
			for k, st := range t.server {
				if now.After(st.expires) {
					delete(t.server, k)
				}
			}
		}
		t.server[key] = &serverTx{expires: now.Add(t.timers.J())}
		t.txMu.Unlock()
		return true
	}
	data, r := tx.data, tx.route
	t.txMu.Unlock()
	t.stats.absorbed.Add(1)
	if data != nil {
		t.stats.resent.Add(1)
		if err := t.Send(context.Background(), r, data); err != nil {
			t.log.Debug("resending a final response", "err", err)
		}
	}
	return false
}

// Respond sends the final response res to req along r and keeps it for
// Timer J, to answer retransmissions of req (see Begin). A request that
// Begin did not see still gets its answer.
func (t *Transport) Respond(req *sip.Request, res sip.Message, r Route) error {
	// Kept for Timer J: an exact copy, not the marshalling buffer.
	msg := marshal(res)
	data := bytes.Clone(msg.Bytes())
	putMsgBuf(msg)
	key, st := serverKeyOf(req), serverTx{data: data, route: r, expires: time.Now().Add(t.timers.J())}
	t.txMu.Lock()
	p := t.server[key] // the entry Begin made is filled in, not replaced
	if p == nil {
		p = new(serverTx)
		t.server[key] = p
	}
	*p = st
	t.txMu.Unlock()
	return t.Send(context.Background(), r, data)
}

// ForgetServerTxs drops every server transaction: a restarted P-CSCF has
// no memory of what it answered.
func (t *Transport) ForgetServerTxs() {
	t.txMu.Lock()
	clear(t.server)
	t.txMu.Unlock()
}
