package esp_test

// The pieces of the guest tests: the lab core as a helper process in
// namespace pcscf, `imsue register` in namespace ue with its trace read
// live, XFRM lookups by selector, and the foreign SA that must survive.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/ipsec/kernel"
	"github.com/imsue/imsue/test/uml/netlab"
)

// waitTimeout bounds every wait for the guest: generous, since the guest
// shares two loaded cores; a healthy case takes well under a second.
const waitTimeout = 30 * time.Second

// algPairs is the issue-4 matrix: both integrity algorithms × the three
// encryption algorithms of TS 33.203.
var algPairs = []struct {
	alg  ipsec.Auth
	ealg ipsec.Enc
}{
	{ipsec.AuthHMACMD596, ipsec.EncNull},
	{ipsec.AuthHMACMD596, ipsec.EncAESCBC},
	{ipsec.AuthHMACMD596, ipsec.EncDES3EDECBC},
	{ipsec.AuthHMACSHA196, ipsec.EncNull},
	{ipsec.AuthHMACSHA196, ipsec.EncAESCBC},
	{ipsec.AuthHMACSHA196, ipsec.EncDES3EDECBC},
}

// subscriber is TS 35.208 test set 1 (internal/vectors) as IMSI
// 001010123456789.
type subscriber struct {
	IMSI   string
	K, OPc string // hex
}

func loadSubscriber(t testing.TB) subscriber {
	t.Helper()
	for _, s := range vectors.Milenage() {
		if s.Name == "TS 35.208 test set 1" {
			return subscriber{IMSI: "001010123456789", K: hex.EncodeToString(s.K[:]), OPc: hex.EncodeToString(s.OPc[:])}
		}
	}
	t.Fatal("internal/vectors: no TS 35.208 test set 1")
	return subscriber{}
}

// profile writes the UE's profile (its SQN state beside it) to dir.
func (s subscriber) profile(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ue.yaml")
	body := fmt.Sprintf("imsi: %q\nmnc_length: 2\nk: %s\nopc: %s\n", s.IMSI, s.K, s.OPc)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (s subscriber) impu() string { return "sip:" + s.IMSI + "@" + imscore.DefaultDomain }

// ---- the lab core, a helper process in namespace pcscf -------------------

// coreEnv makes the test binary the lab core (TestUMLCoreHelper): "4" or
// "6" is the address family it listens on. The core runs in a process of
// its own because it opens sockets long after Start (a port_pc per SA set,
// TCP connections towards the UE) from whatever thread its goroutines run
// on: only a process born in namespace pcscf has every thread there.
const coreEnv = "IMSUE_ESP_CORE"

// coreHello is the helper's first line.
type coreHello struct {
	Addr   netip.AddrPort `json:"addr"`
	PortPS uint16         `json:"port_ps"`
	Error  string         `json:"error,omitempty"`
}

// coreReply answers one command.
type coreReply struct {
	Stats *imscore.Stats         `json:"stats,omitempty"`
	Regs  []imscore.Registration `json:"regs,omitempty"`
	Error string                 `json:"error,omitempty"`
}

// TestUMLCoreHelper is not a test: it is the lab core process of the other
// tests. It starts imscore with the kernel backend in the namespace it was
// born in, prints a coreHello, and answers commands on stdin, one JSON line
// each: "stats", "regs", "reauth IMPU", "quit".
func TestUMLCoreHelper(t *testing.T) {
	fam := os.Getenv(coreEnv)
	if fam == "" {
		t.Skip("helper process of the registration tests")
	}
	os.Exit(runCore(fam, loadSubscriber(t)))
}

func runCore(fam string, sub subscriber) int {
	out := json.NewEncoder(os.Stdout)
	fail := func(err error) int {
		out.Encode(coreHello{Error: err.Error()})
		return 3
	}
	addr := netip.AddrPortFrom(netlab.PCSCFv4, 0)
	if fam == "6" {
		addr = netip.AddrPortFrom(netlab.PCSCFv6, 0)
	}
	backend, err := kernel.New(kernel.Config{}) // this process's namespace: pcscf
	if err != nil {
		return fail(err)
	}
	defer backend.Close()
	// Every re-registration is challenged, so that it moves to a new SA set
	// (TestUMLReregister); de-registrations are verified (nc).
	fc, err := imscore.ParseConfigFile([]byte(fmt.Sprintf("listen: %q\nipsec: kernel\nchallenge_refreshes: true\nsubscribers:\n  - imsi: %q\n    k: %s\n    opc: %s\n",
		addr.String(), sub.IMSI, sub.K, sub.OPc)))
	if err != nil {
		return fail(err)
	}
	fc.IPsec = backend
	core, err := imscore.Start(context.Background(), fc.Config)
	if err != nil {
		return fail(err)
	}
	defer core.Close()
	out.Encode(coreHello{Addr: core.Addr(), PortPS: core.PortPS()})
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		var r coreReply
		switch cmd {
		case "stats":
			s := core.Stats()
			r.Stats = &s
		case "regs":
			r.Regs = core.Registrations()
		case "reauth":
			if err := core.Reauthenticate(arg); err != nil {
				r.Error = err.Error()
			}
		case "quit":
			if err := errors.Join(core.Close(), backend.Close()); err != nil {
				r.Error = err.Error()
			}
			out.Encode(r)
			return 0
		default:
			r.Error = "unknown command " + cmd
		}
		out.Encode(r)
	}
	return 0
}

// labCore is the parent's handle on a core helper.
type labCore struct {
	coreHello
	cmd *exec.Cmd
	mu  sync.Mutex
	in  io.WriteCloser
	out *json.Decoder
}

// startCore starts the lab core for the family in namespace pcscf and
// stops it (removing its SAs) when t ends.
func startCore(t testing.TB, lab *netlab.Lab, v6 bool) *labCore {
	t.Helper()
	fam := "4"
	if v6 {
		fam = "6"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUMLCoreHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), coreEnv+"="+fam)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.PCSCF.Start(cmd); err != nil {
		t.Fatal(err)
	}
	c := &labCore{cmd: cmd, in: in, out: json.NewDecoder(stdout)}
	t.Cleanup(func() {
		c.mu.Lock()
		fmt.Fprintln(c.in, "quit")
		var r coreReply
		err := c.out.Decode(&r)
		c.in.Close()
		c.mu.Unlock()
		if err == nil && r.Error != "" {
			t.Errorf("core IPv%s: quit: %s", fam, r.Error)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("core IPv%s: %v", fam, err)
			}
		case <-time.After(waitTimeout):
			cmd.Process.Kill()
			<-done
			t.Errorf("core IPv%s did not stop", fam)
		}
	})
	if err := c.out.Decode(&c.coreHello); err != nil || c.Error != "" {
		t.Fatalf("core IPv%s: %v %s", fam, err, c.Error)
	}
	return c
}

func (c *labCore) call(t testing.TB, cmd string) coreReply {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		t.Fatalf("core %s: %v", cmd, err)
	}
	var r coreReply
	if err := c.out.Decode(&r); err != nil {
		t.Fatalf("core %s: %v", cmd, err)
	}
	if r.Error != "" {
		t.Fatalf("core %s: %s", cmd, r.Error)
	}
	return r
}

func (c *labCore) stats(t testing.TB) imscore.Stats { return *c.call(t, "stats").Stats }

// registration returns the core's binding that has an SA set with SPI
// spi_ps (the P-CSCF's inbound SPI of the UE's requests), or nil.
func (c *labCore) registration(t testing.TB, spiPS uint32) *imscore.Registration {
	t.Helper()
	for _, r := range c.call(t, "regs").Regs {
		for _, s := range r.Sets {
			if s.SPIps == spiPS {
				return &r
			}
		}
	}
	return nil
}

// ---- imsue register in namespace ue --------------------------------------

// ueProc is one `imsue register` process with its trace read as it comes.
type ueProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	done   chan struct{} // closed when the stderr reader has ended

	mu     sync.Mutex
	cond   *sync.Cond
	msgs   []traceMsg
	stderr bytes.Buffer // everything, for failure messages
}

// ueOpts are the registration's parameters.
type ueOpts struct {
	transport string // udp or tcp
	alg       ipsec.Auth
	ealg      ipsec.Enc
	espKeys   string   // --esp-keys file, "" for none
	extra     []string // e.g. --until-signal, --expires N
}

// startUE starts `imsue register --ipsec kernel --json --trace` in
// namespace ue towards core. The process is killed if still running when t
// ends.
func startUE(t testing.TB, lab *netlab.Lab, core *labCore, profile string, o ueOpts) *ueProc {
	t.Helper()
	args := []string{"register", "--profile", profile, "--pcscf", core.Addr.String(), "--local-port", "0",
		"--ipsec", "kernel", "--transport", o.transport, "--json", "--trace", "--dereg-timeout", "5s",
		// Without +sip.instance the protected REGISTER stays under 1300
		// bytes, so the transport asked for is the one used (RFC 3261
		// §18.1.1 would move a larger one to TCP).
		"--no-instance"}
	if o.alg != "" {
		args = append(args, "--alg", string(o.alg), "--ealg", string(o.ealg))
	}
	if o.espKeys != "" {
		args = append(args, "--esp-keys", o.espKeys)
	}
	args = append(args, o.extra...)
	u := &ueProc{cmd: exec.Command(netlab.ImsueBin(t), args...), done: make(chan struct{})}
	u.cond = sync.NewCond(&u.mu)
	u.cmd.Stdout = &u.stdout
	stderr, err := u.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.UE.Start(u.cmd); err != nil {
		t.Fatal(err)
	}
	go u.read(stderr)
	t.Cleanup(func() {
		if u.cmd.ProcessState == nil {
			u.cmd.Process.Kill()
			u.wait()
		}
	})
	return u
}

func (u *ueProc) read(r io.Reader) {
	defer close(u.done)
	defer u.cond.Broadcast()
	p := traceParser{out: func(m traceMsg) {
		u.mu.Lock()
		u.msgs = append(u.msgs, m)
		u.mu.Unlock()
		u.cond.Broadcast()
	}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		u.mu.Lock()
		u.stderr.WriteString(line + "\n")
		u.mu.Unlock()
		p.line(line) // a malformed header line: not a message, skipped
	}
	p.flush()
}

// waitMsg waits until the trace holds a message for which match is true
// and returns the messages up to and including it.
func (u *ueProc) waitMsg(t testing.TB, what string, match func(traceMsg) bool) []traceMsg {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	timer := time.AfterFunc(waitTimeout, u.cond.Broadcast)
	defer timer.Stop()
	u.mu.Lock()
	defer u.mu.Unlock()
	for {
		for i, m := range u.msgs {
			if match(m) {
				return append([]traceMsg(nil), u.msgs[:i+1]...)
			}
		}
		select {
		case <-u.done:
			t.Fatalf("imsue ended before %s\nstderr:\n%s\nstdout:\n%s", what, u.stderr.String(), u.stdout.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v\nstderr:\n%s", what, waitTimeout, u.stderr.String())
		}
		u.cond.Wait()
	}
}

// registered waits for the 200 OK of the n-th protected REGISTER (n from
// 1) and returns that REGISTER and its 200.
func (u *ueProc) registered(t testing.TB, n int) (reg, ok traceMsg) {
	t.Helper()
	seen := 0
	var last traceMsg
	var lastOK uint32 // CSeq of the last 200 counted: a resent 200 counts once
	u.waitMsg(t, fmt.Sprintf("200 OK to protected REGISTER #%d", n), func(m traceMsg) bool {
		if m.Sent && m.Protected() {
			last = m
			return false
		}
		if cseq, method := m.CSeq(); !m.Sent && m.Status() == 200 && method == "REGISTER" && last.Text != "" {
			if lc, _ := last.CSeq(); lc == cseq && cseq != lastOK && last.Header("Expires") != "0" {
				seen++
				lastOK = cseq
				if seen == n {
					reg, ok = last, m
					return true
				}
			}
		}
		return false
	})
	return reg, ok
}

// running waits until imsue, registered, has entered its hold (it then
// subscribes to the reg event): from there a signal de-registers. The 200
// in the trace alone is not enough, since the trace shows it before the
// registration procedure has taken it (a signal then interrupts, exit 3).
func (u *ueProc) running(t testing.TB) {
	t.Helper()
	u.waitMsg(t, "the reg-event SUBSCRIBE", func(m traceMsg) bool { return m.Sent && m.Method() == "SUBSCRIBE" })
}

// messages returns a copy of the trace so far.
func (u *ueProc) messages() []traceMsg {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]traceMsg(nil), u.msgs...)
}

// wait waits for the process to end and its trace to be read.
func (u *ueProc) wait() error {
	<-u.done
	return u.cmd.Wait()
}

// stop sends sig (nil: none, the process ends by itself) and waits.
func (u *ueProc) stop(t testing.TB, sig os.Signal) error {
	t.Helper()
	if sig != nil {
		if err := u.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- u.wait() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(waitTimeout):
		u.cmd.Process.Kill()
		<-errc
		t.Fatalf("imsue did not exit after %v\nstderr:\n%s", sig, u.stderrText())
		return nil
	}
}

func (u *ueProc) stderrText() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stderr.String()
}

func (u *ueProc) result(t testing.TB) netlab.RegisterResult {
	t.Helper()
	var r netlab.RegisterResult
	if err := json.Unmarshal(u.stdout.Bytes(), &r); err != nil {
		t.Fatalf("imsue --json: %v\n%s", err, u.stdout.String())
	}
	return r
}

// ---- XFRM ---------------------------------------------------------------

// xfrmView is the imsue SA sets of one namespace.
type xfrmView struct {
	sets []kernel.Set
}

func listXfrm(t testing.TB, ns *netlab.NS) xfrmView {
	t.Helper()
	sets, err := kernel.List(context.Background(), kernel.Config{NetNS: ns.Path})
	if err != nil {
		t.Fatalf("list imsue SAs in %s: %v", ns.Name, err)
	}
	return xfrmView{sets}
}

// counts returns the number of sets, states and policies.
func (v xfrmView) counts() (sets, states, policies int) {
	for _, s := range v.sets {
		states += len(s.States)
		policies += len(s.Policies)
	}
	return len(v.sets), states, policies
}

// state returns the SA whose selector matches a message from src to dst:
// the SA the kernel must have used for it.
func (v xfrmView) state(src, dst netip.AddrPort) (kernel.State, bool) {
	for _, s := range v.sets {
		for _, st := range s.States {
			if st.Src == src.Addr() && st.Dst == dst.Addr() && st.SrcPort == src.Port() && st.DstPort == dst.Port() {
				return st, true
			}
		}
	}
	return kernel.State{}, false
}

// spis returns the SPIs of every state, per set.
func (v xfrmView) spis() [][]uint32 {
	var out [][]uint32
	for _, s := range v.sets {
		var l []uint32
		for _, st := range s.States {
			l = append(l, st.SPI)
		}
		out = append(out, l)
	}
	return out
}

// hasSPI reports whether any state has spi.
func (v xfrmView) hasSPI(spi uint32) bool {
	for _, s := range v.sets {
		for _, st := range s.States {
			if st.SPI == spi {
				return true
			}
		}
	}
	return false
}

// requireEmpty fails unless the namespace holds no imsue SA or policy.
func requireEmpty(t testing.TB, ns *netlab.NS, when string) {
	t.Helper()
	if s, st, pol := listXfrm(t, ns).counts(); s+st+pol != 0 {
		t.Fatalf("%s: %d sets, %d SAs, %d policies of imsue left in %s", when, s, st, pol, ns.Name)
	}
}

// ---- the capture ---------------------------------------------------------

// frame is a captured frame between the UE and the P-CSCF, decoded.
type frame struct {
	pkt      netlab.Packet
	ip       netlab.IPPacket
	sip      []byte // the UDP or TCP payload when not ESP
	tcpFlags byte
}

// between keeps the IP frames between ue and pcscf (both directions).
func between(pkts []netlab.Packet, ue, pcscf netip.Addr) []frame {
	var out []frame
	for _, p := range pkts {
		ip, ok := netlab.ParseFrame(p.Data)
		if !ok || !((ip.Src == ue && ip.Dst == pcscf) || (ip.Src == pcscf && ip.Dst == ue)) {
			continue
		}
		f := frame{pkt: p, ip: ip}
		switch ip.Proto {
		case unix.IPPROTO_UDP:
			if len(ip.Payload) >= 8 {
				f.sip = ip.Payload[8:]
			}
		case unix.IPPROTO_TCP:
			if len(ip.Payload) >= 20 {
				off := int(ip.Payload[12]>>4) * 4
				f.tcpFlags = ip.Payload[13]
				if off >= 20 && off <= len(ip.Payload) {
					f.sip = ip.Payload[off:]
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// saveCapture writes the frames as pcap.
func saveCapture(t testing.TB, path string, frames []frame) {
	t.Helper()
	pkts := make([]netlab.Packet, len(frames))
	for i, f := range frames {
		pkts[i] = f.pkt
	}
	if err := netlab.WritePCAPFile(path, pkts); err != nil {
		t.Fatal(err)
	}
}

func hexdump(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return hex.EncodeToString(b)
}

// signalName is a signal's name for subtest names.
func signalName(sig os.Signal) string {
	switch sig {
	case nil:
		return "exit"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return sig.String()
}
