package sipclient

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipnet"
)

// Seeds: what real P-CSCFs send (Kamailio 5.6, whose Security-Server the
// README's "Interop" section describes; the lab core) and a NOTIFY with an
// RFC 3680 body.
var fuzzSeeds = []string{
	"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc\r\nFrom: <sip:u@ims.example>;tag=1\r\nTo: <sip:u@ims.example>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n" +
		"WWW-Authenticate: Digest realm=\"ims.example\", nonce=\"wRFfEwGfqEiCuxbYeghx4hNzaSJtHYAAmVUjvS5EMqA=\", algorithm=AKAv1-MD5, qop=\"auth,auth-int\"\r\n" +
		"Security-Server: ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200;alg=hmac-sha-1-96;ealg=aes-cbc\r\nSupported: sec-agree\r\nContent-Length: 0\r\n\r\n",
	"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bKabc\r\nFrom: <sip:u@x>;tag=1\r\nTo: <sip:u@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n" +
		"WWW-Authenticate: Digest realm=\"x\",nonce=\"AAAAAAAAAAAAAAAAAAAAAAMEBQYHCAAAAAECAwQFBgc=\",algorithm=AKAv2-MD5\r\n" +
		"Security-Server: ipsec-3gpp; alg=hmac-md5-96; ealg=des-ede3-cbc; spi-c=1; spi-s=2; port-c=3; port-s=4; q=0.5, ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;spi-c=5;spi-s=6;port-c=7;port-s=8;q=0.1\r\nContent-Length: 0\r\n\r\n",
	"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc\r\nFrom: <sip:u@x>;tag=1\r\nTo: <sip:u@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 REGISTER\r\n" +
		"Contact: <sip:u@127.0.0.1:5062>;expires=3600\r\nP-Associated-URI: <sip:u@x>, <tel:+1555>\r\nService-Route: <sip:orig@scscf.x;lr>\r\nPath: <sip:term@pcscf.x;lr>\r\nContent-Length: 0\r\n\r\n",
	"NOTIFY sip:u@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7200;branch=z9hG4bKn1\r\nFrom: <sip:u@x>;tag=9\r\nTo: <sip:u@x>;tag=8\r\nCall-ID: fuzzsub\r\nCSeq: 1 NOTIFY\r\n" +
		"Event: reg\r\nSubscription-State: active;expires=600000\r\nContent-Type: application/reginfo+xml\r\n" +
		"Content-Length: 299\r\n\r\n" +
		`<?xml version="1.0"?><reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full"><registration aor="sip:u@x" id="a" state="active"><contact id="c" state="terminated" event="deactivated"><uri>sip:u@127.0.0.1:5062</uri></contact></registration></reginfo>` +
		"\r\n",
	"OPTIONS sip:u@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7200;rport;branch=z9hG4bKo\r\nFrom: <sip:p@x>;tag=9\r\nTo: <sip:u@x>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
}

// tortureSeeds are the RFC 4475 torture messages, valid and invalid, that
// the inbound fuzz targets take as seeds too.
const tortureSeeds = "../sipnet/testdata/rfc4475/*.sip"

// FuzzInbound feeds arbitrary datagrams through everything the UE does with
// a received message short of sending: parsing, the
// answer to a request, and reading a 401 or 200 (challenge, sec-agree,
// expiry, identities). Nothing may panic.
func FuzzInbound(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	testenv.AddSeedFiles(f, tortureSeeds)
	c := &Client{
		s:      &settings{Config: Config{Password: "pw"}, algs: DefaultAlgs, ealgs: DefaultEAlgs},
		local:  netip.MustParseAddr("127.0.0.1"),
		portUS: 5062,
		events: make(chan *notifyEvent, 1),
	}
	c.subCallID = "fuzzsub"
	mechs, err := mt.Offer(DefaultAlgs, DefaultEAlgs, mt.Params{SPIc: 1000, SPIs: 1001, PortC: 5061, PortS: 5062})
	if err != nil {
		f.Fatal(err)
	}
	o := &offer{mechs: mechs}
	src := netip.MustParseAddrPort("127.0.0.1:7200")
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		in := &sipnet.Inbound{Msg: msg, Network: "udp", Local: netip.AddrPortFrom(c.local, c.portUS), Remote: src, At: time.Now()}
		switch m := msg.(type) {
		case *sip.Response:
			if ch, err := c.readChallenge(m); err == nil && ch.Challenge == nil {
				t.Fatal("challenge without its parse")
			}
			c.agree(o, m)
			ownBinding(m, c.local, c.portUS, time.Minute)
			for _, e := range splitList(headerValues(m, "P-Associated-URI")...) {
				uriOf(e)
			}
			minExpires(m)
		case *sip.Request:
			if m.Via() == nil || m.CSeq() == nil || m.CallID() == nil || m.From() == nil || m.To() == nil {
				return // onRequest drops these before answering
			}
			res := c.answer(in, m)
			if res == nil || res.StatusCode < 200 {
				t.Fatalf("no final answer to %s", m.Method)
			}
			_ = res.String()
			sipnet.ViaDestination(m.Via(), src)
			select {
			case ev := <-c.events:
				_ = ev.body
			default:
			}
		}
	})
}

// FuzzSplitList: entries are non-empty, trimmed, and taken from the input.
func FuzzSplitList(f *testing.F) {
	f.Add("<sip:a@x>, <tel:+1555>")
	f.Add(`"Doe, John" <sip:j@x;lr>;p="a,b", sip:k@x`)
	f.Add(`"unterminated, <sip:x>`)
	f.Fuzz(func(t *testing.T, v string) {
		for _, e := range splitList(v) {
			if e == "" || e != strings.TrimSpace(e) || !strings.Contains(v, e) {
				t.Fatalf("entry %q of %q", e, v)
			}
			uriOf(e)
		}
	})
}
