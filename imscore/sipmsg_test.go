package imscore

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestNewResponseAsSipgo checks newResponse against sipgo's
// NewResponseFromRequest, the To tags (random) aside.
func TestNewResponseAsSipgo(t *testing.T) {
	const head = "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n" +
		"via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK0\r\n" +
		"Record-Route: <sip:p1.example.net;lr>\r\n" +
		"record-route: <sip:p2.example.net;lr>\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:alice@example.net>;tag=a1\r\n"
	const tail = "Call-ID: c1\r\n" +
		"Timestamp: 54\r\n" +
		"Supported: path\r\n" +
		"Content-Length: 0\r\n\r\n"
	for _, tc := range []struct {
		method string
		to     string
		codes  []int
	}{
		{"REGISTER", "To: <sip:alice@example.net>\r\n", []int{100, 200, 401, 423}},
		{"SUBSCRIBE", "To: <sip:alice@example.net>\r\n", []int{100, 200, 489}},
		{"SUBSCRIBE", "To: <sip:alice@example.net>;tag=b2\r\n", []int{200}},
		{"INVITE", "To: <sip:alice@example.net>\r\n", []int{100, 180, 183, 200, 486}},
		{"ACK", "To: <sip:alice@example.net>;tag=b2\r\n", []int{200}},
	} {
		raw := tc.method + " sip:alice@example.net SIP/2.0\r\n" + head + tc.to +
			"CSeq: 1 " + tc.method + "\r\n" + tail
		msg, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		req := msg.(*sip.Request)
		req.SetSource("192.0.2.1:5062")
		req.SetTransport("UDP")
		for _, code := range tc.codes {
			got := newResponse(req, code, "Reason")
			want := sip.NewResponseFromRequest(req, code, "Reason", nil)
			for _, r := range []*sip.Response{got, want} {
				if code != 100 && !r.To().Params.Has("tag") {
					t.Errorf("%s %d: no To tag", tc.method, code)
				}
				if v, _ := req.To().Params.Get("tag"); v == "" {
					r.To().Params.Remove("tag")
				}
			}
			if got.String() != want.String() || got.Transport() != want.Transport() ||
				got.Destination() != want.Destination() {
				t.Errorf("%s %d:\n%s\nwant\n%s", tc.method, code, got, want)
			}
			if cl := got.ContentLength(); cl == nil || *cl != 0 {
				t.Errorf("%s %d: Content-Length %v", tc.method, code, cl)
			}
		}
	}
}

// TestMwCopyAsClone checks mwCopy against sipgo's Clone, and that edits of
// the copy's header list leave the original alone.
func TestMwCopyAsClone(t *testing.T) {
	raw := "REGISTER sip:example.net;transport=udp SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:alice@example.net>;tag=a1\r\n" +
		"To: <sip:alice@example.net>\r\n" +
		"Call-ID: c1\r\n" +
		"CSeq: 2 REGISTER\r\n" +
		"Contact: <sip:alice@192.0.2.1:5060>;expires=600\r\n" +
		"Route: <sip:pcscf.example.net;lr>\r\n" +
		"Path: <sip:p.example.net;lr>\r\n" +
		"P-Asserted-Identity: <sip:mallory@example.net>\r\n" +
		"Content-Length: 3\r\n\r\nabc"
	for _, tc := range []struct{ name, raw string }{
		{"with body", raw},
		{"without Content-Length", strings.Replace(raw, "Content-Length: 3\r\n\r\nabc", "\r\n", 1)},
	} {
		msg, err := sip.ParseMessage([]byte(tc.raw))
		if err != nil {
			t.Fatal(err)
		}
		req := msg.(*sip.Request)
		req.SetSource("192.0.2.1:5060")
		req.SetTransport("UDP")
		before := req.String()
		got, want := mwCopy(req), req.Clone()
		if got.String() != want.String() || got.Transport() != want.Transport() ||
			got.Source() != want.Source() || got.Destination() != want.Destination() {
			t.Errorf("%s: copy\n%s\n(%s %s %s) want\n%s\n(%s %s %s)", tc.name,
				got, got.Transport(), got.Source(), got.Destination(),
				want, want.Transport(), want.Source(), want.Destination())
		}
		removeHeader(got, "P-Asserted-Identity")
		removeHeader(got, "Path")
		got.AppendHeader(sip.NewHeader("Path", "<sip:term@192.0.2.2;lr>"))
		got.Recipient.UriParams.Add("x", "y")
		if req.String() != before {
			t.Errorf("%s: original changed:\n%s", tc.name, req)
		}
	}
}
