package locate

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/imsue/imsue/locate/locatetest"
)

var zone = locatetest.Zone

func resolve(t *testing.T, server, domain, transport string) ([]Target, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := Resolver{Server: server}
	return r.SIP(ctx, domain, transport)
}

// RFC 3263 §4.1: NAPTR order, then preference, picks the SRV name; SRV
// priority, then weight, orders the hosts.
func TestNAPTRThenSRV(t *testing.T) {
	srv := zone(t,
		`ims.example. 60 IN NAPTR 20 10 "s" "SIP+D2U" "" _sip._udp.ims.example.`,
		`ims.example. 60 IN NAPTR 10 10 "s" "SIP+D2T" "" _sip._tcp.ims.example.`,
		`ims.example. 60 IN NAPTR 5 10 "s" "SIPS+D2T" "" _sips._tcp.ims.example.`,
		`_sip._tcp.ims.example. 60 IN SRV 10 10 7060 pcscf2.ims.example.`,
		`_sip._tcp.ims.example. 60 IN SRV 5 10 5060 pcscf1.ims.example.`,
		`_sip._udp.ims.example. 60 IN SRV 5 10 5060 pcscf1.ims.example.`,
		`pcscf1.ims.example. 60 IN A 127.0.0.11`,
		`pcscf1.ims.example. 60 IN AAAA ::1`,
		`pcscf2.ims.example. 60 IN A 127.0.0.12`,
	)
	got, err := resolve(t, srv, "ims.example", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"TCP 127.0.0.11:5060 (pcscf1.ims.example)",
		"TCP [::1]:5060 (pcscf1.ims.example)",
		"TCP 127.0.0.12:7060 (pcscf2.ims.example)",
		"UDP 127.0.0.11:5060 (pcscf1.ims.example)",
		"UDP [::1]:5060 (pcscf1.ims.example)",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("target %d: %s, want %s", i, got[i], want[i])
		}
	}
	udp, err := resolve(t, srv, "ims.example", "udp")
	if err != nil || len(udp) != 2 || udp[0].Transport != "udp" {
		t.Errorf("udp only: %v, %v", udp, err)
	}
}

// Without NAPTR: SRV per transport (§4.1); without SRV either: the
// domain's address on 5060 (§4.2).
func TestFallbacks(t *testing.T) {
	srv := zone(t,
		`a.example. 60 IN A 127.0.0.20`,
		`_sip._udp.b.example. 60 IN SRV 0 0 5070 p.b.example.`,
		`p.b.example. 60 IN A 127.0.0.21`,
	)
	got, err := resolve(t, srv, "b.example", "")
	if err != nil || len(got) != 1 || got[0].String() != "UDP 127.0.0.21:5070 (p.b.example)" {
		t.Errorf("SRV without NAPTR: %v, %v", got, err)
	}
	got, err = resolve(t, srv, "a.example", "tcp")
	if err != nil || len(got) != 1 || got[0].String() != "TCP 127.0.0.20:5060 (a.example)" {
		t.Errorf("A only: %v, %v", got, err)
	}
	if _, err := resolve(t, srv, "none.example", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown domain: %v; want ErrNotFound", err)
	}
}

// A DNS server that does not answer is an error naming it, within the
// caller's deadline.
func TestNoAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := Resolver{Server: pc.LocalAddr().String()}
	if _, err := r.SIP(ctx, "x.example", ""); err == nil {
		t.Fatal("no error from a silent DNS server")
	}
}
