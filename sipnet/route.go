package sipnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Route says how one message leaves: over UDP from a bound socket, over a
// given TCP connection, or over the TCP connection between two addresses
// (dialled when there is none). The caller chooses the local port of every
// message (TS 33.203 §7.1: "send from port_uc", "answer from port_pc").
type Route struct {
	Network string         // "udp" or "tcp"; ignored when Conn is set
	From    netip.AddrPort // UDP: a socket as bound; TCP: the local address (port 0: ephemeral)
	To      netip.AddrPort // destination
	Conn    *Conn          // TCP: send on this connection

	// MaxUDP, for a request, is the largest size sent over UDP: a larger
	// one goes over TCP with its top Via changed (RFC 3261 §18.1.1), or
	// over UDP after all when TCP is refused. 0: no limit.
	MaxUDP int
	// Accept, for a request, decides whether a response may complete its
	// transaction (a response to a request sent over SAs counts only when
	// it came over the same SAs). A refused response is counted
	// (Stats.Unaccepted) and dropped. nil accepts every response.
	Accept func(*Inbound) bool
	// Gate, when set, wraps every send along the route, first and
	// retransmitted: it calls send or refuses with an error. The UE uses
	// it so that an answer leaves only while its SA set is live.
	Gate func(send func() error) error
}

func (r Route) String() string {
	if r.Conn != nil {
		return fmt.Sprintf("TCP %s->%s", r.Conn.Local(), r.Conn.Remote())
	}
	return fmt.Sprintf("%s %s->%s", strings.ToUpper(r.Network), r.From, r.To)
}

// ErrNoAnswer is wrapped by every error that means the peer did not
// answer: Timer F expired, the destination was unreachable, or a TCP
// connection could not be set up or broke before the final response.
var ErrNoAnswer = errors.New("no answer")

// ErrLocalAddress is wrapped by errors that mean a local address or port
// could not be used (in use by another program, not on this host): a
// local configuration problem, not the peer's silence.
var ErrLocalAddress = errors.New("local address or port unavailable")

// TimeoutError reports a transaction that got no final response within
// Timer F (64·T1, RFC 3261 §17.1.2.2). It wraps ErrNoAnswer.
type TimeoutError struct {
	Method string
	After  time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s: no final response within Timer F (%s)", e.Method, e.After)
}

func (e *TimeoutError) Unwrap() error { return ErrNoAnswer }

// TransportError reports that a message could not be delivered at all
// (ICMP unreachable, TCP refused or reset). It wraps ErrNoAnswer and the
// cause.
type TransportError struct {
	Method string
	Err    error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("%s: transport: %v", e.Method, e.Err)
}

func (e *TransportError) Unwrap() []error { return []error{ErrNoAnswer, e.Err} }

// localAddrError reports whether a dial or bind failed on this side: the
// address or port could not be bound.
func localAddrError(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EACCES)
}

// Send sends one message along r (a response, an ACK, a keep-alive): no
// transaction, no retransmission.
func (t *Transport) Send(ctx context.Context, r Route, data []byte) error {
	r, err := t.resolve(ctx, r)
	if err != nil {
		return err
	}
	if r.Gate != nil {
		gated := r // only this copy escapes into the closure, not r on every call
		return r.Gate(func() error { return t.write(&gated, data) })
	}
	return t.write(&r, data)
}

// SendMsg is Send of msg marshalled into a pooled buffer (see marshal),
// handed back once sent: neither the sockets nor the sinks keep the bytes
// they are given (Packet.Data).
func (t *Transport) SendMsg(ctx context.Context, r Route, msg sip.Message) error {
	b := marshal(msg)
	defer putMsgBuf(b)
	return t.Send(ctx, r, b.Bytes())
}

// resolve returns r with the TCP connection it uses in Conn (found or
// dialled); over UDP Conn stays nil.
func (t *Transport) resolve(ctx context.Context, r Route) (Route, error) {
	if r.Conn == nil && r.Network == "tcp" {
		c, err := t.Dial(ctx, r.From, r.To)
		if err != nil {
			if localAddrError(err) {
				return r, fmt.Errorf("%w: %w", ErrLocalAddress, err)
			}
			return r, err
		}
		r.Conn = c
	}
	if r.Conn == nil && r.Network != "udp" {
		return r, fmt.Errorf("route %s: unknown network", r)
	}
	return r, nil
}

// write sends data along a resolved route.
func (t *Transport) write(r *Route, data []byte) error {
	if r.Conn != nil {
		return r.Conn.Write(data)
	}
	return t.SendUDP(r.From, r.To, data)
}

// ViaDestination is where a UDP response to a request with this top Via
// goes (RFC 3261 §18.2.2 with RFC 3581): received (else the sent-by host
// when it is an address, else the packet's source) and rport (else the
// sent-by port, else 5060).
func ViaDestination(via *sip.ViaHeader, src netip.AddrPort) netip.AddrPort {
	ip := src.Addr()
	if a, err := netip.ParseAddr(strings.Trim(via.Host, "[]")); err == nil {
		ip = a.Unmap()
	}
	if r, ok := via.Params.Get("received"); ok {
		if a, err := netip.ParseAddr(strings.Trim(r, "[]")); err == nil {
			ip = a.Unmap()
		}
	}
	port := uint16(5060)
	if via.Port > 0 && via.Port < 65536 {
		port = uint16(via.Port)
	}
	if r, ok := via.Params.Get("rport"); ok {
		if p, err := strconv.ParseUint(r, 10, 16); err == nil && p > 0 {
			port = uint16(p)
		} else if r == "" {
			port = src.Port() // rport without a value: the packet's source port
		}
	}
	return netip.AddrPortFrom(ip, port)
}
