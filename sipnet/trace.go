package sipnet

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Packet is one SIP message exactly as it crossed one of a Transport's
// sockets. Tracing is per Transport: sipgo's tracer hook
// (sip.SIPDebugTracer) is a process-global variable, which would mix the
// messages of every UE and core in the process and could not be turned on
// for one of them.
type Packet struct {
	Time    time.Time
	Sent    bool   // true: sent; false: received
	Network string // "udp" or "tcp"
	Local   netip.AddrPort
	Remote  netip.AddrPort
	Data    []byte // one whole SIP message; do not retain or modify
}

// PacketSink receives every Packet of a Transport (a PcapWriter, a
// TextTracer). WritePacket is called from the socket goroutines: it must
// be safe for concurrent use and should not block for long. A failing sink
// never fails the SIP exchange.
type PacketSink interface {
	WritePacket(p Packet) error
}

// TextTracer writes each message, timestamped, as human-readable text:
//
//	--- 2025-11-27T06:52:01.123456Z sent UDP 192.0.2.1:5060 -> 192.0.2.9:5060 (845 bytes)
//	REGISTER sip:ims.mnc001.mcc001.3gppnetwork.org SIP/2.0
//	...
//
// The values of ck and ik parameters are redacted (see Redact): the trace
// never shows keys.
type TextTracer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewTextTracer returns a tracer writing to w (typically os.Stderr).
func NewTextTracer(w io.Writer) *TextTracer { return &TextTracer{w: w} }

// ckikParam matches a ck or ik Digest parameter: only at a parameter
// boundary (after a comma or white space), so that "ck=" inside a quoted
// base64 nonce is left alone.
var ckikParam = regexp.MustCompile(`(?i)([,\s])(ck|ik)\s*=\s*("[^"]*"|[0-9a-f]+)`)

// Redact replaces the values of the ck and ik parameters in a SIP message
// with "<redacted>". An S-CSCF hands CK and IK to the P-CSCF in those
// parameters of the 401 (TS 29.228's Confidentiality-Key and
// Integrity-Key, carried in SIP by Kamailio and others); a correct P-CSCF
// strips them, a broken one leaks them to the UE. They never reach a trace
// or a capture.
func Redact(msg []byte) []byte {
	if !ckikParam.Match(msg) {
		return msg
	}
	return ckikParam.ReplaceAll(msg, []byte(`$1$2="<redacted>"`))
}

// WritePacket implements PacketSink.
func (t *TextTracer) WritePacket(p Packet) error {
	dir, arrow := "recv", "<-"
	if p.Sent {
		dir, arrow = "sent", "->"
	}
	text := strings.TrimRight(string(Redact(p.Data)), "\r\n")
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := fmt.Fprintf(t.w, "--- %s %s %s %s %s %s (%d bytes)\n%s\n\n",
		p.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), dir, strings.ToUpper(p.Network),
		p.Local, arrow, p.Remote, len(p.Data), strings.ReplaceAll(text, "\r\n", "\n"))
	return err
}
