package imscore

import (
	"testing"

	"github.com/imsue/imsue/ipsec"
)

// BenchmarkRegister measures one IMS AKA registration against the core over
// UDP loopback, end to end: REGISTER → 401 → protected REGISTER → 200, then
// the de-REGISTER → 200 that returns the core to its initial state. It
// includes the hand-built UE's MILENAGE and digest work.
func BenchmarkRegister(b *testing.B) {
	c, _ := startCore(b, Config{IPsec: ipsec.None{}})
	u := newUE(b, c, "UDP")
	b.ReportAllocs()
	for b.Loop() {
		u.callID, u.cseq = "bench-"+randHex(8), 1
		u.register()
		u.sendProtectedOld(u.registerText(regMsg{expires: 0, verify: u.verifyOld, client: "-"}))
		if _, resp := u.response(wait); resp.StatusCode != 200 {
			b.Fatalf("de-REGISTER: %s", resp.StartLine())
		}
		u.ucOld = nil
	}
}

// BenchmarkVector measures the HSS generating one authentication vector
// (RAND from crypto/rand, MILENAGE f1–f5).
func BenchmarkVector(b *testing.B) {
	h := newHSS([]Subscriber{testSubscriber(b)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.generate(testIMPI, vectorFault{}); err != nil {
			b.Fatal(err)
		}
	}
}
