package esp_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/imsue/imsue/test/uml/netlab"
)

// TestUMLHostTshark is the host-side half of TestUMLRegisterESP, run by
// test/uml/run after the guest has stopped: for every case, tshark reads
// the frames captured on the UE's veth with the esp_sa file that
// `imsue register --esp-keys` wrote, and must find, decrypted from ESP
// frames whose ICV it verified, the protected REGISTER (with
// Security-Verify, the case's Call-ID and CSeq) in the SA that carried it
// and over the transport the case asked for, and the 200 OK with that CSeq
// in the SA that carried the answer. Someone else's decoder with imsue's key
// file is the independent proof that the registration went through ESP.
func TestUMLHostTshark(t *testing.T) {
	valid := func(want expectation) bool { return want.CallID != "" && want.CSeq != 0 }
	netlab.HostCases(t, "register", "TestUMLRegisterESP", valid, func(t *testing.T, dir string, want expectation) {
		frames := tsharkESP(t, dir)
		up, down := map[string][]byte{}, map[string][]byte{}
		esp := 0
		for _, f := range frames {
			if f.spi == 0 {
				continue
			}
			esp++
			if !f.icvGood {
				t.Errorf("frame %d (spi 0x%x): ICV not verified good", f.num, f.spi)
			}
			m := down
			if f.src == want.UE {
				m = up
			}
			key := fmt.Sprintf("%x/%s", f.spi, f.transport)
			m[key] = append(m[key], f.payload...)
		}
		if esp < 4 {
			t.Fatalf("%d ESP frames in the capture", esp)
		}
		reg := up[fmt.Sprintf("%x/%s", want.SPIReg, want.Transport)]
		regAt := bytes.Index(reg, []byte("REGISTER sip:"))
		if regAt < 0 || !containsAll(reg[regAt:], "Security-Verify:", "Call-ID: "+want.CallID, fmt.Sprintf("CSeq: %d REGISTER", want.CSeq)) {
			t.Errorf("tshark did not decrypt the protected REGISTER (CSeq %d) over %s in SA 0x%x; decrypted there: %q",
				want.CSeq, want.Transport, want.SPIReg, head(reg))
		}
		ok := down[fmt.Sprintf("%x/%s", want.SPIOK, want.Transport)]
		if !containsAll(ok, "SIP/2.0 200 OK", fmt.Sprintf("CSeq: %d REGISTER", want.CSeq), "Call-ID: "+want.CallID) {
			t.Errorf("tshark did not decrypt the 200 OK (CSeq %d) over %s in SA 0x%x; decrypted there: %q",
				want.CSeq, want.Transport, want.SPIOK, head(ok))
		}
	})
}

// tsharkFrame is one frame as tshark decoded it.
type tsharkFrame struct {
	num       int
	src       string
	spi       uint32 // 0: not ESP
	icvGood   bool
	transport string // of the decrypted payload: udp or tcp
	payload   []byte
}

func tsharkESP(t *testing.T, dir string) []tsharkFrame {
	t.Helper()
	lines := netlab.TsharkESP(t, dir, []string{"-o", "tcp.desegment_tcp_streams:FALSE"},
		"frame.number", "ip.src", "ipv6.src", "esp.spi", "esp.icv_good", "udp.payload", "tcp.payload")
	var frames []tsharkFrame
	for _, f := range lines {
		fr := tsharkFrame{src: f[1] + f[2], icvGood: netlab.TsharkTrue(f[4])}
		fr.num, _ = strconv.Atoi(f[0])
		if f[3] != "" {
			spi, err := strconv.ParseUint(strings.TrimPrefix(f[3], "0x"), 16, 32)
			if err != nil {
				t.Fatalf("frame %s: spi %q", f[0], f[3])
			}
			fr.spi = uint32(spi)
		}
		for i, tr := range []string{"udp", "tcp"} {
			if hx := f[5+i]; hx != "" {
				p, err := netlab.TsharkBytes(hx)
				if err != nil {
					t.Fatalf("frame %s: payload %q: %v", f[0], hx, err)
				}
				fr.transport, fr.payload = tr, p
			}
		}
		frames = append(frames, fr)
	}
	return frames
}

func containsAll(b []byte, subs ...string) bool {
	for _, s := range subs {
		if !bytes.Contains(b, []byte(s)) {
			return false
		}
	}
	return true
}

func head(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
