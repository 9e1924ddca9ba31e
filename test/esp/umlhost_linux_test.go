package esp_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/testenv"
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
	root := os.Getenv(netlab.EnvOut)
	if root == "" {
		t.Skip("host-side check of test/uml/run: reads the captures the UML guest left in " + netlab.EnvOut)
	}
	tshark := testenv.NeedCommand(t, "tshark")
	cases, _ := filepath.Glob(filepath.Join(root, "register", "*", "expect.json"))
	if len(cases) == 0 {
		if os.Getenv("IMSUE_UML_RUN") != "" {
			t.Skip("no captures: the -run filter left TestUMLRegisterESP out")
		}
		t.Fatalf("no captures under %s/register: TestUMLRegisterESP left no artifacts", root)
	}
	for _, c := range cases {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			b, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			var want expectation
			if err := json.Unmarshal(b, &want); err != nil || want.CallID == "" || want.CSeq == 0 {
				t.Fatalf("%s: %v", c, err)
			}
			frames := tsharkESP(t, tshark, dir)
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

func tsharkESP(t *testing.T, tshark, dir string) []tsharkFrame {
	t.Helper()
	cmd := exec.Command(tshark, "-n", "-r", filepath.Join(dir, "capture.pcap"),
		"-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
		"-o", "tcp.desegment_tcp_streams:FALSE",
		"-T", "fields", "-E", "separator=/t",
		"-e", "frame.number", "-e", "ip.src", "-e", "ipv6.src", "-e", "esp.spi", "-e", "esp.icv_good", "-e", "udp.payload", "-e", "tcp.payload")
	// tshark reads esp_sa from its configuration directory.
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+dir, "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	var frames []tsharkFrame
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			t.Fatalf("tshark line %q", line)
		}
		fr := tsharkFrame{src: f[1] + f[2], icvGood: f[4] == "1" || f[4] == "True"}
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
				p, err := hex.DecodeString(strings.ReplaceAll(hx, ":", ""))
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
