package imscore

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/sipnet"
)

// FuzzConfigFile: no input makes ParseConfigFile panic, and an accepted
// file yields a Config that Start's validation accepts.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("subscribers:\n  - imsi: \"001010123456789\"\n    k: 465b5ce8b199b49faa5f0a2ee238a6bc\n    opc: cd63cb71954a9f4e48a5994e37a02baf\n"))
	f.Add([]byte(sampleConfig))
	f.Add([]byte("domain: x\nsubscribers: [{impi: a@x, impu: [sip:a@x], password: p}]\nalgorithm: MD5\n"))
	f.Add([]byte("listen: [::1]:0\nmechanisms: [{alg: hmac-md5-96, q: 0.5}]\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := ParseConfigFile(data)
		if err != nil {
			if strings.Contains(err.Error(), "465b5ce8") {
				t.Fatalf("error quotes a key: %v", err)
			}
			return
		}
		if _, err := fc.Config.withDefaults(); err != nil {
			t.Fatalf("accepted file fails validation: %v", err)
		}
	})
}

// FuzzRequest feeds arbitrary datagrams to a running core as if they came
// from a UE, on the unprotected and the protected port: nothing may panic
// and the P-CSCF's bookkeeping must stay consistent.
func FuzzRequest(f *testing.F) {
	c, _ := startCore(f, Config{})
	u := newUE(f, c, "UDP")
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		f.Fatal(err)
	}
	defer sink.Close()
	go func() { // swallow the core's answers
		buf := make([]byte, 65535)
		for {
			if _, _, err := sink.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	from := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	// A registered UE, so that inputs can also arrive over its SA flow.
	u.register()
	flow := netip.AddrPortFrom(u.ip, port(u.ucOld.LocalAddr()))

	f.Add(uint8(0), []byte(u.registerText(regMsg{expires: -1})))
	f.Add(uint8(0), []byte(u.registerText(regMsg{expires: 0, auth: `Digest username="` + testIMPI + `", realm="x", nonce="AAAA", uri="sip:x", response="", auts="AAAAAAAAAAAAAAAAAAAA"`})))
	f.Add(uint8(1), []byte(u.registerText(regMsg{expires: -1, verify: "ipsec-3gpp;alg=hmac-md5-96;spi-c=1000;spi-s=1001;port-c=1;port-s=2"})))
	f.Add(uint8(1), []byte(u.subscribeText("c1", "", 1, 600)))
	f.Add(uint8(0), []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: x\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n"))
	f.Add(uint8(0), []byte("REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@x>\r\nTo: <sip:a@x>\r\nCall-ID: y\r\nCSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\n\r\n"))
	f.Add(uint8(2), []byte(u.subscribeText("c2", "", 1, 600)))
	f.Add(uint8(2), []byte(u.registerText(regMsg{expires: 0, verify: u.verifyOld, client: "-"})))
	// The RFC 4475 torture messages, on each of the three ways in.
	for which := range uint8(3) {
		testenv.AddSeedFiles(f, "../sipnet/testdata/rfc4475/*.sip", which)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		msg, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		in := inbound{msg: msg, ep: c.unprot, transport: "UDP", remote: from}
		switch which % 3 {
		case 1: // port_ps from an unknown address
			in.ep = c.server
		case 2: // port_ps over the registered UE's SA flow
			in.ep, in.remote = c.server, flow
		}
		switch m := msg.(type) {
		case *sip.Request:
			c.handleRequest(in, m)
		case *sip.Response:
			c.acceptResponse(&sipnet.Inbound{Msg: m, Network: "udp", Local: in.ep.addr, Remote: in.remote})
		}
		if err := c.checkInvariants(); err != nil {
			t.Fatal(err)
		}
	})
}

// sampleConfig is the documented example configuration.
const sampleConfig = `domain: ims.mnc001.mcc001.3gppnetwork.org
listen: 127.0.0.1:0
port_ps: 0
algorithm: AKAv2-MD5
qop: "auth,auth-int"
max_expires: 1h
min_expires: 60
auth_timeout: 240s
reauth_expires: 30
ipsec: none
mechanisms:
  - {alg: hmac-sha-1-96, ealg: aes-cbc, q: 0.5}
  - {alg: hmac-md5-96, ealg: null, q: 0.1}
subscribers:
  - imsi: "001010123456789"
    mnc_length: 2
    impu: [sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org, tel:+15551234567]
    k: 465b5ce8b199b49faa5f0a2ee238a6bc
    op: cdc202d5123e20f62b6d676ac72cb318
    sqn: 0x20
    amf: "8000"
  - impi: alice@ims.mnc001.mcc001.3gppnetwork.org
    k: 000102030405060708090a0b0c0d0e0f
    opc: 000102030405060708090a0b0c0d0e0f
`
