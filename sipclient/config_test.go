package sipclient

import (
	"net/netip"
	"strings"
	"testing"
)

// Config.LocalPort and ServerPort follow the net package: 0 lets the system
// pick, any other value is bound as given; the two must differ.
func TestConfigPorts(t *testing.T) {
	pcscf := netip.MustParseAddrPort("127.0.0.1:5060") // nothing is sent
	base := Config{Auth: softISIM(t, 1), PCSCF: pcscf, LocalIP: pcscf.Addr()}

	c, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if c.unprotPort == 0 || c.unprotPort == DefaultPort || c.ServerPort() == 0 {
		t.Errorf("LocalPort 0: unprotected port %d, port_us %d; want ephemeral ports", c.unprotPort, c.ServerPort())
	}
	c.Close()

	tcp := base
	tcp.Transport = "tcp"
	if c, err = New(tcp); err != nil {
		t.Fatal(err)
	}
	if c.unprotPort != 0 {
		t.Errorf("TCP, LocalPort 0: unprotected port %d, want 0 (one ephemeral port per connection)", c.unprotPort)
	}
	c.Close()

	same := base
	same.LocalPort, same.ServerPort = 40000, 40000
	if c, err = New(same); err == nil || !strings.Contains(err.Error(), "equals the unprotected port") {
		if c != nil {
			c.Close()
		}
		t.Errorf("LocalPort = ServerPort = 40000: %v", err)
	}
}
