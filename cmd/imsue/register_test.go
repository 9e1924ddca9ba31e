package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
)

// The register tests run the command against the in-process lab core on
// loopback with --ipsec none (in-process through run(), and as a built
// binary for the signal tests).

const regDomain = "ims.mnc001.mcc001.3gppnetwork.org"

var (
	regK   = [16]byte{0x46, 0x5b, 0x5c, 0xe8, 0xb1, 0x99, 0xb4, 0x9f, 0xaa, 0x5f, 0x0a, 0x2e, 0xe2, 0x38, 0xa6, 0xbc}
	regOPc = [16]byte{0xcd, 0x63, 0xcb, 0x71, 0x95, 0x4a, 0x9f, 0x4e, 0x48, 0xa5, 0x99, 0x4e, 0x37, 0xa0, 0x2b, 0xaf}
)

const regIMSI = "001010123456789"

// regCore starts a lab core with the subscriber of regProfile.
func regCore(t testing.TB, mod func(*imscore.Config)) *imscore.Core {
	t.Helper()
	cfg := imscore.Config{
		Domain: regDomain,
		Addr:   netip.MustParseAddrPort("127.0.0.1:0"),
		Subscribers: []imscore.Subscriber{{
			IMPI:  regIMSI + "@" + regDomain,
			IMPUs: []string{"sip:" + regIMSI + "@" + regDomain, "tel:+15551230001"},
			K:     regK, OPc: regOPc, SQN: 0x20, Password: "md5-secret",
		}},
	}
	if mod != nil {
		mod(&cfg)
	}
	core, err := imscore.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { core.Close() })
	return core
}

// regProfile writes a profile (identities from the IMSI, TS 35.208 set 1
// keys) with its SQN state in a temporary directory.
func regProfile(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "ue.yaml")
	body := fmt.Sprintf("imsi: %q\nmnc_length: 2\nk: %x\nopc: %x\npassword: md5-secret\n", regIMSI, regK, regOPc)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// regArgs are the arguments of a lab registration with ephemeral ports.
func regArgs(profile string, core *imscore.Core, extra ...string) []string {
	return append([]string{"register", "--profile", profile, "--pcscf", core.Addr().String(),
		"--local-port", "0", "--ipsec", "none", "--t1", "10ms", "--dereg-timeout", "500ms"}, extra...)
}

func regRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// regJSON decodes the one JSON object of stdout.
func regJSON(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON object:\n%s", stdout)
	}
	return m
}

func TestRegisterCommandJSON(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			core := regCore(t, nil)
			code, stdout, stderr := regRun(regArgs(regProfile(t), core, "--json", "--transport", transport, "--alg", "hmac-md5-96", "--ealg", "null,aes-cbc")...)
			if code != 0 {
				t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr, stdout)
			}
			m := regJSON(t, stdout)
			impu := "sip:" + regIMSI + "@" + regDomain
			if m["result"] != "registered" || m["impi"] != regIMSI+"@"+regDomain || m["impu"] != impu {
				t.Errorf("result/impi/impu: %v", m)
			}
			if fmt.Sprint(m["associated_uris"]) != "["+impu+" tel:+15551230001]" || m["expires"] != 3600.0 {
				t.Errorf("associated_uris %v expires %v", m["associated_uris"], m["expires"])
			}
			if sr, _ := m["service_route"].([]any); len(sr) != 1 {
				t.Errorf("service_route %v", m["service_route"])
			}
			sec, _ := m["security"].(map[string]any)
			// The UE preferred null over aes-cbc and the core took the first pair.
			if sec["alg"] != "hmac-md5-96" || sec["ealg"] != "null" || sec["mode"] != "trans" {
				t.Errorf("security %v", sec)
			}
			for _, k := range []string{"spi_uc", "spi_us", "spi_pc", "spi_ps", "port_uc", "port_us", "port_pc", "port_ps"} {
				if v, _ := sec[k].(float64); v == 0 {
					t.Errorf("security.%s = %v", k, sec[k])
				}
			}
			tm, _ := m["timings_ms"].(map[string]any)
			for _, k := range []string{"register", "challenge", "process_to_registered", "deregister"} {
				if _, ok := tm[k].(float64); !ok {
					t.Errorf("timings_ms.%s missing: %v", k, tm)
				}
			}
			if d, _ := m["deregistration"].(map[string]any); d["confirmed"] != true {
				t.Errorf("deregistration %v", m["deregistration"])
			}
			if s := core.Stats(); s.Registered != 1 || s.Deregistered != 1 || len(core.Registrations()) != 0 {
				t.Errorf("core stats %+v, registrations %+v", s, core.Registrations())
			}
		})
	}
}

func TestRegisterCommandText(t *testing.T) {
	core := regCore(t, nil)
	code, stdout, stderr := regRun(regArgs(regProfile(t), core, "--trace")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"registered sip:" + regIMSI, "security", "de-registered"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	// --trace: every message on stderr with a timestamp and direction.
	// (UDP, or TCP for a REGISTER over 1300 bytes: RFC 3261 §18.1.1.)
	sent := strings.Contains(stderr, " sent UDP ") || strings.Contains(stderr, " sent TCP ")
	if n := strings.Count(stderr, "--- "); n < 6 || !sent || !strings.Contains(stderr, " recv ") {
		t.Errorf("trace shows %d messages:\n%s", n, stderr)
	}
	if strings.Contains(stdout, "--- ") {
		t.Error("the trace went to stdout")
	}
}

func TestRegisterCommandExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(*imscore.Faults)
		core   func(*imscore.Config)
		extra  []string
		code   int
		result string
	}{
		{"no answer", func(f *imscore.Faults) { f.Silent(true) }, nil, nil, exitNoAnswer, "no_answer"},
		{"403", func(f *imscore.Faults) { f.Reject(403) }, nil, nil, exitRejected, "rejected"},
		{"404", func(f *imscore.Faults) { f.Reject(404) }, nil, nil, exitRejected, "rejected"},
		{"MAC failure", (*imscore.Faults).BadMAC, nil, nil, exitMAC, "mac_failure"},
		{"nothing acceptable in Security-Server", func(f *imscore.Faults) {
			f.SecurityServer("ipsec-3gpp;alg=hmac-md5-96;ealg=des-ede3-cbc;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200")
		}, nil, []string{"--alg", "hmac-sha-1-96"}, exitSecAgree, "sec_agree_failure"},
		{"no Security-Server", (*imscore.Faults).OmitSecurityServer, nil, nil, exitSecAgree, "sec_agree_failure"},
		{"AKAv2 required, AKAv1 offered", nil, nil, []string{"--akav2"}, exitSecAgree, "sec_agree_failure"},
		{"unknown --alg", nil, nil, []string{"--alg", "hmac-sha-256"}, exitUsage, "error"},
		{"bad --pcscf", nil, nil, []string{"--pcscf", "[::1"}, exitUsage, "error"},
		{"--hold with --until-signal", nil, nil, []string{"--hold", "1s", "--until-signal"}, exitUsage, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := &imscore.Faults{}
			core := regCore(t, func(c *imscore.Config) {
				c.Faults = faults
				if tt.core != nil {
					tt.core(c)
				}
			})
			if tt.fault != nil {
				tt.fault(faults)
			}
			code, stdout, stderr := regRun(append(regArgs(regProfile(t), core, "--json"), tt.extra...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstderr: %s\nstdout: %s", code, tt.code, stderr, stdout)
			}
			m := regJSON(t, stdout)
			if m["result"] != tt.result || m["exit_code"] != float64(tt.code) {
				t.Errorf("JSON %v, want result %q exit_code %d", m, tt.result, tt.code)
			}
			if m["error"] == nil || m["error"] == "" {
				t.Errorf("JSON has no error text: %v", m)
			}
		})
	}
}

// --alg and --ealg are checked pair by pair against what the MT can key
// (mt.Supported) before anything else happens: a usage error naming the pair.
func TestRegisterFlagsAlgorithms(t *testing.T) {
	for _, tt := range []struct {
		alg, ealg string
		want      string // in stderr; "" means the flags pass
	}{
		{"hmac-sha-256", "null", "--alg hmac-sha-256 with --ealg null: sec-agree: unsupported algorithm"},
		{"hmac-md5-96", "aes-cbc,aes-gcm", "--alg hmac-md5-96 with --ealg aes-gcm"},
		{"aes-gmac", "null", "unsupported algorithm"},
		{"hmac-md5-96", ",", "empty algorithm name"},
		{"HMAC-MD5-96, hmac-sha-1-96", "DES-EDE3-CBC,aes-cbc,null", ""},
	} {
		t.Run(tt.alg+"/"+tt.ealg, func(t *testing.T) {
			// No such profile: flags that pass fail on it, after the check.
			code, _, stderr := regRun("register", "--profile", filepath.Join(t.TempDir(), "none.yaml"), "--pcscf", "127.0.0.1",
				"--alg", tt.alg, "--ealg", tt.ealg)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr)
			}
			if (tt.want == "" && strings.Contains(stderr, "--alg")) || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q, want %q", stderr, tt.want)
			}
		})
	}
}

// --local-port defaults to 5060 (Kamailio's P-CSCF requires it); 0 is
// passed on as sipclient's 0, an ephemeral port.
func TestRegisterFlagsLocalPort(t *testing.T) {
	if d := newRegisterCmd(&app{}).Flags().Lookup("local-port").DefValue; d != "5060" {
		t.Errorf("--local-port defaults to %s, want 5060", d)
	}
	for _, tt := range []struct {
		flag int
		want uint16
		ok   bool
	}{{5060, 5060, true}, {0, 0, true}, {65535, 65535, true}, {-1, 0, false}, {65536, 0, false}} {
		f := &registerFlags{profile: "ue.yaml", pcscf: "127.0.0.1", localPort: tt.flag, transport: "udp", ipsec: "none",
			algs: []string{"hmac-sha-1-96"}, ealgs: []string{"null"}, expires: 60, deregTimeout: time.Second, t1: time.Second, t2: 4 * time.Second, t4: 5 * time.Second}
		cfg, err := f.config()
		switch {
		case tt.ok && (err != nil || cfg.LocalPort != tt.want):
			t.Errorf("--local-port %d: LocalPort %d, %v; want %d", tt.flag, cfg.LocalPort, err, tt.want)
		case !tt.ok && (exitCode(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "--local-port")):
			t.Errorf("--local-port %d: %v, want a usage error", tt.flag, err)
		}
	}
}

// A fixed unprotected port that another program holds is a local
// configuration error (exit 2), not the network's silence (exit 3).
func TestRegisterCommandLocalPortInUse(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			core := regCore(t, nil)
			var port int
			if transport == "udp" {
				pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				port = pc.LocalAddr().(*net.UDPAddr).Port
			} else {
				l, err := net.Listen("tcp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				port = l.Addr().(*net.TCPAddr).Port
			}
			code, stdout, stderr := regRun(append(regArgs(regProfile(t), core, "--json", "--transport", transport), "--local-port", strconv.Itoa(port))...)
			if code != exitUsage || !strings.Contains(stderr, "--local-port") {
				t.Fatalf("exit %d, want %d\nstderr: %s\nstdout: %s", code, exitUsage, stderr, stdout)
			}
		})
	}
}

func TestRegisterCommandKernelNotBuilt(t *testing.T) {
	saved := newKernelBackend
	newKernelBackend = nil
	defer func() { newKernelBackend = saved }()
	core := regCore(t, nil)
	args := regArgs(regProfile(t), core, "--json")
	args[len(args)-6] = "kernel" // --ipsec kernel
	code, stdout, stderr := regRun(args...)
	if code != exitIPsec || !strings.Contains(stderr, "not built") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if m := regJSON(t, stdout); m["exit_code"] != float64(exitIPsec) {
		t.Errorf("JSON %v", m)
	}
	if core.Stats().RegistersUnprotected != 0 {
		t.Error("a REGISTER left although the backend could not be opened")
	}
}

// recordingBackend fails nothing and remembers the sets, for --esp-keys.
type recordingBackend struct {
	ipsec.Recorder
}

func TestRegisterCommandPcapAndESPKeys(t *testing.T) {
	core := regCore(t, nil)
	dir := t.TempDir()
	pcap, keys := filepath.Join(dir, "sip.pcap"), filepath.Join(dir, "esp_sa")
	code, _, stderr := regRun(regArgs(regProfile(t), core, "--pcap", pcap, "--esp-keys", keys)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	st, err := os.Stat(keys)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("esp keys file: %v, mode %v", err, st.Mode())
	}
	b, _ := os.ReadFile(keys)
	if n := strings.Count(string(b), "\n\""); n != 4 {
		t.Errorf("esp_sa holds %d SA records, want 4:\n%s", n, b)
	}
	tshark := testenv.NeedCommand(t, "tshark")
	out, err := exec.Command(tshark, "-r", pcap, "-Y", "sip", "-T", "fields", "-e", "sip.CSeq").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	got := strings.Fields(strings.ReplaceAll(string(out), "REGISTER", ""))
	// REGISTER/401, REGISTER/200, de-REGISTER/200: CSeq 1 1 2 2 3 3.
	if strings.Join(got, " ") != "1 1 2 2 3 3" {
		t.Errorf("tshark sees CSeqs %q:\n%s", got, out)
	}
}

// waitOrKill waits for cmd, killing it if it has not exited within 20 s.
func waitOrKill(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("imsue did not exit within 20 s after the signal")
	}
	return err
}

// TestRegisterSignals runs the binary with --until-signal and stops it with
// SIGINT and SIGTERM: it must de-register, remove its SAs and exit 0.
func TestRegisterSignals(t *testing.T) {
	bin := testenv.BuildBinary(t, ".")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			core := regCore(t, nil)
			cmd := exec.Command(bin, regArgs(regProfile(t), core, "--json", "--until-signal")...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitUERegistered(t, core, cmd, &stderr)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := waitOrKill(t, cmd)
			var ee *exec.ExitError
			if errors.As(err, &ee) || err != nil {
				t.Fatalf("exit after %s: %v\nstderr: %s", sig, err, stderr.String())
			}
			m := regJSON(t, stdout.String())
			if m["result"] != "registered" {
				t.Errorf("result %v", m)
			}
			if d, _ := m["deregistration"].(map[string]any); d["confirmed"] != true {
				t.Errorf("deregistration %v", m["deregistration"])
			}
			if s := core.Stats(); s.Deregistered != 1 || len(core.Registrations()) != 0 {
				t.Errorf("core: %+v, registrations %+v", s, core.Registrations())
			}
		})
	}
}

// waitUERegistered waits until the UE, started as cmd, has processed the
// 200 of its registration: the core saw its reg-event SUBSCRIBE, which it
// sends only then. The core's own count of registrations goes up as its 200
// leaves, and a signal the UE gets before reading that 200 interrupts the
// registration (exit 3), rightly.
func waitUERegistered(t *testing.T, core *imscore.Core, cmd *exec.Cmd, stderr *bytes.Buffer) {
	t.Helper()
	testenv.Poll(10*time.Second, func() bool { return core.Stats().Subscribes != 0 })
	if core.Stats().Subscribes == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the UE never registered (no reg-event SUBSCRIBE); core %+v; stderr:\n%s", core.Stats(), stderr.String())
	}
}

// TestRegisterSignalUnansweredDeregistration: the P-CSCF does not answer
// the de-REGISTER (Kamailio 5.6): exit 0 all the same, not confirmed, within
// the bounded wait.
func TestRegisterSignalUnansweredDeregistration(t *testing.T) {
	bin := testenv.BuildBinary(t, ".")
	faults := &imscore.Faults{}
	core := regCore(t, func(c *imscore.Config) { c.Faults = faults })
	cmd := exec.Command(bin, regArgs(regProfile(t), core, "--json", "--until-signal")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUERegistered(t, core, cmd, &stderr)
	faults.Silent(true)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitOrKill(t, cmd); err != nil {
		t.Fatalf("exit: %v\nstderr: %s", err, stderr.String())
	}
	m := regJSON(t, stdout.String())
	d, _ := m["deregistration"].(map[string]any)
	if d["confirmed"] != false || !strings.Contains(fmt.Sprint(d["reason"]), "no final response") {
		t.Errorf("deregistration %v", d)
	}
}

// TestRegisterKernelWithoutESP: on a kernel without ESP (this host's),
// --ipsec kernel exits 8 with the explanation, sends no protected REGISTER
// and leaves no XFRM state or policy. It runs in a private network
// namespace (the test binary re-executes itself under unshare).
func TestRegisterKernelWithoutESP(t *testing.T) {
	if os.Getenv("IMSUE_REGISTER_TEST_NETNS") != "1" {
		testenv.NeedRoot(t) // for a private network namespace
		unshare := testenv.NeedCommand(t, "unshare")
		testenv.NeedCommand(t, "ip")
		cmd := exec.Command(unshare, "--net", os.Args[0], "-test.run=^TestRegisterKernelWithoutESP$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "IMSUE_REGISTER_TEST_NETNS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in a private netns: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "--- SKIP") {
			t.Skipf("in a private netns:\n%s", out)
		}
		if !strings.Contains(string(out), "--- PASS: TestRegisterKernelWithoutESP") {
			t.Fatalf("the test did not run in the private netns:\n%s", out)
		}
		t.Logf("in a private netns:\n%s", out)
		return
	}
	ip := func(args ...string) string {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil && args[0] != "xfrm" {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	ip("link", "set", "lo", "up")
	probe := exec.Command("ip", "xfrm", "state", "add", "src", "127.0.0.1", "dst", "127.0.0.1", "proto", "esp",
		"spi", "0x1000", "mode", "transport", "enc", "cipher_null", "", "auth-trunc", "hmac(sha1)", "0x0102030405060708090a0b0c0d0e0f1011121314", "96")
	if probe.Run() == nil {
		t.Skip("this kernel has ESP: the no-ESP path is not reachable here (the UML tests cover ESP)")
	}
	core := regCore(t, nil)
	args := regArgs(regProfile(t), core, "--json", "--state-dir", t.TempDir())
	for i := range args {
		if args[i] == "none" {
			args[i] = "kernel"
		}
	}
	code, stdout, stderr := regRun(args...)
	if code != exitIPsec {
		t.Fatalf("exit %d, want %d\nstderr: %s\nstdout: %s", code, exitIPsec, stderr, stdout)
	}
	t.Logf("stderr: %s", stderr)
	m := regJSON(t, stdout)
	if m["result"] != "ipsec_failure" || !strings.Contains(stderr, "--ipsec none") {
		t.Errorf("JSON %v\nstderr %s", m, stderr)
	}
	if s := core.Stats(); s.RegistersProtected != 0 || s.RegistersUnprotected != 1 {
		t.Errorf("core stats %+v", s)
	}
	if st, pol := ip("xfrm", "state"), ip("xfrm", "policy"); strings.TrimSpace(st+pol) != "" {
		t.Errorf("XFRM objects left:\n%s%s", st, pol)
	}
}

// registerBenchTimeout bounds one registration of BenchmarkRegisterProcess:
// generous, since one takes milliseconds.
const registerBenchTimeout = 30 * time.Second

// BenchmarkRegisterProcess measures `imsue register` as a process: from
// exec to the 200 OK of the protected REGISTER (seen by the lab core:
// ms-start-to-registered) and the command's own timings_ms
// (process_to_registered, from package initialisation). The profile's SQN
// state is a file, as in real use: each registration fsyncs it.
func BenchmarkRegisterProcess(b *testing.B) {
	bin := testenv.BuildBinary(b, ".")
	core := regCore(b, nil)
	profile := regProfile(b)
	var external, internal time.Duration
	n := 0
	for b.Loop() {
		before := core.Stats().Registered
		cmd := exec.Command(bin, regArgs(profile, core, "--json")...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		// A tight spin, not testenv.Poll: its interval would be part of
		// the measured time. Bounded, so that an imsue that never
		// registers fails the benchmark instead of hanging it.
		for deadline := start.Add(registerBenchTimeout); core.Stats().Registered == before; {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				b.Fatalf("imsue did not register within %v; core %+v\nstderr: %s\nstdout: %s",
					registerBenchTimeout, core.Stats(), stderr.String(), stdout.String())
			}
			time.Sleep(20 * time.Microsecond)
		}
		external += time.Since(start)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("imsue: %v", err)
		}
		var out struct {
			TimingsMS map[string]float64 `json:"timings_ms"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			b.Fatal(err)
		}
		internal += time.Duration(out.TimingsMS["process_to_registered"] * float64(time.Millisecond))
		n++
	}
	b.ReportMetric(float64(external.Microseconds())/1000/float64(n), "ms-start-to-registered")
	b.ReportMetric(float64(internal.Microseconds())/1000/float64(n), "ms-init-to-registered")
}

// The SIP timers default to a UE's of TS 24.229 Table 7.7.1; --t2 below
// --t1 is a usage error.
func TestRegisterFlagsTimers(t *testing.T) {
	fl := newRegisterCmd(&app{}).Flags()
	for name, want := range map[string]string{"t1": "2s", "t2": "16s", "t4": "17s"} {
		if d := fl.Lookup(name).DefValue; d != want {
			t.Errorf("--%s defaults to %s, want %s", name, d, want)
		}
	}
	f := &registerFlags{profile: "ue.yaml", pcscf: "127.0.0.1", transport: "udp", ipsec: "none",
		algs: []string{"hmac-sha-1-96"}, ealgs: []string{"null"}, expires: 60, deregTimeout: time.Second,
		t1: 2 * time.Second, t2: time.Second, t4: time.Second}
	if _, err := f.config(); exitCode(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "--t2") {
		t.Errorf("--t2 below --t1: %v, want a usage error", err)
	}
}

// --port-us and --port-uc fix the protected ports (the initial set's
// port_uc); out of range or clashing ports are exit 2.
func TestRegisterFixedPorts(t *testing.T) {
	core := regCore(t, nil)
	code, stdout, stderr := regRun(regArgs(regProfile(t), core, "--json", "--port-us", "61234", "--port-uc", "61235")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sec, _ := regJSON(t, stdout)["security"].(map[string]any)
	if sec["port_us"] != 61234.0 || sec["port_uc"] != 61235.0 {
		t.Errorf("security %v: want port_us 61234, port_uc 61235", sec)
	}
	for _, args := range [][]string{
		{"--port-us", "70000"},
		{"--port-uc", "-1"},
		{"--port-us", "61234", "--port-uc", "61234"},
		{"--local-port", "61234", "--port-us", "61234"},
	} {
		if code, _, stderr := regRun(regArgs(regProfile(t), core, args...)...); code != exitUsage || !strings.Contains(stderr, "--port-u") {
			t.Errorf("%v: exit %d, %q; want a usage error naming the flag", args, code, stderr)
		}
	}
}
