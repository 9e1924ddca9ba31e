//go:build linux

package kamailio

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
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/test/uml/netlab"
)

// The lab subscriber: imscore's default (TS 35.208 test set 1 keys), which
// the UE's profile repeats.
const (
	labIMSI = "001010123456789"
	labK    = "465b5ce8b199b49faa5f0a2ee238a6bc"
	labOPc  = "cd63cb71954a9f4e48a5994e37a02baf"
)

// kamailioPort is the P-CSCF's unprotected port: Kamailio listens on it and
// the UE's initial REGISTER must come from the same port number (see
// pcscf.cfg.in). It exists only inside the lab's namespaces.
const kamailioPort = 5060

// deregTimeout bounds imsue's wait for the answer to its de-REGISTER, which
// Kamailio 5.6 sends in clear after deleting its SAs (never seen by the UE).
const deregTimeout = 1500 * time.Millisecond

// interop is the running lab: Kamailio in "pcscf", the S-CSCF behind it.
type interop struct {
	lab     *netlab.Lab
	bin     string // imsue
	out     string // artifacts, "" outside test/uml/run
	profile string
	ueH     *netlink.Handle
	pcscfH  *netlink.Handle
	nextIP  byte
}

func TestKamailioInterop(t *testing.T) {
	lab := netlab.New(t)
	kam, err := exec.LookPath("kamailio")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kamailio not installed (Debian packages kamailio, kamailio-ims-modules): %v", err)
		}
		t.Skipf("kamailio not installed (Debian packages kamailio, kamailio-ims-modules): %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(kam), "..", "lib", "x86_64-linux-gnu", "kamailio", "modules", "ims_ipsec_pcscf.so")); err != nil {
		t.Logf("ims_ipsec_pcscf.so not found beside %s (%v): relying on the config's mpath", kam, err)
	}
	env := &interop{lab: lab, bin: os.Getenv(netlab.EnvBin), out: os.Getenv(netlab.EnvOut), nextIP: 20}
	if env.bin == "" {
		t.Fatalf("%s is not set: run through test/uml/run", netlab.EnvBin)
	}
	env.ueH, env.pcscfH = nsHandle(t, lab.UE), nsHandle(t, lab.PCSCF)

	// The first SA of each algorithm pair costs the guest seconds (the
	// kernel instantiates the transforms): pay it while Kamailio starts.
	warmed := make(chan error, 1)
	go func() { warmed <- warmCrypto(env.ueH) }()

	scscf := startSCSCF(t, lab)
	stop := env.startKamailio(t, scscf)
	t.Cleanup(stop)
	t0 := time.Now()
	if err := <-warmed; err != nil {
		t.Fatalf("warming the kernel's ESP transforms: %v", err)
	}
	if d := time.Since(t0); d > 100*time.Millisecond {
		t.Logf("crypto warm-up outlasted Kamailio's start by %v", d.Round(time.Millisecond))
	}
	env.profile = writeProfile(t)

	for _, transport := range []string{"udp", "tcp"} {
		for _, alg := range []ipsec.Auth{ipsec.AuthHMACSHA196, ipsec.AuthHMACMD596} {
			for _, ealg := range []ipsec.Enc{ipsec.EncNull, ipsec.EncAESCBC} {
				c := ueCase{transport: transport, alg: alg, ealg: ealg}
				t.Run(c.String(), func(t *testing.T) { env.register(t, c) })
			}
		}
	}
	for _, transport := range []string{"udp", "tcp"} {
		c := ueCase{transport: transport, alg: ipsec.AuthHMACSHA196, ealg: ipsec.EncAESCBC, reregister: true}
		t.Run(c.String(), func(t *testing.T) { env.register(t, c) })
	}
}

// ueCase is one registration of the matrix.
type ueCase struct {
	transport  string
	alg        ipsec.Auth
	ealg       ipsec.Enc
	reregister bool // stay registered through one re-registration
}

func (c ueCase) String() string {
	s := fmt.Sprintf("%s/%s/%s", c.transport, c.alg, c.ealg)
	if c.reregister {
		s = "reregister/" + s
	}
	return s
}

// register runs imsue for one case and checks everything the acceptance
// criteria of the interop issue name.
func (env *interop) register(t *testing.T, c ueCase) {
	ip := env.newUEAddr(t)
	mismatch0 := xfrmStat(t, env.lab.UE)["XfrmInTmplMismatch"]
	args := []string{"register", "--profile", env.profile,
		"--pcscf", netip.AddrPortFrom(netlab.PCSCFv4, kamailioPort).String(),
		"--local-ip", ip.String(), "--transport", c.transport,
		"--alg", string(c.alg), "--ealg", string(c.ealg),
		"--ipsec", "kernel", "--json", "--trace", "--until-signal",
		"--dereg-timeout", deregTimeout.String(),
		// Without +sip.instance the REGISTERs stay under 1300 bytes, so the
		// transport of the case is the one used (RFC 3261 §18.1.1).
		// The test P-CSCF answers SUBSCRIBE with a 501 from port_ps in
		// clear, which the UE rightly refuses; the SUBSCRIBE then gives up
		// at the next refresh (the test waits for it as the sign that the
		// UE took the 200).
		"--no-instance"}
	if c.reregister {
		// The lab S-CSCF grants what is asked; imsue refreshes at half of it.
		args = append(args, "--expires", "6", "--min-refresh", "1s")
	}
	ue := env.startUE(t, c, args)
	defer ue.kill()

	// Registered: imsue subscribes to its reg event right after the 200.
	first, err := ue.trace.WaitFor(20*time.Second, "200 OK to the REGISTER", isRegister200)
	if err != nil {
		ue.fail(t, err)
	}
	if _, err := ue.trace.WaitFor(5*time.Second, "SUBSCRIBE after the registration", isSent("SUBSCRIBE")); err != nil {
		ue.fail(t, err)
	}
	checkSecurityServer(t, ue.trace, c)
	snap := env.snapshot(t, ip)
	if c.reregister {
		t.Logf("first registration:\n%s", traceSummary(ue.trace))
	}
	checkAgree(t, snap, false)
	checkMoved(t, snap, ue.trace, first)

	var resnap *saSnapshot
	if c.reregister {
		second, err := ue.trace.WaitFor(15*time.Second, "200 OK to the re-REGISTER", func(m *traceMsg) bool {
			return isRegister200(m) && m != first
		})
		if err != nil {
			ue.fail(t, err)
		}
		// The UE drops the old set as soon as the new one carried the 200.
		resnap = env.waitSnapshot(t, ip, 5*time.Second, func(s *saSnapshot) bool {
			return len(s.ue) == 4 && !s.sharesSPI(snap)
		})
		// Kamailio 5.6 keeps the old set until the contact goes.
		checkAgree(t, resnap, true)
		checkMoved(t, resnap, ue.trace, second)
		logSnapshot(t, "after re-registration", resnap, snap)
	}

	res := ue.stop(t)
	if res.Result != "registered" || res.Security == nil {
		t.Fatalf("imsue: result %q security %v error %q", res.Result, res.Security, res.Error)
	}
	final := snap
	if resnap != nil {
		final = resnap
	}
	checkResult(t, final, res, c)

	// De-registration: imsue waited at most --dereg-timeout, removed its SAs
	// and says whether the 200 came.
	if res.Deregistration == nil {
		t.Fatal("imsue reported no de-registration")
	}
	if res.Deregistration.Confirmed {
		path := "not in the trace"
		for _, m := range ue.trace.Messages() {
			if !m.Sent && m.Status() == 200 && m.Method() == "REGISTER" {
				path = fmt.Sprintf("%s %s → %s", m.Network, m.Remote, m.Local) // the last one
			}
		}
		t.Logf("de-registration confirmed: Kamailio's 200 came %s", path)
	} else {
		grew := xfrmStat(t, env.lab.UE)["XfrmInTmplMismatch"] - mismatch0
		t.Logf("de-registration not confirmed (%s); cleartext packets the UE's policies dropped: %d", res.Deregistration.Reason, grew)
		// Kamailio 5.6 answers the de-REGISTER in clear: over TCP on a
		// connection the UE's policies cover (the kernel drops it), over
		// UDP from port_ps to port_us, a flow no SA covers, so it reaches
		// the UE, which refuses it: a response to a request sent over the
		// SAs counts only when it came back over them (TS 33.203 §7.1).
		clear := cleartextDeregAnswer(ue.trace, res)
		if clear != nil {
			t.Logf("Kamailio's 200 to the de-REGISTER came in clear, %s → %s, outside the SAs: imsue refused it", clear.Remote, clear.Local)
		}
		if grew == 0 && clear == nil {
			t.Errorf("the de-REGISTER went unanswered, but no cleartext answer was dropped or refused\n%s", traceSummary(ue.trace))
		}
	}
	if d := res.TimingsMS["deregister"]; d > float64((deregTimeout+time.Second)/time.Millisecond) {
		t.Errorf("de-registration took %.0f ms, longer than --dereg-timeout %v allows", d, deregTimeout)
	}
	after := env.waitSnapshot(t, ip, 3*time.Second, func(s *saSnapshot) bool { return len(s.ue) == 0 && len(s.pcscf) == 0 })
	switch {
	case len(after.ue) != 0:
		t.Errorf("imsue left SAs for %s after de-registration:\n%s", ip, after)
	case len(after.pcscf) != 0 && resnap != nil && after.onlyPCSCF(snap):
		// Kamailio 5.6 forgets the set a re-registration replaced: its
		// de-registration deletes the current set only. Nothing the UE
		// can change; the README's Interop table lists it.
		t.Logf("Kamailio kept the %d SAs of the set the re-registration replaced (SPIs %v); they stay until it restarts", len(after.pcscf), spis(after.pcscf))
	case len(after.pcscf) != 0:
		t.Errorf("Kamailio kept SAs for %s after de-registration:\n%s", ip, after)
	}
	if sets := env.saList(t); len(sets) != 0 {
		t.Errorf("imsue sa list after exit: %d sets", len(sets))
	}
	t.Logf("registered in %.1f ms (401 after %.1f ms, SA install %.1f ms, protected REGISTER→200 %.1f ms), de-registration %.1f ms",
		res.TimingsMS["register"], res.TimingsMS["challenge"], res.TimingsMS["sa_install"], res.TimingsMS["protected_register"], res.TimingsMS["deregister"])
}

func isRegister200(m *traceMsg) bool {
	return !m.Sent && m.Status() == 200 && m.Method() == "REGISTER" && m.Expires() != 0
}

func isSent(method string) func(*traceMsg) bool {
	return func(m *traceMsg) bool { return m.Sent && m.Method() == method && m.Status() == 0 }
}

// checkSecurityServer: Kamailio 5.6 answers with exactly one mechanism, the
// alg and ealg the UE offered, and no q (RFC 3329 makes q optional).
func checkSecurityServer(t *testing.T, tl *traceLog, c ueCase) {
	t.Helper()
	for _, m := range tl.Messages() {
		if m.Sent || m.Status() != 401 {
			continue
		}
		ss := m.Headers("Security-Server")
		if len(ss) != 1 {
			t.Errorf("401: %d Security-Server headers, want 1: %q", len(ss), ss)
			return
		}
		if !strings.Contains(ss[0], "alg="+string(c.alg)) || !strings.Contains(ss[0], "ealg="+string(c.ealg)) {
			t.Errorf("401: Security-Server %q does not echo alg %s ealg %s", ss[0], c.alg, c.ealg)
		}
		t.Logf("Kamailio's Security-Server: %s", ss[0])
		return
	}
	t.Error("no 401 in imsue's trace")
}

// checkMoved: the protected REGISTER and its 200 went through ESP, and the
// counters of the SAs on their paths moved on both sides. The paths come
// from imsue's trace: the REGISTER from port_uc to port_ps; the 200 over
// TCP back on that connection, over UDP from Kamailio's port_pc to the UE's
// port_us (Kamailio ignores rport and the request's source port).
func checkMoved(t *testing.T, s *saSnapshot, tl *traceLog, ok200 *traceMsg) {
	t.Helper()
	var reg *traceMsg
	for _, m := range tl.Messages() {
		if m.Sent && m.Method() == "REGISTER" && m.Status() == 0 && m.Header("CSeq") == ok200.Header("CSeq") {
			reg = m
		}
	}
	if reg == nil {
		t.Errorf("no REGISTER with CSeq %q in imsue's trace", ok200.Header("CSeq"))
		return
	}
	for _, leg := range []struct {
		what     string
		from, to netip.AddrPort
	}{
		{"protected REGISTER", reg.Local, reg.Remote},
		{"200 OK", ok200.Remote, ok200.Local},
	} {
		st := s.ueSA(leg.from, leg.to)
		if st == nil {
			t.Errorf("the %s went %s → %s, outside every SA of the UE:\n%s", leg.what, leg.from, leg.to, s)
			continue
		}
		k := s.pcscfSA(st)
		if st.packets == 0 || k == nil || k.packets == 0 {
			t.Errorf("the %s's SA spi %#x (%s → %s) counts no packet on one side: UE %v, Kamailio %v", leg.what, st.spi, leg.from, leg.to, st, k)
		}
	}
	t.Logf("%s %s → %s; its 200 %s → %s", reg.Network, reg.Local, reg.Remote, ok200.Remote, ok200.Local)
}

// checkResult: the SA set imsue reports is the one both kernels hold.
func checkResult(t *testing.T, s *saSnapshot, r *netlab.RegisterResult, c ueCase) {
	t.Helper()
	sec := r.Security
	if sec.Alg != string(c.alg) || sec.EAlg != string(c.ealg) {
		t.Errorf("imsue reports %s/%s, offered %s/%s", sec.Alg, sec.EAlg, c.alg, c.ealg)
	}
	want := []struct {
		spi          uint32
		sport, dport uint16
		toUE         bool
	}{
		{sec.SPIuc, sec.PortPS, sec.PortUC, true},
		{sec.SPIus, sec.PortPC, sec.PortUS, true},
		{sec.SPIpc, sec.PortUS, sec.PortPC, false},
		{sec.SPIps, sec.PortUC, sec.PortPS, false},
	}
	for _, w := range want {
		found := false
		for _, st := range s.ue {
			if st.spi == w.spi && st.sport == w.sport && st.dport == w.dport && (st.dst != netlab.PCSCFv4) == w.toUE {
				found = true
			}
		}
		if !found {
			t.Errorf("imsue's JSON names spi %#x %d→%d, absent from the kernel:\n%s", w.spi, w.sport, w.dport, s)
		}
	}
}

// ueProc is one running `imsue register`.
type ueProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	trace  *traceLog
	done   chan error
	name   string
}

func (env *interop) startUE(t *testing.T, c ueCase, args []string) *ueProc {
	t.Helper()
	u := &ueProc{cmd: exec.Command(env.bin, args...), trace: newTraceLog(), done: make(chan error, 1), name: c.String()}
	u.cmd.Stdout = &u.stdout
	stderr, err := u.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var raw *os.File
	if env.out != "" {
		raw, _ = os.Create(filepath.Join(env.out, "imsue-"+strings.ReplaceAll(c.String(), "/", "_")+".trace"))
	}
	if err := env.lab.UE.Start(u.cmd); err != nil {
		t.Fatalf("starting imsue in namespace ue: %v", err)
	}
	traced := make(chan struct{})
	go func() {
		if raw != nil {
			u.trace.read(stderr, raw)
			raw.Close()
		} else {
			u.trace.read(stderr, nil)
		}
		close(traced)
	}()
	go func() {
		<-traced // Wait closes the pipe: read it to the end first
		u.done <- u.cmd.Wait()
	}()
	return u
}

// stop sends SIGTERM (imsue de-registers and exits 0) and returns its JSON.
func (u *ueProc) stop(t *testing.T) *netlab.RegisterResult {
	t.Helper()
	if err := u.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to imsue: %v", err)
	}
	select {
	case err := <-u.done:
		if err != nil {
			u.fail(t, fmt.Errorf("imsue exited: %w", err))
		}
	case <-time.After(deregTimeout + 10*time.Second):
		u.fail(t, errors.New("imsue still running 10 s after its de-registration timeout"))
	}
	var r netlab.RegisterResult
	if err := json.Unmarshal(u.stdout.Bytes(), &r); err != nil {
		u.fail(t, fmt.Errorf("imsue --json output: %w", err))
	}
	return &r
}

func (u *ueProc) kill() {
	if u.cmd.ProcessState == nil {
		u.cmd.Process.Kill()
	}
}

// fail ends the test with err and what imsue said.
func (u *ueProc) fail(t *testing.T, err error) {
	t.Helper()
	t.Fatalf("%s: %v\nimsue's messages:\n%simsue's other output: %q\nstdout: %s", u.name, err, traceSummary(u.trace), u.trace.Other(), u.stdout.String())
}

// cleartextDeregAnswer finds a response to the de-REGISTER (the last
// REGISTER with Expires: 0) that arrived on a flow none of the set's SAs
// covers: neither port_pc → port_us nor port_ps → port_uc.
func cleartextDeregAnswer(tl *traceLog, r *netlab.RegisterResult) *traceMsg {
	if r.Security == nil {
		return nil
	}
	var cseq string
	for _, m := range tl.Messages() {
		if m.Sent && m.Method() == "REGISTER" && m.Status() == 0 && m.Expires() == 0 {
			cseq = m.Header("CSeq")
		}
	}
	sec := r.Security
	for _, m := range tl.Messages() {
		if m.Sent || m.Status() == 0 || cseq == "" || m.Header("CSeq") != cseq {
			continue
		}
		overSA := (m.Remote.Port() == sec.PortPC && m.Local.Port() == sec.PortUS) ||
			(m.Remote.Port() == sec.PortPS && m.Local.Port() == sec.PortUC)
		if !overSA {
			return m
		}
	}
	return nil
}

// traceSummary is one line per message: transport, addresses, start line, CSeq.
func traceSummary(tl *traceLog) string {
	var b strings.Builder
	for _, m := range tl.Messages() {
		dir := "<-"
		if m.Sent {
			dir = "->"
		}
		fmt.Fprintf(&b, "  %s %s %s %s: %s (CSeq %s, Expires %d)\n", m.Network, m.Local, dir, m.Remote, m.StartLine(), m.Header("CSeq"), m.Expires())
	}
	return b.String()
}

// saList runs `imsue sa list --json` in the UE's namespace.
func (env *interop) saList(t *testing.T) []json.RawMessage {
	t.Helper()
	cmd := exec.Command(env.bin, "sa", "list", "--json")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := env.lab.UE.Run(cmd); err != nil {
		t.Fatalf("imsue sa list: %v: %s", err, out.String())
	}
	var l struct {
		Sets []json.RawMessage `json:"sets"`
	}
	if err := json.Unmarshal(out.Bytes(), &l); err != nil {
		t.Fatalf("imsue sa list --json: %v: %s", err, out.String())
	}
	return l.Sets
}

// newUEAddr adds a fresh IPv4 address to ue0 for one case: Kamailio keeps
// the pending contact of an initial REGISTER for 30 s, keyed by IP:port.
func (env *interop) newUEAddr(t *testing.T) netip.Addr {
	t.Helper()
	b := netlab.UEv4.As4()
	b[3] = env.nextIP
	env.nextIP++
	ip := netip.AddrFrom4(b)
	link, err := env.ueH.LinkByName(env.lab.UE.Link)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.ueH.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatalf("adding %s to %s: %v", ip, env.lab.UE.Link, err)
	}
	return ip
}

func nsHandle(t *testing.T, n *netlab.NS) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(n.Path)
	if err != nil {
		t.Fatalf("namespace %s: %v", n.Name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink in %s: %v", n.Name, err)
	}
	t.Cleanup(h.Close)
	return h
}

func xfrmStat(t *testing.T, n *netlab.NS) map[string]uint64 {
	t.Helper()
	m, err := n.XfrmStat()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startSCSCF starts the lab core as a bare S-CSCF/HSS on 127.0.0.1 in the
// P-CSCF's namespace: it puts ck and ik into its 401 for Kamailio.
func startSCSCF(t *testing.T, lab *netlab.Lab) *imscore.Core {
	t.Helper()
	fc := imscore.DefaultFileConfig()
	cfg := fc.Config
	cfg.Addr = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.CKIKInChallenge = true
	// Every re-registration is challenged, as ims_auth with
	// max_nonce_reuse 0: the re-registration case moves to a new SA set.
	cfg.ChallengeRefreshes = true
	var core *imscore.Core
	err := lab.PCSCF.Do(func() (err error) {
		core, err = imscore.Start(context.Background(), cfg)
		return err
	})
	if err != nil {
		t.Fatalf("lab S-CSCF: %v", err)
	}
	t.Cleanup(func() { core.Close() })
	return core
}

// startKamailio starts Kamailio through kamailio-pcscf in namespace pcscf,
// waits until it answers an OPTIONS from the UE's namespace and returns the
// function that stops it by PID.
func (env *interop) startKamailio(t *testing.T, scscf *imscore.Core) (stop func()) {
	t.Helper()
	rundir := filepath.Join(t.TempDir(), "kamailio")
	logPath := filepath.Join(rundir, "kamailio.log")
	if env.out != "" {
		logPath = filepath.Join(env.out, "kamailio.log")
	}
	if err := os.MkdirAll(rundir, 0o700); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./kamailio-pcscf", "run")
	cmd.Env = append(os.Environ(),
		"NETNS="+env.lab.PCSCF.Name,
		"PCSCF_IP="+netlab.PCSCFv4.String(),
		"SCSCF_URI=sip:"+scscf.Addr().String(),
		"RUNDIR="+rundir)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("kamailio-pcscf run: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	tail := func() string {
		b, _ := os.ReadFile(logPath)
		if i := len(b) - 3000; i > 0 {
			b = b[i:]
		}
		return string(b)
	}
	if err := env.waitReady(exited, 30*time.Second); err != nil {
		cmd.Process.Kill()
		t.Fatalf("Kamailio: %v\n%s", err, tail())
	}
	t.Logf("Kamailio (PID %d) answered OPTIONS %v after launch", cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	return func() {
		// Stop by PID: the script exec'd Kamailio, so this is its main
		// process, which stops its children and removes its SAs.
		t0 := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			t.Logf("Kamailio stopped in %v (%v)", time.Since(t0).Round(time.Millisecond), err)
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("Kamailio still running 10 s after SIGTERM: killed\n%s", tail())
		}
		if sas, err := env.pcscfH.XfrmStateList(netlink.FAMILY_ALL); err == nil && len(sas) != 0 {
			t.Errorf("Kamailio left %d SAs in namespace pcscf", len(sas))
		}
	}
}

// waitReady sends OPTIONS from the UE's namespace to Kamailio's
// unprotected UDP port until any response comes back.
func (env *interop) waitReady(exited <-chan error, timeout time.Duration) error {
	conn, err := env.lab.UE.ListenUDP(netip.AddrPortFrom(netlab.UEv4, 0))
	if err != nil {
		return err
	}
	defer conn.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netlab.PCSCFv4, kamailioPort))
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(timeout)
	for i := 0; time.Now().Before(deadline); i++ {
		select {
		case err := <-exited:
			return fmt.Errorf("exited during start-up: %v", err)
		default:
		}
		branch := fmt.Sprintf("z9hG4bK-ready-%d", i)
		req := "OPTIONS sip:" + netlab.PCSCFv4.String() + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local.String() + ";branch=" + branch + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:probe@" + netlab.UEv4.String() + ">;tag=" + branch + "\r\n" +
			"To: <sip:" + netlab.PCSCFv4.String() + ">\r\nCall-ID: " + branch + "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		if _, err := conn.WriteToUDP([]byte(req), dst); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 ")) {
			return nil
		}
	}
	return fmt.Errorf("no answer to OPTIONS within %v", timeout)
}

// writeProfile writes the UE's profile (mode 0600: it holds K and OPc).
func writeProfile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "ue.yaml")
	y := "imsi: \"" + labIMSI + "\"\nmnc_length: 2\nk: " + labK + "\nopc: " + labOPc + "\nsqn_state: ue.sqn\n"
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// warmCrypto adds and deletes one SA per algorithm pair the matrix uses,
// so that the kernel has instantiated every transform before Kamailio's
// first ipsec_create (which otherwise delays the first 401 by seconds).
func warmCrypto(h *netlink.Handle) error {
	auths := []*netlink.XfrmStateAlgo{
		{Name: "hmac(sha1)", Key: make([]byte, 20), TruncateLen: 96},
		{Name: "hmac(md5)", Key: make([]byte, 16), TruncateLen: 96},
	}
	encs := []*netlink.XfrmStateAlgo{
		{Name: "ecb(cipher_null)", Key: []byte{}},
		{Name: "cbc(aes)", Key: make([]byte, 16)},
	}
	spi := 0x100
	for _, a := range auths {
		for _, e := range encs {
			st := &netlink.XfrmState{
				Src: netlab.UEv4.AsSlice(), Dst: netlab.PCSCFv4.AsSlice(),
				Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT,
				Spi: spi, Auth: a, Crypt: e,
			}
			spi++
			if err := h.XfrmStateAdd(st); err != nil {
				return fmt.Errorf("%s/%s: %w", a.Name, e.Name, err)
			}
			if err := h.XfrmStateDel(st); err != nil {
				return fmt.Errorf("%s/%s: delete: %w", a.Name, e.Name, err)
			}
		}
	}
	return nil
}

// xstate is one XFRM state, keys included, as the tests compare them.
type xstate struct {
	src, dst        netip.Addr
	sport, dport    uint16
	spi             uint32
	auth, crypt     string
	authKey, encKey []byte
	mode            netlink.Mode
	replay          int
	packets, bytes  uint64
}

func (s xstate) String() string {
	return fmt.Sprintf("%s:%d→%s:%d spi %#x %s/%s %s replay %d, %d packets",
		s.src, s.sport, s.dst, s.dport, s.spi, s.auth, s.crypt, s.mode, s.replay, s.packets)
}

// saSnapshot is both namespaces' SAs for one UE address.
type saSnapshot struct {
	ue, pcscf []xstate
}

func (s *saSnapshot) String() string {
	var b strings.Builder
	for _, side := range []struct {
		name string
		sas  []xstate
	}{{"ue", s.ue}, {"pcscf", s.pcscf}} {
		for _, st := range side.sas {
			fmt.Fprintf(&b, "  %-5s %s\n", side.name, st)
		}
	}
	return b.String()
}

// ueSA is the UE's state whose selector covers from → to.
func (s *saSnapshot) ueSA(from, to netip.AddrPort) *xstate {
	for i := range s.ue {
		st := &s.ue[i]
		if st.src == from.Addr() && st.dst == to.Addr() && st.sport == from.Port() && st.dport == to.Port() {
			return st
		}
	}
	return nil
}

// pcscfSA is Kamailio's state with the SPI and addresses of the UE's st.
func (s *saSnapshot) pcscfSA(st *xstate) *xstate {
	for i := range s.pcscf {
		k := &s.pcscf[i]
		if k.spi == st.spi && k.src == st.src && k.dst == st.dst {
			return k
		}
	}
	return nil
}

// onlyPCSCF reports whether every Kamailio SA of s was in old's.
func (s *saSnapshot) onlyPCSCF(old *saSnapshot) bool {
	for i := range s.pcscf {
		st := &s.pcscf[i]
		found := false
		for _, o := range old.pcscf {
			found = found || (o.spi == st.spi && o.src == st.src && o.dst == st.dst)
		}
		if !found {
			return false
		}
	}
	return true
}

// sharesSPI reports whether any UE SA of s has an SPI of old's.
func (s *saSnapshot) sharesSPI(old *saSnapshot) bool {
	for _, a := range s.ue {
		for _, b := range old.ue {
			if a.spi == b.spi && a.dst == b.dst {
				return true
			}
		}
	}
	return false
}

func (env *interop) snapshot(t *testing.T, ip netip.Addr) *saSnapshot {
	t.Helper()
	ue, err := states(env.ueH, ip)
	if err != nil {
		t.Fatalf("UE's SAs: %v", err)
	}
	k, err := states(env.pcscfH, ip)
	if err != nil {
		t.Fatalf("Kamailio's SAs: %v", err)
	}
	return &saSnapshot{ue: ue, pcscf: k}
}

// waitSnapshot polls until ok accepts a snapshot, or returns the last one.
func (env *interop) waitSnapshot(t *testing.T, ip netip.Addr, timeout time.Duration, ok func(*saSnapshot) bool) *saSnapshot {
	t.Helper()
	var s *saSnapshot
	testenv.Poll(timeout, func() bool {
		s = env.snapshot(t, ip)
		return ok(s)
	})
	return s
}

// states lists the ESP states to or from ip.
func states(h *netlink.Handle, ip netip.Addr) ([]xstate, error) {
	list, err := h.XfrmStateList(netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	var out []xstate
	for _, st := range list {
		src, _ := netip.AddrFromSlice(st.Src)
		dst, _ := netip.AddrFromSlice(st.Dst)
		src, dst = src.Unmap(), dst.Unmap()
		if st.Proto != netlink.XFRM_PROTO_ESP || (src != ip && dst != ip) {
			continue
		}
		x := xstate{src: src, dst: dst, spi: uint32(st.Spi), mode: st.Mode, replay: st.ReplayWindow,
			packets: st.Statistics.Packets, bytes: st.Statistics.Bytes}
		if st.Selector != nil {
			x.sport, x.dport = uint16(st.Selector.SrcPort), uint16(st.Selector.DstPort)
		}
		if st.Auth != nil {
			x.auth, x.authKey = st.Auth.Name, st.Auth.Key
		}
		if st.Crypt != nil {
			x.crypt, x.encKey = st.Crypt.Name, st.Crypt.Key
		}
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b xstate) int { return int(a.spi) - int(b.spi) })
	return out, nil
}

// checkAgree: Kamailio and imsue hold the same four SAs: SPIs, addresses,
// selector ports, mode, algorithms, and keys (integrity keys up to the
// zero padding HMAC applies anyway; cipher keys exactly).
//
// With extra, Kamailio may hold SAs besides the UE's four (an old set).
func checkAgree(t *testing.T, s *saSnapshot, extra bool) {
	t.Helper()
	if len(s.ue) != 4 || len(s.pcscf) < 4 || (!extra && len(s.pcscf) != 4) {
		t.Fatalf("SAs: UE %d, Kamailio %d; want 4 each\n%s", len(s.ue), len(s.pcscf), s)
	}
	for i := range s.ue {
		u := &s.ue[i]
		k := s.pcscfSA(u)
		switch {
		case k == nil:
			t.Errorf("Kamailio has no SA for the UE's %s", u)
		case k.sport != u.sport || k.dport != u.dport:
			t.Errorf("spi %#x: selector ports UE %d→%d, Kamailio %d→%d", u.spi, u.sport, u.dport, k.sport, k.dport)
		case k.mode != u.mode || u.mode != netlink.XFRM_MODE_TRANSPORT:
			t.Errorf("spi %#x: mode UE %v, Kamailio %v", u.spi, u.mode, k.mode)
		case k.auth != u.auth || k.crypt != u.crypt:
			t.Errorf("spi %#x: algorithms UE %s/%s, Kamailio %s/%s", u.spi, u.auth, u.crypt, k.auth, k.crypt)
		case !sameKey(k.authKey, u.authKey):
			t.Errorf("spi %#x: integrity keys differ (UE %d bytes, Kamailio %d bytes)", u.spi, len(u.authKey), len(k.authKey))
		case !bytes.Equal(k.encKey, u.encKey):
			t.Errorf("spi %#x: cipher keys differ (UE %d bytes, Kamailio %d bytes)", u.spi, len(u.encKey), len(k.encKey))
		}
		if k != nil && len(k.authKey) != len(u.authKey) {
			t.Logf("spi %#x: integrity key %d bytes at the UE, %d at Kamailio (equal up to zero padding)", u.spi, len(u.authKey), len(k.authKey))
		}
	}
}

func logSnapshot(t *testing.T, what string, s, old *saSnapshot) {
	t.Helper()
	t.Logf("%s: old UE SPIs %v → new %v; Kamailio holds %d SAs for this UE\n%s", what, spis(old.ue), spis(s.ue), len(s.pcscf), s)
}

func spis(sas []xstate) []string {
	var out []string
	for _, s := range sas {
		out = append(out, fmt.Sprintf("%#x", s.spi))
	}
	return out
}
