// Package reginfo reads and writes the registration event package document
// of RFC 3680 (application/reginfo+xml): what an IMS UE receives in NOTIFYs
// for its reg-event subscription (TS 24.229 §5.1.1.3) and what the lab
// S-CSCF sends. Decide turns a document into the one thing the UE must do
// about its own registration.
//
// Parse validates what it returns: every required attribute is present and
// every state value is one RFC 3680 defines, so callers can switch on them
// without a default case for garbage. Event values outside the RFC's list are
// kept as received (they are informative; the state attributes are
// authoritative).
package reginfo

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ContentType is the MIME type of a reginfo body (RFC 3680 §5.1).
const ContentType = "application/reginfo+xml"

// Namespace is the XML namespace of RFC 3680 §5.4.
const Namespace = "urn:ietf:params:xml:ns:reginfo"

// GRUUNamespace is the namespace of the pub-gruu and temp-gruu extension
// elements (RFC 5628) that IMS S-CSCFs add to contacts.
const GRUUNamespace = "urn:ietf:params:xml:ns:gruuinfo"

// MaxBodySize bounds what Parse reads. A full-state document for one IMS
// subscription (a handful of IMPUs, one or two contacts each) is a few KiB;
// anything near this limit is an attack or a bug, not a registration.
const MaxBodySize = 64 << 10

// ErrMalformed wraps every parse and validation error; the message names the
// element or attribute.
var ErrMalformed = errors.New("reginfo: malformed document")

// ErrTooLarge: the body exceeds MaxBodySize.
var ErrTooLarge = errors.New("reginfo: document too large")

// State is the reginfo state attribute: whether the document carries the
// whole registration state or only changes (RFC 3680 §5.3).
type State string

// Document states.
const (
	StateFull    State = "full"
	StatePartial State = "partial"
)

// RegState is the state of one address-of-record (RFC 3680 §5.2).
type RegState string

// Registration states.
const (
	RegInit       RegState = "init"       // no active contact, being set up
	RegActive     RegState = "active"     // at least one active contact
	RegTerminated RegState = "terminated" // no contact left
)

// ContactState is the state of one contact of an AOR.
type ContactState string

// Contact states.
const (
	ContactActive     ContactState = "active"
	ContactTerminated ContactState = "terminated"
)

// Event says what last happened to a contact (RFC 3680 §5.2.2).
type Event string

// Contact events. registered, created, refreshed and shortened leave the
// contact active; expired, deactivated, probation, unregistered and rejected
// terminate it.
const (
	EventRegistered   Event = "registered"   // registered by a REGISTER
	EventCreated      Event = "created"      // created by administrative means
	EventRefreshed    Event = "refreshed"    // refreshed by a REGISTER
	EventShortened    Event = "shortened"    // expiry shortened by the registrar (IMS: re-authenticate)
	EventExpired      Event = "expired"      // expired without refresh
	EventDeactivated  Event = "deactivated"  // removed; the UE should register again now
	EventProbation    Event = "probation"    // removed; the UE should register again after retry-after
	EventUnregistered Event = "unregistered" // removed by a REGISTER (the UE's own de-registration)
	EventRejected     Event = "rejected"     // removed by policy; do not register again
)

// Known reports whether e is one of the events RFC 3680 defines.
func (e Event) Known() bool {
	switch e {
	case EventRegistered, EventCreated, EventRefreshed, EventShortened, EventExpired,
		EventDeactivated, EventProbation, EventUnregistered, EventRejected:
		return true
	}
	return false
}

// Reginfo is one registration event document.
type Reginfo struct {
	// Version counts documents within one subscription, from 0 (RFC 3680
	// §5.3); see Freshness.
	Version       uint64
	State         State
	Registrations []Registration
}

// Registration is the state of one address-of-record (an IMPU in IMS).
type Registration struct {
	AOR      string
	ID       string
	State    RegState
	Contacts []Contact
}

// Contact is one binding of an AOR.
//
// The optional numeric attributes use Has* flags only where a zero carries
// meaning (expires="0", retry-after="0"); DurationRegistered and CSeq are
// written only when non-zero.
type Contact struct {
	ID    string
	State ContactState
	Event Event
	URI   string

	Expires       uint64 // seconds left, when HasExpires
	HasExpires    bool
	RetryAfter    uint64 // seconds, for probation, when HasRetryAfter
	HasRetryAfter bool

	DurationRegistered uint64 // seconds since registration
	Q                  string // as received ("0.8")
	CallID             string
	CSeq               uint64

	DisplayName   string
	UnknownParams []Param // Contact header parameters the registrar kept (+sip.instance, ...)
	PubGRUU       string  // RFC 5628 pub-gruu uri, "" when absent
	TempGRUU      string  // RFC 5628 temp-gruu uri, "" when absent
	// TempGRUUFirstCSeq is the temp-gruu's first-cseq: the CSeq of the
	// REGISTER that created it (RFC 5628 §3).
	TempGRUUFirstCSeq uint64
}

// Param is an unknown-param element: a Contact header field parameter.
type Param struct {
	Name  string
	Value string
}

// Wire types: every attribute as text, so Parse can name the bad one.
type (
	xReginfo struct {
		XMLName xml.Name `xml:"reginfo"`
		// NS writes the default namespace on Marshal: encoding/xml takes the
		// element name from the XMLName tag, which has no namespace so
		// that Parse accepts documents without one.
		NS            string          `xml:"xmlns,attr,omitempty"`
		Version       *string         `xml:"version,attr"`
		State         *string         `xml:"state,attr"`
		Registrations []xRegistration `xml:"registration"`
	}
	xRegistration struct {
		AOR      *string    `xml:"aor,attr"`
		ID       *string    `xml:"id,attr"`
		State    *string    `xml:"state,attr"`
		Contacts []xContact `xml:"contact"`
	}
	xContact struct {
		ID                 *string  `xml:"id,attr"`
		State              *string  `xml:"state,attr"`
		Event              *string  `xml:"event,attr"`
		DurationRegistered *string  `xml:"duration-registered,attr"`
		Expires            *string  `xml:"expires,attr"`
		RetryAfter         *string  `xml:"retry-after,attr"`
		Q                  *string  `xml:"q,attr"`
		CallID             *string  `xml:"callid,attr"`
		CSeq               *string  `xml:"cseq,attr"`
		URI                []string `xml:"uri"`
		DisplayName        *string  `xml:"display-name"`
		UnknownParams      []xParam `xml:"unknown-param"`
		PubGRUU            *xGRUU   `xml:"urn:ietf:params:xml:ns:gruuinfo pub-gruu"`
		TempGRUU           *xGRUU   `xml:"urn:ietf:params:xml:ns:gruuinfo temp-gruu"`
	}
	xParam struct {
		Name  *string `xml:"name,attr"`
		Value string  `xml:",chardata"`
	}
	xGRUU struct {
		URI       *string `xml:"uri,attr"`
		FirstCSeq *string `xml:"first-cseq,attr"`
	}
)

// Parse decodes and validates an application/reginfo+xml body.
//
// The root must be reginfo in the RFC 3680 namespace (a document without any
// namespace is tolerated, as some test tools send it). Elements of other
// namespaces are ignored, except the RFC 5628 GRUU elements. The body must be
// UTF-8, at most MaxBodySize bytes, and hold nothing but comments after the
// root element.
func Parse(body []byte) (*Reginfo, error) {
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), MaxBodySize)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	var x xReginfo
	if err := d.Decode(&x); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: after </reginfo>: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("%w: text after </reginfo>", ErrMalformed)
			}
		default:
			return nil, fmt.Errorf("%w: content after </reginfo>", ErrMalformed)
		}
	}
	if x.XMLName.Space != Namespace && x.XMLName.Space != "" {
		return nil, fmt.Errorf("%w: root element in namespace %q, want %q", ErrMalformed, x.XMLName.Space, Namespace)
	}
	return x.decode()
}

func (x *xReginfo) decode() (*Reginfo, error) {
	r := new(Reginfo)
	v, err := requireUint(x.Version, "reginfo", "version")
	if err != nil {
		return nil, err
	}
	r.Version = v
	st, err := require(x.State, "reginfo", "state")
	if err != nil {
		return nil, err
	}
	r.State = State(st)
	if err := r.State.check(); err != nil {
		return nil, err
	}
	r.Registrations = make([]Registration, 0, len(x.Registrations))
	for i := range x.Registrations {
		reg, err := x.Registrations[i].decode(i)
		if err != nil {
			return nil, err
		}
		r.Registrations = append(r.Registrations, reg)
	}
	return r, nil
}

func (x *xRegistration) decode(i int) (Registration, error) {
	var reg Registration
	where := fmt.Sprintf("registration[%d]", i)
	var err error
	if reg.AOR, err = require(x.AOR, where, "aor"); err != nil {
		return reg, err
	}
	if reg.AOR == "" {
		return reg, fmt.Errorf("%w: %s: empty aor", ErrMalformed, where)
	}
	where = fmt.Sprintf("registration %q", reg.AOR)
	if reg.ID, err = require(x.ID, where, "id"); err != nil {
		return reg, err
	}
	st, err := require(x.State, where, "state")
	if err != nil {
		return reg, err
	}
	reg.State = RegState(st)
	if err := reg.State.check(where); err != nil {
		return reg, err
	}
	for j := range x.Contacts {
		c, err := x.Contacts[j].decode(where, j)
		if err != nil {
			return reg, err
		}
		reg.Contacts = append(reg.Contacts, c)
	}
	return reg, nil
}

func (x *xContact) decode(reg string, j int) (Contact, error) {
	var c Contact
	where := fmt.Sprintf("%s contact[%d]", reg, j)
	var err error
	if c.ID, err = require(x.ID, where, "id"); err != nil {
		return c, err
	}
	st, err := require(x.State, where, "state")
	if err != nil {
		return c, err
	}
	c.State = ContactState(st)
	if err := c.State.check(where); err != nil {
		return c, err
	}
	ev, err := require(x.Event, where, "event")
	if err != nil {
		return c, err
	}
	if ev == "" {
		return c, fmt.Errorf("%w: %s: empty event", ErrMalformed, where)
	}
	c.Event = Event(ev)
	if len(x.URI) != 1 {
		return c, fmt.Errorf("%w: %s: %d uri elements, want 1", ErrMalformed, where, len(x.URI))
	}
	if c.URI = strings.TrimSpace(x.URI[0]); c.URI == "" {
		return c, fmt.Errorf("%w: %s: empty uri", ErrMalformed, where)
	}
	if c.Expires, c.HasExpires, err = optionalUint(x.Expires, where, "expires"); err != nil {
		return c, err
	}
	if c.RetryAfter, c.HasRetryAfter, err = optionalUint(x.RetryAfter, where, "retry-after"); err != nil {
		return c, err
	}
	if c.DurationRegistered, _, err = optionalUint(x.DurationRegistered, where, "duration-registered"); err != nil {
		return c, err
	}
	if c.CSeq, _, err = optionalUint(x.CSeq, where, "cseq"); err != nil {
		return c, err
	}
	if x.Q != nil {
		c.Q = strings.TrimSpace(*x.Q)
	}
	if x.CallID != nil {
		c.CallID = *x.CallID
	}
	if x.DisplayName != nil {
		c.DisplayName = *x.DisplayName
	}
	for k, p := range x.UnknownParams {
		if p.Name == nil || *p.Name == "" {
			return c, fmt.Errorf("%w: %s: unknown-param[%d] without a name", ErrMalformed, where, k)
		}
		c.UnknownParams = append(c.UnknownParams, Param{Name: *p.Name, Value: p.Value})
	}
	if x.PubGRUU != nil {
		if c.PubGRUU, err = require(x.PubGRUU.URI, where+" pub-gruu", "uri"); err != nil {
			return c, err
		}
	}
	if x.TempGRUU != nil {
		if c.TempGRUU, err = require(x.TempGRUU.URI, where+" temp-gruu", "uri"); err != nil {
			return c, err
		}
		if c.TempGRUUFirstCSeq, _, err = optionalUint(x.TempGRUU.FirstCSeq, where+" temp-gruu", "first-cseq"); err != nil {
			return c, err
		}
	}
	return c, nil
}

func require(v *string, where, attr string) (string, error) {
	if v == nil {
		return "", fmt.Errorf("%w: %s: missing attribute %q", ErrMalformed, where, attr)
	}
	return strings.TrimSpace(*v), nil
}

func requireUint(v *string, where, attr string) (uint64, error) {
	n, ok, err := optionalUint(v, where, attr)
	if err == nil && !ok {
		err = fmt.Errorf("%w: %s: missing attribute %q", ErrMalformed, where, attr)
	}
	return n, err
}

// optionalUint parses an xs:unsignedLong / xs:nonNegativeInteger attribute
// (decimal digits, surrounding whitespace collapsed).
func optionalUint(v *string, where, attr string) (uint64, bool, error) {
	if v == nil {
		return 0, false, nil
	}
	s := strings.TrimPrefix(strings.TrimSpace(*v), "+") // xs:nonNegativeInteger allows a "+"
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false, fmt.Errorf("%w: %s: attribute %q is %q, want a non-negative integer", ErrMalformed, where, attr, *v)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %s: attribute %q is %q, want a non-negative integer", ErrMalformed, where, attr, *v)
	}
	return n, true, nil
}

func (s State) check() error {
	if s != StateFull && s != StatePartial {
		return fmt.Errorf("%w: reginfo: state %q, want full or partial", ErrMalformed, string(s))
	}
	return nil
}

func (s RegState) check(where string) error {
	switch s {
	case RegInit, RegActive, RegTerminated:
		return nil
	}
	return fmt.Errorf("%w: %s: state %q, want init, active or terminated", ErrMalformed, where, string(s))
}

func (s ContactState) check(where string) error {
	if s != ContactActive && s != ContactTerminated {
		return fmt.Errorf("%w: %s: state %q, want active or terminated", ErrMalformed, where, string(s))
	}
	return nil
}

// Marshal formats r as an application/reginfo+xml body, with the XML
// declaration and the RFC 3680 namespace. It validates r as Parse does, so
// the lab core cannot send a document a UE would reject.
func (r *Reginfo) Marshal() ([]byte, error) {
	if err := r.State.check(); err != nil {
		return nil, err
	}
	v := strconv.FormatUint(r.Version, 10)
	st := string(r.State)
	x := xReginfo{
		NS:            Namespace,
		Version:       &v,
		State:         &st,
		Registrations: make([]xRegistration, 0, len(r.Registrations)),
	}
	for i := range r.Registrations {
		reg := &r.Registrations[i]
		where := fmt.Sprintf("registration %q", reg.AOR)
		if reg.AOR == "" {
			return nil, fmt.Errorf("%w: registration[%d]: empty aor", ErrMalformed, i)
		}
		if err := reg.State.check(where); err != nil {
			return nil, err
		}
		xr := xRegistration{AOR: ptr(reg.AOR), ID: ptr(reg.ID), State: ptr(string(reg.State))}
		for j := range reg.Contacts {
			c := &reg.Contacts[j]
			cw := fmt.Sprintf("%s contact[%d]", where, j)
			if err := c.State.check(cw); err != nil {
				return nil, err
			}
			switch {
			case c.Event == "":
				return nil, fmt.Errorf("%w: %s: empty event", ErrMalformed, cw)
			case strings.TrimSpace(c.URI) == "":
				return nil, fmt.Errorf("%w: %s: empty uri", ErrMalformed, cw)
			}
			xc := xContact{
				ID:    ptr(c.ID),
				State: ptr(string(c.State)),
				Event: ptr(string(c.Event)),
				URI:   []string{c.URI},
			}
			if c.HasExpires {
				xc.Expires = ptr(strconv.FormatUint(c.Expires, 10))
			}
			if c.HasRetryAfter {
				xc.RetryAfter = ptr(strconv.FormatUint(c.RetryAfter, 10))
			}
			if c.DurationRegistered != 0 {
				xc.DurationRegistered = ptr(strconv.FormatUint(c.DurationRegistered, 10))
			}
			if c.Q != "" {
				xc.Q = ptr(c.Q)
			}
			if c.CallID != "" {
				xc.CallID = ptr(c.CallID)
			}
			if c.CSeq != 0 {
				xc.CSeq = ptr(strconv.FormatUint(c.CSeq, 10))
			}
			if c.DisplayName != "" {
				xc.DisplayName = ptr(c.DisplayName)
			}
			for k, p := range c.UnknownParams {
				if p.Name == "" {
					return nil, fmt.Errorf("%w: %s: unknown-param[%d] without a name", ErrMalformed, cw, k)
				}
				xc.UnknownParams = append(xc.UnknownParams, xParam{Name: ptr(p.Name), Value: p.Value})
			}
			if c.PubGRUU != "" {
				xc.PubGRUU = &xGRUU{URI: ptr(c.PubGRUU)}
			}
			if c.TempGRUU != "" {
				xc.TempGRUU = &xGRUU{URI: ptr(c.TempGRUU), FirstCSeq: ptr(strconv.FormatUint(c.TempGRUUFirstCSeq, 10))}
			}
			xr.Contacts = append(xr.Contacts, xc)
		}
		x.Registrations = append(x.Registrations, xr)
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	e := xml.NewEncoder(&b)
	e.Indent("", "  ")
	if err := e.Encode(&x); err != nil {
		return nil, fmt.Errorf("reginfo: marshal: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func ptr(s string) *string { return &s }
