package sipclient

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Packet is one SIP message exactly as it crossed one of the Client's
// sockets. Tracing happens in the Client's own transport, per Client: sipgo's
// tracer hook (sip.SIPDebugTracer) is a process-global variable, which would
// mix the messages of every Client in the process (the lab core and the UE
// share one process in the tests) and could not be turned on for one Client.
type Packet struct {
	Time    time.Time
	Sent    bool   // true: the UE sent it; false: the UE received it
	Network string // "udp" or "tcp"
	Local   netip.AddrPort
	Remote  netip.AddrPort
	Data    []byte // one whole SIP message; do not retain or modify
}

// PacketSink receives every Packet of a Client (a PcapWriter, a tracer).
// WritePacket is called from the Client's socket goroutines: it must be
// safe for concurrent use and should not block for long.
type PacketSink interface {
	WritePacket(p Packet) error
}

// TextTracer writes each message, timestamped, as human-readable text:
//
//	--- 2025-11-27T06:52:01.123456Z sent UDP 192.0.2.1:5060 -> 192.0.2.9:5060 (845 bytes)
//	REGISTER sip:ims.mnc001.mcc001.3gppnetwork.org SIP/2.0
//	...
//
// The values of ck and ik parameters (which a correct P-CSCF strips from the
// 401) are replaced by "<redacted>": the trace never shows keys.
type TextTracer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewTextTracer returns a tracer writing to w (typically os.Stderr).
func NewTextTracer(w io.Writer) *TextTracer { return &TextTracer{w: w} }

var ckikParam = regexp.MustCompile(`(?i)\b(ck|ik)\s*=\s*("[^"]*"|[0-9a-f]+)`)

// WritePacket implements PacketSink.
func (t *TextTracer) WritePacket(p Packet) error {
	dir, arrow := "recv", "<-"
	if p.Sent {
		dir, arrow = "sent", "->"
	}
	text := string(p.Data)
	if ckikParam.MatchString(text) {
		text = ckikParam.ReplaceAllString(text, `$1="<redacted>"`)
	}
	text = strings.TrimRight(text, "\r\n")
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := fmt.Fprintf(t.w, "--- %s %s %s %s %s %s (%d bytes)\n%s\n\n",
		p.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), dir, strings.ToUpper(p.Network),
		p.Local, arrow, p.Remote, len(p.Data), strings.ReplaceAll(text, "\r\n", "\n"))
	return err
}

// sinks fans a Packet out to several sinks; a failing sink does not stop
// the others and never fails the SIP exchange.
type sinks []PacketSink

func (s sinks) emit(p Packet) {
	for _, k := range s {
		_ = k.WritePacket(p)
	}
}
