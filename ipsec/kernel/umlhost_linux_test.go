package kernel_test

import (
	"bytes"
	"testing"

	"github.com/imsue/imsue/test/uml/netlab"
)

// TestUMLHostTshark is the host-side half of TestUMLESPTraffic, run by
// test/uml/run after the guest has stopped: for each alg × ealg × family
// case it gives tshark the UE's outgoing frames captured in the guest and
// the esp_sa file written by ipsec.ESPKeysFile, and requires that every
// frame is ESP with a good ICV and that every payload the UE sent appears
// decrypted.
func TestUMLHostTshark(t *testing.T) {
	valid := func(want artifact) bool { return len(want.Markers) != 0 }
	netlab.HostCases(t, "esp", "TestUMLESPTraffic", valid, func(t *testing.T, dir string, want artifact) {
		lines := netlab.TsharkESP(t, dir, nil,
			"frame.number", "esp.spi", "esp.icv_good", "udp.payload", "tcp.payload")
		var decrypted []byte
		frames := 0
		for _, f := range lines {
			frames++
			if f[1] == "" {
				t.Errorf("frame %s is not ESP", f[0])
				continue
			}
			if !netlab.TsharkTrue(f[2]) {
				t.Errorf("frame %s (spi %s): ICV not verified good (%q)", f[0], f[1], f[2])
			}
			for _, hx := range f[3:] {
				p, err := netlab.TsharkBytes(hx)
				if err != nil {
					t.Fatalf("frame %s: payload %q: %v", f[0], hx, err)
				}
				decrypted = append(decrypted, p...)
			}
		}
		if frames < 8 {
			t.Errorf("%d frames in the capture", frames)
		}
		for _, m := range want.Markers {
			if !bytes.Contains(decrypted, []byte(m)) {
				t.Errorf("tshark did not decrypt %q (%s)", m, want.EAlg)
			}
		}
	})
}
