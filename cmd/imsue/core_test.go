package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsue/imsue/internal/testenv"
)

const coreTestConfig = `listen: 127.0.0.1:0
algorithm: AKAv1-MD5
subscribers:
  - imsi: "001010123456789"
    k: 465b5ce8b199b49faa5f0a2ee238a6bc
    opc: cd63cb71954a9f4e48a5994e37a02baf
`

func writeCoreConfig(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "core.yaml")
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCoreUsageErrors: configuration mistakes are usage errors (exit 2)
// that name the problem without quoting keys.
func TestCoreUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args func(t *testing.T) []string
		want string
	}{
		{"missing file", func(t *testing.T) []string {
			return []string{"core", "--config", filepath.Join(t.TempDir(), "nope.yaml")}
		}, "--config"},
		{"bad yaml", func(t *testing.T) []string {
			return []string{"core", "--config", writeCoreConfig(t, "subscribers: [", 0o600)}
		}, "--config"},
		{"short key", func(t *testing.T) []string {
			return []string{"core", "--config", writeCoreConfig(t, strings.Replace(coreTestConfig, "k: 465b5ce8b199b49faa5f0a2ee238a6bc", "k: 465b5ce8", 1), 0o600)}
		}, "k: want 32 hex digits"},
		{"bad listen", func(t *testing.T) []string { return []string{"core", "--listen", "localhost"} }, "--listen"},
		{"positional argument", func(t *testing.T) []string { return []string{"core", "extra"} }, "extra"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runImsue(append(tc.args(t), "--json")...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, stderr)
			}
			got := decodeOneJSON(t, stdout)
			if got["result"] != "error" || !strings.Contains(fmt.Sprint(got["error"]), tc.want) {
				t.Errorf("JSON %v does not name %q", got, tc.want)
			}
			if strings.Contains(stdout+stderr, "465b5ce8") {
				t.Errorf("output quotes the key:\n%s\n%s", stdout, stderr)
			}
		})
	}
}

// TestCoreBinary runs the built `imsue core`: it prints its address, answers
// a REGISTER with a 401, warns about a readable key file, and stops cleanly
// on SIGINT and SIGTERM.
func TestCoreBinary(t *testing.T) {
	bin := testenv.BuildBinary(t, ".")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cfg := writeCoreConfig(t, coreTestConfig, 0o644)
			cmd := exec.Command(bin, "core", "--json", "--config", cfg)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatalf("no listening line: %v; stderr %s", err, stderr.String())
			}
			got := decodeOneJSON(t, line)
			addr, err := netip.ParseAddrPort(fmt.Sprint(got["addr"]))
			if err != nil || got["result"] != "listening" || got["port_ps"] == nil {
				t.Fatalf("listening line %v", got)
			}
			if resp := coreRegister(t, addr); resp.StatusCode != 401 || len(resp.GetHeaders("Security-Server")) != 1 {
				t.Errorf("REGISTER answered %s", resp.StartLine())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, _ = io.Copy(io.Discard, stdout); done <- cmd.Wait() }()
			select {
			case err := <-done:
				var ee *exec.ExitError
				if errors.As(err, &ee) || err != nil {
					t.Errorf("exit after %v: %v; stderr %s", sig, err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("still running 10 s after %v", sig)
			}
			if !strings.Contains(stderr.String(), "readable by others") {
				t.Errorf("no warning about the 0644 key file; stderr %s", stderr.String())
			}
			if strings.Contains(stderr.String(), "465b5ce8") {
				t.Errorf("stderr quotes the key")
			}
		})
	}
}

// coreRegister sends an initial REGISTER over UDP and returns the answer.
func coreRegister(t *testing.T, core netip.AddrPort) *sip.Response {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	const impu = "sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
	msg := "REGISTER sip:ims.mnc001.mcc001.3gppnetwork.org SIP/2.0\r\n" +
		fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKcoretest;rport\r\n", port) +
		"Max-Forwards: 70\r\nFrom: <" + impu + ">;tag=1\r\nTo: <" + impu + ">\r\nCall-ID: core-test\r\nCSeq: 1 REGISTER\r\n" +
		fmt.Sprintf("Contact: <sip:001010123456789@127.0.0.1:%d>\r\n", port) +
		"Expires: 600000\r\nRequire: sec-agree\r\nProxy-Require: sec-agree\r\nSupported: path, sec-agree\r\n" +
		fmt.Sprintf("Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;spi-c=11111;spi-s=22222;port-c=%d;port-s=%d\r\n", port+1, port) +
		`Authorization: Digest username="001010123456789@ims.mnc001.mcc001.3gppnetwork.org", realm="ims.mnc001.mcc001.3gppnetwork.org", uri="sip:ims.mnc001.mcc001.3gppnetwork.org", nonce="", response=""` + "\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := conn.WriteToUDPAddrPort([]byte(msg), core); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, _, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no answer to REGISTER: %v", err)
	}
	m, err := sip.ParseMessage(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	resp, ok := m.(*sip.Response)
	if !ok {
		t.Fatalf("got a request: %s", m)
	}
	return resp
}
