package mt_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/mt"
)

// The UE side of one registration, as sipclient drives it.
func Example() {
	alloc, _ := mt.NewAllocator(mt.DefaultPortRange, nil)
	ue, _ := alloc.Allocate() // bind ue.PortS and ue.PortC; on EADDRINUSE: alloc.PortBusy(port)

	// Initial REGISTER: Security-Client.
	offer, _ := mt.Offer([]ipsec.Auth{ipsec.AuthHMACSHA196, ipsec.AuthHMACMD596}, []ipsec.Enc{ipsec.EncAESCBC, ipsec.EncNull}, ue)
	_ = mt.FormatSecurity(offer)

	// 401: Security-Server (here as Kamailio 5.6 sends it).
	serverValues := []string{"ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200;alg=hmac-sha-1-96;ealg=aes-cbc"}
	server, err := mt.ParseSecurity(serverValues...)
	if err != nil {
		return // exit 7
	}
	chosen, err := mt.Choose(offer, server)
	if err != nil {
		return // exit 7: never a downgrade
	}
	var lc mt.Lifecycle
	ch := mt.Challenge{CallID: "abc", CSeq: 1, Nonce: "base64(RAND||AUTN)"}
	if lc.Seen(ch) {
		return // retransmitted 401: no second AKA run, no second set
	}
	var ck, ik [16]byte // from AKA
	ep := mt.Endpoints{UE: netip.MustParseAddr("192.0.2.10"), PCSCF: netip.MustParseAddr("192.0.2.1")}
	set, err := mt.PlanUE(ep, ue, chosen.Params(), chosen, ck, ik, mt.TemporaryLifetime)
	if err != nil {
		return
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	acts, _ := lc.Challenged(now, ch, set)
	for _, a := range acts {
		fmt.Println(a.Op, a.Reason) // Backend.Install(ctx, a.Set)
	}

	// Protected REGISTER over the set, with Security-Verify:
	fmt.Println(mt.VerifyValue(serverValues) == serverValues[0])

	// 200 OK over the set, Expires: 600000.
	acts, _ = lc.Registered(now.Add(time.Second), set.ID, 600000*time.Second)
	for _, a := range acts {
		fmt.Println(a.Op, a.Reason, a.Expires.Sub(now))
	}

	// De-registration: remove everything, release the SPIs and port.
	for _, a := range lc.Clear() {
		fmt.Println(a.Op, a.Reason) // Backend.Remove(ctx, a.Set)
		alloc.Release(a.Local)
	}
	// Output:
	// install challenged
	// true
	// extend registered 166h40m31s
	// remove registration ended
}
