package sipclient

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// The REGISTER's Contact and the headers an IMS core expects (TS 24.229
// §5.1.1.2.1, GSMA IR.92 §2.2.1): +sip.instance (the IMEI URN of TS 23.003
// §13.8), the MMTel ICSI in +g.3gpp.icsi-ref with its colons
// percent-encoded, +g.3gpp.smsip, Supported: path, gruu (RFC 5627 §4.1),
// and P-Access-Network-Info; for a registration and a de-registration.
// The expected lines (testdata/register_contact.golden) are written from
// those clauses, not from imsue's output.
func TestRegisterContactGolden(t *testing.T) {
	c, err := New(Config{Auth: softISIM(t, 1), PCSCF: netip.MustParseAddrPort("127.0.0.1:9"),
		LocalIP: netip.MustParseAddr("127.0.0.1"), ServerPort: 5062,
		Instance: "urn:gsma:imei:35209900-176148-0", SMSIP: true,
		PANI: "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=0010100010019B01"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.callID = "golden"
	var got []string
	for _, exp := range []time.Duration{600 * time.Second, 0} {
		req := c.buildRegister(exp, c.initialAuthorization(), "", nil, "udp")
		for _, l := range strings.Split(req.String(), "\r\n") {
			for _, h := range []string{"Contact:", "Expires:", "Supported:", "P-Access-Network-Info:"} {
				if strings.HasPrefix(l, h) {
					got = append(got, l)
				}
			}
		}
	}
	want, err := os.ReadFile("testdata/register_contact.golden")
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(got, "\n") + "\n"; g != string(want) {
		t.Errorf("REGISTER headers:\n%s\nwant:\n%s", g, want)
	}
}

// ICSIs, instances and PANI that would break the header are refused.
func TestContactConfigRefused(t *testing.T) {
	for _, cfg := range []Config{
		{ICSI: []string{"mmtel"}},
		{ICSI: []string{`urn:x",evil`}},
		{Instance: "not-a-urn"},
		{Instance: "urn:uuid:x>;evil"},
		{PANI: "a\r\nVia: x"},
	} {
		cfg.Auth, cfg.PCSCF = softISIM(t, 1), netip.MustParseAddrPort("127.0.0.1:9")
		if c, err := New(cfg); err == nil {
			c.Close()
			t.Errorf("New accepted %+v", cfg)
		}
	}
}
