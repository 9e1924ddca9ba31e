package sipclient

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/imsue/imsue/ipsec"
)

// TestResponseOverWithdrawnSet: a response to a request that arrived over
// an SA set is sent while the set is installed, and not at all once its
// removal has begun (it would leave in clear after the SAs are gone: a
// NOTIFY crossing the 200 of the de-REGISTER over TCP did exactly that).
// A request that arrived over no set is not affected.
func TestResponseOverWithdrawnSet(t *testing.T) {
	ue, pcscf := netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.2")
	set := &ipsec.SASet{ID: 7}
	set.SAs[2] = ipsec.SA{Src: netip.AddrPortFrom(pcscf, 4000), Dst: netip.AddrPortFrom(ue, 5000), Dir: ipsec.In}
	set.SAs[3] = ipsec.SA{Src: netip.AddrPortFrom(ue, 5000), Dst: netip.AddrPortFrom(pcscf, 4000), Dir: ipsec.Out}
	c := &Client{installed: map[uint64]*ipsec.SASet{7: set}, withdrawn: map[uint64]bool{}}

	tests := []struct {
		name     string
		in       inbound
		overSet  bool
		withdraw bool
		sent     bool
	}{
		{"over the set", inbound{remote: netip.AddrPortFrom(pcscf, 4000), local: netip.AddrPortFrom(ue, 5000)}, true, false, true},
		{"over the withdrawn set", inbound{remote: netip.AddrPortFrom(pcscf, 4000), local: netip.AddrPortFrom(ue, 5000)}, true, true, false},
		{"outbound SA's direction", inbound{remote: netip.AddrPortFrom(ue, 5000), local: netip.AddrPortFrom(pcscf, 4000)}, false, false, true},
		{"other port", inbound{remote: netip.AddrPortFrom(pcscf, 4001), local: netip.AddrPortFrom(ue, 5000)}, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.withdrawn[7] = false
			sent := false
			send := func([]byte) error { sent = true; return nil }
			id, ok := c.arrivedOver(&tt.in)
			if ok != tt.overSet || (ok && id != 7) {
				t.Fatalf("arrivedOver: %d, %v; want over the set: %v", id, ok, tt.overSet)
			}
			if ok {
				send = c.overSet(id, send)
			}
			if tt.withdraw {
				c.withdraw(7)
			}
			err := send([]byte("SIP/2.0 200 OK\r\n\r\n"))
			if sent != tt.sent || (tt.sent && err != nil) || (!tt.sent && !errors.Is(err, errSetRemoved)) {
				t.Errorf("sent %v, err %v; want sent %v", sent, err, tt.sent)
			}
		})
	}
}
