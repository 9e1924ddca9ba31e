package kernel_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/test/uml/netlab"
)

// TestUMLHostTshark is the host-side half of TestUMLESPTraffic, run by
// test/uml/run after the guest has stopped: for each alg × ealg × family
// case it gives tshark the UE's outgoing frames captured in the guest and
// the esp_sa file written by ipsec.ESPKeysFile, and requires that every
// frame is ESP with a good ICV and that every payload the UE sent appears
// decrypted.
func TestUMLHostTshark(t *testing.T) {
	root := os.Getenv(netlab.EnvOut)
	if root == "" {
		t.Skip("host-side check of test/uml/run: reads the captures the UML guest left in " + netlab.EnvOut)
	}
	tshark := testenv.NeedCommand(t, "tshark")
	cases, _ := filepath.Glob(filepath.Join(root, "esp", "*", "expect.json"))
	if len(cases) == 0 {
		if os.Getenv("IMSUE_UML_RUN") != "" {
			t.Skip("no captures: the -run filter left TestUMLESPTraffic out")
		}
		t.Fatalf("no captures under %s/esp: TestUMLESPTraffic left no artifacts", root)
	}
	for _, c := range cases {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			b, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			var want artifact
			if err := json.Unmarshal(b, &want); err != nil || len(want.Markers) == 0 {
				t.Fatalf("%s: %v", c, err)
			}
			cmd := exec.Command(tshark, "-n", "-r", filepath.Join(dir, "capture.pcap"),
				"-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
				"-T", "fields", "-E", "separator=/t",
				"-e", "frame.number", "-e", "esp.spi", "-e", "esp.icv_good", "-e", "udp.payload", "-e", "tcp.payload")
			cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+dir, "HOME="+dir)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, stderr.String())
			}
			var decrypted []byte
			frames := 0
			for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
				f := strings.Split(line, "\t")
				if len(f) != 5 {
					t.Fatalf("tshark line %q", line)
				}
				frames++
				if f[1] == "" {
					t.Errorf("frame %s is not ESP", f[0])
					continue
				}
				if f[2] != "1" && f[2] != "True" {
					t.Errorf("frame %s (spi %s): ICV not verified good (%q)", f[0], f[1], f[2])
				}
				for _, hx := range f[3:] {
					p, err := hex.DecodeString(strings.ReplaceAll(hx, ":", ""))
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
}
