package imscore

import (
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/sipnet"
)

// The Mw interface between the P-CSCF and the S-CSCF (TS 23.228) carries
// SIP: the P-CSCF hands the S-CSCF each request as a *sip.Request with what
// a P-CSCF adds (TS 24.229 §5.2.2: its Path, the integrity-protected
// parameter in Authorization; P-Asserted-Identity on other requests) and
// relays the *sip.Response it gets back. The S-CSCF's requests to the UE
// (NOTIFY) come back through the P-CSCF, the Path hop. In the lab core the
// wire is in-process: Go interfaces whose payload is SIP messages (issue 11
// puts SIP and Diameter wires there).

// scscfPeer is the P-CSCF's view of the S-CSCF.
type scscfPeer interface {
	// request hands one request to the S-CSCF and returns its answer.
	request(req *sip.Request) mwAnswer
	// abandon tells the S-CSCF that the 401 with this nonce could not be
	// delivered (no SA set could be set up for it).
	abandon(nonce string)
}

// pcscfPeer is the S-CSCF's view of the P-CSCF.
type pcscfPeer interface {
	// forward sends a request of the S-CSCF to the UE it names (its
	// Request-URI is the UE's registered contact) and returns the client
	// transaction once the first transmission left. The P-CSCF adds its
	// Via and picks the path: the UE's established SA set.
	forward(req *sip.Request) (*sipnet.ClientTx, error)
	// regEnded is the P-CSCF's view of the reg event (TS 24.229 §5.2.3):
	// the network ended the registrations of these contacts at the time
	// at (expiry, network-initiated de-registration), and their SA sets
	// from before then go; a set of a registration begun since stays.
	regEnded(contacts []sip.Uri, at time.Time) error
}

// mwAnswer is the S-CSCF's answer to one request of the P-CSCF: the
// response, and the S-CSCF's own requests that follow it on the wire
// (NOTIFYs). The P-CSCF calls then once the response has left, without
// holding its lock.
type mwAnswer struct {
	resp *sip.Response
	then func()
}

// mwCopy is the copy of a received request the P-CSCF hands the S-CSCF: a
// request of its own (header list, Request-URI) whose headers are those of
// req, shared rather than cloned as sipgo's Clone does (a dozen allocations
// for a REGISTER). Neither role changes a received header in place: the
// P-CSCF edits its copy by removing and appending headers, and what the
// S-CSCF keeps of a request (the Contact of a binding) it clones. The body
// is shared too (it is never written). Otherwise as Clone: version,
// Content-Length as SetBody leaves it, transport, source, and the
// destination if one was set (else Destination derives the same from the
// same Route, Request-URI and transport).
func mwCopy(req *sip.Request) *sip.Request {
	fwd := sip.NewRequest(req.Method, req.Recipient) // clones the URI's parameters
	fwd.SipVersion = req.SipVersion
	for _, h := range req.Headers() {
		fwd.AppendHeader(h)
	}
	fwd.SetBody(req.Body())
	fwd.SetTransport(req.Transport())
	fwd.SetSource(req.Source())
	if d := req.MessageData.Destination(); d != "" {
		fwd.SetDestination(d)
	}
	fwd.Laddr = req.Laddr
	return fwd
}

// Values of the integrity-protected parameter (TS 24.229 §5.2.2.1,
// §5.4.1.2.1; "ip-assoc-pending" is Kamailio's spelling of the temporary
// set's state).
const (
	ipYes     = "yes"
	ipPending = "ip-assoc-pending"
	ipNo      = "no"
)

// integrityProtected returns the integrity-protected parameter of an
// Authorization value, lower-cased, or "".
func integrityProtected(value string) string {
	const name = "integrity-protected"
	i := strings.Index(strings.ToLower(value), name)
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(value[i+len(name):], " \t")
	if !strings.HasPrefix(rest, "=") {
		return ""
	}
	rest = strings.TrimLeft(rest[1:], " \t")
	if strings.HasPrefix(rest, `"`) {
		v, _, _ := strings.Cut(rest[1:], `"`)
		return strings.ToLower(v)
	}
	v, _, _ := strings.Cut(rest, ",")
	return strings.ToLower(strings.TrimSpace(v))
}
