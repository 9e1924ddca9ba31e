package sipnet

import (
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestHeaderValues(t *testing.T) {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "example.net"})
	req.AppendHeader(sip.NewHeader("o", "reg;id=2"))
	req.AppendHeader(sip.NewHeader("EVENT", "reg"))
	req.AppendHeader(sip.NewHeader("Path", "<sip:a>"))
	req.AppendHeader(sip.NewHeader("path", "<sip:b>"))
	if got := HeaderValues(req, "Path"); !slices.Equal(got, []string{"<sip:a>", "<sip:b>"}) {
		t.Errorf("Path: %q", got)
	}
	// Those of the first name first, as the GetHeaders of each name did.
	if got := HeaderValues(req, "Event", "o"); !slices.Equal(got, []string{"reg", "reg;id=2"}) {
		t.Errorf("Event, o: %q", got)
	}
	if got := HeaderValues(req, "Supported"); got != nil {
		t.Errorf("Supported: %q", got)
	}
	if hs := HeadersNamed(req, "PATH"); len(hs) != 2 || hs[1].Value() != "<sip:b>" {
		t.Errorf("HeadersNamed: %v", hs)
	}
}

func TestSetContentLength(t *testing.T) {
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", Host: "example.net"})
	req.AppendHeader(sip.NewHeader("content-length", "99"))
	req.AppendHeader(sip.NewHeader("Subject", "x"))
	req.SetBody([]byte("hello"))
	SetContentLength(req)
	hs := req.Headers()
	if n := len(HeaderValues(req, "Content-Length")); n != 1 {
		t.Fatalf("%d Content-Length headers in\n%s", n, req)
	}
	if last := hs[len(hs)-1]; last.Name() != "Content-Length" || last.Value() != "5" {
		t.Errorf("last header %s: %s", last.Name(), last.Value())
	}
	if cl := req.ContentLength(); cl == nil || *cl != 5 {
		t.Errorf("ContentLength() = %v", cl)
	}
	if !strings.HasSuffix(req.String(), "Content-Length: 5\r\n\r\nhello") {
		t.Errorf("message:\n%s", req)
	}
}
