package esp_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/ipsec/kernel"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/test/uml/netlab"
)

// expectation is what a matrix case leaves beside its capture and esp_sa
// file for TestUMLHostTshark.
type expectation struct {
	Case      string `json:"case"`
	Transport string `json:"transport"` // "udp" or "tcp": what the protected REGISTER used
	EAlg      string `json:"ealg"`
	UE        string `json:"ue"`
	PCSCF     string `json:"pcscf"`
	CallID    string `json:"call_id"`
	CSeq      uint32 `json:"cseq"`         // of the protected REGISTER and its 200
	SPIReg    uint32 `json:"spi_register"` // the SA that carried the REGISTER (spi_ps)
	SPIOK     uint32 `json:"spi_ok"`       // the SA that carried the 200 (spi_us over UDP, spi_uc over TCP)
}

// artifactDir is where a case leaves files for the host-side check, or a
// temporary directory when the harness asked for none.
func artifactDir(t *testing.T, name string) string {
	t.Helper()
	root := os.Getenv(netlab.EnvOut)
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, "register", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestUMLRegisterESP is issue 4's matrix: for each alg × ealg pair, over
// UDP and TCP, in IPv4 and IPv6, the real `imsue register --ipsec kernel`
// in namespace ue registers with the lab core in namespace pcscf (one core
// per family, shared by the family's cases). While the UE is registered, the
// SAs whose selectors match the protected REGISTER and its 200 OK (from the
// UE's trace) have counted at least those messages on both sides, with the
// negotiated algorithms; the core saw the registration over the expected
// transport. After SIGTERM (de-registration), the UE's outgoing frames after
// the 401 are all ESP and none is cleartext SIP, no imsue SA is left on
// either side, and the foreign SA survives. Each case leaves its capture and
// --esp-keys file for TestUMLHostTshark.
//
// A single pair is offered (--alg X --ealg Y) so that the P-CSCF chooses
// the pair under test and the UDP REGISTER stays under 1300 bytes (with the
// four default mechanisms it would move to TCP, RFC 3261 §18.1.1).
func TestUMLRegisterESP(t *testing.T) {
	lab := netlab.New(t)
	foreignOK := netlab.Foreign(t, lab.UE)
	sub := loadSubscriber(t)
	for _, v6 := range []bool{false, true} {
		fam := "ipv4"
		if v6 {
			fam = "ipv6"
		}
		core := startCore(t, lab, v6)
		// A profile per core: its SQN state matches that core's HSS, so
		// no case starts with a resynchronisation (an unprotected REGISTER
		// with auts after the 401).
		profile := sub.profile(t, t.TempDir())
		for _, p := range algPairs {
			for _, tr := range []string{"udp", "tcp"} {
				name := fmt.Sprintf("%s_%s_%s_%s", fam, tr, p.alg, p.ealg)
				t.Run(name, func(t *testing.T) {
					registerCase(t, lab, core, profile, name, v6, tr, p.alg, p.ealg)
					foreignOK("after " + name)
				})
			}
		}
	}
}

func registerCase(t *testing.T, lab *netlab.Lab, core *labCore, profile, name string, v6 bool, tr string, alg ipsec.Auth, ealg ipsec.Enc) {
	dir := artifactDir(t, name)
	ueIP, pcIP := lab.UE.Addr(v6), lab.PCSCF.Addr(v6)
	before := core.stats(t)
	capture, err := lab.UE.Capture(lab.UE.Link)
	if err != nil {
		t.Fatal(err)
	}
	captured := false
	defer func() {
		if !captured {
			capture.Stop()
		}
	}()

	u := startUE(t, lab, core, profile, ueOpts{transport: tr, alg: alg, ealg: ealg,
		espKeys: filepath.Join(dir, "esp_sa"), extra: []string{"--until-signal"}})
	reg, ok := u.registered(t, 1)
	u.running(t)
	if reg.Network != tr || ok.Network != tr {
		t.Errorf("protected REGISTER over %s and its 200 over %s, want %s", reg.Network, ok.Network, tr)
	}
	if reg.Src().Addr() != ueIP || reg.Dst().Addr() != pcIP {
		t.Fatalf("protected REGISTER %v, want %v → %v", reg, ueIP, pcIP)
	}

	// While registered: the SAs that match the REGISTER's and the 200's
	// addresses and ports counted them, on both sides.
	ueView, pcView := listXfrm(t, lab.UE), listXfrm(t, lab.PCSCF)
	if s, st, pol := ueView.counts(); s != 1 || st != 4 || pol != 4 {
		t.Fatalf("UE while registered: %d sets, %d SAs, %d policies; want 1, 4, 4", s, st, pol)
	}
	// The UE's SAs were installed with reg-await-auth and extended, by
	// XFRM_MSG_UPDSA, to the registration granted (the lab core's 3600 s)
	// + 30 s (TS 33.203 §7.4), counted from their install.
	for _, st := range ueView.sets[0].States {
		if want := imscore.DefaultMaxExpires + mt.ExpiresMargin; st.HardLifetime < want || st.HardLifetime > want+30*time.Second {
			t.Errorf("UE SA spi 0x%x: hard lifetime %v, want %v", st.SPI, st.HardLifetime, want)
		}
	}
	var spi [2]uint32
	for i, m := range []traceMsg{reg, ok} {
		for _, side := range []struct {
			name string
			v    xfrmView
		}{{"UE", ueView}, {"P-CSCF", pcView}} {
			st, found := side.v.state(m.Src(), m.Dst())
			switch {
			case !found:
				t.Fatalf("%s: no SA for %v → %v (%q); SPIs there: %x", side.name, m.Src(), m.Dst(), m.StartLine(), side.v.spis())
			case st.Packets == 0 || st.Bytes < uint64(m.Size):
				t.Errorf("%s SA spi 0x%x (%v → %v): %d packets, %d bytes; the %d-byte %q did not go through it",
					side.name, st.SPI, m.Src(), m.Dst(), st.Packets, st.Bytes, m.Size, m.StartLine())
			case st.Auth != alg || st.Enc != ealg:
				t.Errorf("%s SA spi 0x%x: %s/%s, want %s/%s", side.name, st.SPI, st.Auth, st.Enc, alg, ealg)
			}
			if spi[i] != 0 && spi[i] != st.SPI {
				t.Errorf("%v → %v: SPI 0x%x at the UE, 0x%x at the P-CSCF", m.Src(), m.Dst(), spi[i], st.SPI)
			}
			spi[i] = st.SPI
		}
	}
	r := core.registration(t, spi[0])
	if r == nil || r.State != "registered" || r.Transport != strings.ToUpper(tr) || len(r.Sets) == 0 ||
		r.Sets[0].State != "established" || r.Sets[0].Alg != alg || r.Sets[0].EAlg != ealg {
		t.Fatalf("the core's view of the registration over SA 0x%x: %+v", spi[0], r)
	}

	// De-register and exit.
	if err := u.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("imsue after SIGTERM: %v\n%s\n%s", err, u.stdout.String(), u.stderrText())
	}
	res := u.result(t)
	if res.Result != "registered" || res.Security == nil || res.Security.Alg != string(alg) || res.Security.EAlg != string(ealg) ||
		res.Security.SPIps != spi[0] || res.Deregistration == nil || !res.Deregistration.Confirmed {
		t.Errorf("imsue --json: %s", u.stdout.String())
	}
	t.Logf("registered in %.1f ms (401 after %.1f, AKA %.1f, SA install %.1f, protected REGISTER %.1f); process start to registered %.1f ms",
		res.TimingsMS["register"], res.TimingsMS["challenge"], res.TimingsMS["aka"], res.TimingsMS["sa_install"],
		res.TimingsMS["protected_register"], res.TimingsMS["process_to_registered"])

	pkts, err := capture.Stop()
	captured = true
	if err != nil {
		t.Fatal(err)
	}
	frames := between(pkts, ueIP, pcIP)
	checkCapture(t, frames, ueIP, ealg)
	saveCapture(t, filepath.Join(dir, "capture.pcap"), frames)
	cseq, _ := reg.CSeq()
	b, _ := json.Marshal(expectation{Case: name, Transport: tr, EAlg: string(ealg), UE: ueIP.String(), PCSCF: pcIP.String(),
		CallID: reg.Header("Call-ID"), CSeq: cseq, SPIReg: spi[0], SPIOK: spi[1]})
	if err := os.WriteFile(filepath.Join(dir, "expect.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}

	// Nothing of this registration is left on either side.
	requireEmpty(t, lab.UE, "after SIGTERM")
	waitGone(t, lab.PCSCF, spi[0], "the P-CSCF's SAs after the de-registration")
	after := core.stats(t)
	if after.Registered-before.Registered != 1 || after.Deregistered-before.Deregistered != 1 || after.RegistersProtected-before.RegistersProtected < 2 {
		t.Errorf("core: %d registrations, %d de-registrations, %d protected REGISTERs during the case",
			after.Registered-before.Registered, after.Deregistered-before.Deregistered, after.RegistersProtected-before.RegistersProtected)
	}
}

// checkCapture: the UE sent its initial REGISTER in clear and got the 401
// in clear; from the 401 on, every frame the UE sent is ESP (a TCP segment
// without payload, such as the FIN of the unprotected connection, is
// allowed: it carries no SIP), and so is everything the P-CSCF sent. With
// null encryption the protected REGISTER is readable inside ESP, which
// shows that the capture does see it; with a cipher it is not.
func checkCapture(t *testing.T, frames []frame, ue netip.Addr, ealg ipsec.Enc) {
	t.Helper()
	i401 := -1
	for i, f := range frames {
		if f.ip.Src != ue && f.ip.Proto != unix.IPPROTO_ESP && bytes.HasPrefix(f.sip, []byte("SIP/2.0 401 ")) {
			i401 = i
			break
		}
	}
	if i401 < 0 {
		t.Fatalf("no cleartext 401 from the P-CSCF among %d frames", len(frames))
	}
	var initialREGISTER []byte
	for _, f := range frames[:i401] {
		if f.ip.Src == ue && bytes.HasPrefix(f.sip, []byte("REGISTER ")) {
			initialREGISTER = f.sip
		}
	}
	if initialREGISTER == nil {
		t.Error("no cleartext initial REGISTER before the 401: is the capture seeing the UE's frames?")
	}
	espOut, espIn, verifyVisible := 0, 0, 0
	for i := i401 + 1; i < len(frames); i++ {
		f := frames[i]
		out := f.ip.Src == ue
		if f.ip.Proto == unix.IPPROTO_ESP {
			if out {
				espOut++
				if bytes.Contains(f.ip.Payload, []byte("Security-Verify:")) {
					verifyVisible++
				}
			} else {
				espIn++
			}
			continue
		}
		switch {
		case out && f.ip.Proto == unix.IPPROTO_UDP && bytes.Equal(f.sip, initialREGISTER):
			// A retransmission of the initial REGISTER (Timer E) that
			// crossed the 401 on the wire: sent before the UE knew of it.
			continue
		case !out && bytes.HasPrefix(f.sip, []byte("SIP/2.0 401 ")):
			// The P-CSCF resending its 401 for such a retransmission.
			continue
		}
		if (f.ip.Proto == unix.IPPROTO_UDP || f.ip.Proto == unix.IPPROTO_TCP) && len(f.sip) > 0 {
			dir := "the P-CSCF sent"
			if out {
				dir = "the UE sent"
			}
			t.Errorf("after the 401 (frame %d) %s in frame %d cleartext proto %d: %q (Security-Verify %v, same as the initial REGISTER %v)\n%s",
				i401, dir, i, f.ip.Proto, firstLine(f.sip), bytes.Contains(f.sip, []byte("Security-Verify")), bytes.Equal(f.sip, initialREGISTER), f.sip)
		}
	}
	if espOut < 2 || espIn < 2 {
		t.Errorf("after the 401: %d ESP frames from the UE, %d to it; want at least the REGISTER and de-REGISTER and their 200s", espOut, espIn)
	}
	switch {
	case ealg == ipsec.EncNull && verifyVisible == 0:
		t.Error("null encryption, yet no outgoing ESP frame shows the protected REGISTER's Security-Verify")
	case ealg != ipsec.EncNull && verifyVisible != 0:
		t.Errorf("%s: %d outgoing ESP frames show Security-Verify in clear", ealg, verifyVisible)
	}
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	if len(line) > 80 {
		line = line[:80]
	}
	return string(line)
}

// waitGone waits until no imsue SA in ns has spi (the core removes its set
// just after the 200 to the de-REGISTER leaves, so the UE may exit first).
func waitGone(t *testing.T, ns *netlab.NS, spi uint32, what string) {
	t.Helper()
	if !testenv.Poll(waitTimeout, func() bool { return !listXfrm(t, ns).hasSPI(spi) }) {
		t.Fatalf("%s: SA 0x%x still in %s after %v", what, spi, ns.Name, waitTimeout)
	}
}

// TestUMLReregister: with --expires 2 the UE re-registers after a second;
// the re-registration is challenged, so a new SA set comes. The 200 of the
// second protected REGISTER leaves from a new port_uc, its SAs (new SPIs)
// counted the REGISTER and the 200 on both sides, the UE's old set is gone
// at once, and the P-CSCF's old set goes when the new one carries a request
// (TS 33.203 §7.4).
func TestUMLReregister(t *testing.T) {
	lab := netlab.New(t)
	sub := loadSubscriber(t)
	for _, tt := range []struct {
		v6 bool
		tr string
	}{{false, "udp"}, {true, "tcp"}} {
		name := "ipv4_udp"
		if tt.v6 {
			name = "ipv6_tcp"
		}
		t.Run(name, func(t *testing.T) {
			core := startCore(t, lab, tt.v6)
			profile := sub.profile(t, t.TempDir())
			u := startUE(t, lab, core, profile, ueOpts{transport: tt.tr, alg: ipsec.AuthHMACSHA196, ealg: ipsec.EncAESCBC,
				extra: []string{"--until-signal", "--expires", "2", "--min-refresh", "500ms"}})
			reg1, _ := u.registered(t, 1)
			first := listXfrm(t, lab.UE)
			if s, st, _ := first.counts(); s != 1 || st != 4 {
				t.Fatalf("UE after the first registration: %d sets, %d SAs", s, st)
			}
			old := first.spis()[0]

			reg2, ok2 := u.registered(t, 2)
			if reg2.Local == reg1.Local {
				t.Errorf("the re-registration's protected REGISTER left from the old port_uc %v", reg1.Local)
			}
			// The UE drops its old set as soon as the 200 came over the new one.
			var ueView xfrmView
			if !testenv.Poll(waitTimeout, func() bool {
				ueView = listXfrm(t, lab.UE)
				s, _, _ := ueView.counts()
				return s == 1 && !ueView.hasSPI(old[0])
			}) {
				t.Fatalf("UE after the re-registration: SPIs %x, old set %x", ueView.spis(), old)
			}
			pcView := listXfrm(t, lab.PCSCF)
			for _, m := range []traceMsg{reg2, ok2} {
				for _, side := range []struct {
					name string
					v    xfrmView
				}{{"UE", ueView}, {"P-CSCF", pcView}} {
					st, found := side.v.state(m.Src(), m.Dst())
					if !found || st.Packets == 0 || st.Bytes < uint64(m.Size) {
						t.Errorf("%s: new SA for %v → %v (%q): found %v, %d packets, %d bytes", side.name, m.Src(), m.Dst(), m.StartLine(), found, st.Packets, st.Bytes)
					}
					for _, spi := range old {
						if st.SPI == spi {
							t.Errorf("%s: %q went over the old SA 0x%x", side.name, m.StartLine(), spi)
						}
					}
				}
			}
			for _, spi := range old {
				waitGone(t, lab.PCSCF, spi, "the P-CSCF's old set")
			}
			if err := u.stop(t, syscall.SIGTERM); err != nil {
				t.Fatalf("imsue: %v\n%s", err, u.stderrText())
			}
			if res := u.result(t); res.Result != "registered" || res.Deregistration == nil || !res.Deregistration.Confirmed {
				t.Errorf("imsue --json: %s\n%s", u.stdout.String(), u.stderrText())
			}
			requireEmpty(t, lab.UE, "after SIGTERM")
		})
	}
}

// TestUMLCleanup: zero imsue SAs and policies in the UE's namespace after a
// normal exit, SIGINT and SIGTERM; after SIGKILL the set stays (owner
// dead) until `imsue sa flush`, or separately until the next `imsue
// register` starts; the foreign SA and policy survive all of it. Between
// the two SIGKILL cases: once the UE's SAs are gone, the P-CSCF (whose SAs
// for the killed UE remain) accepts no cleartext request, neither on
// port_ps from port_uc (its inbound policy drops it) nor on the
// unprotected port (only REGISTER is admitted there).
func TestUMLCleanup(t *testing.T) {
	lab := netlab.New(t)
	foreignOK := netlab.Foreign(t, lab.UE)
	profile := loadSubscriber(t).profile(t, t.TempDir())
	core := startCore(t, lab, false)
	opts := func(extra ...string) ueOpts {
		return ueOpts{transport: "udp", alg: ipsec.AuthHMACSHA196, ealg: ipsec.EncAESCBC, extra: extra}
	}
	for _, sig := range []os.Signal{nil, syscall.SIGINT, syscall.SIGTERM} {
		t.Run(signalName(sig), func(t *testing.T) {
			var u *ueProc
			if sig == nil {
				u = startUE(t, lab, core, profile, opts())
			} else {
				u = startUE(t, lab, core, profile, opts("--until-signal"))
				u.registered(t, 1)
				u.running(t)
				if s, st, pol := listXfrm(t, lab.UE).counts(); s != 1 || st != 4 || pol != 4 {
					t.Fatalf("while registered: %d sets, %d SAs, %d policies", s, st, pol)
				}
			}
			if err := u.stop(t, sig); err != nil {
				t.Fatalf("imsue: %v\n%s", err, u.stderrText())
			}

			if res := u.result(t); res.Result != "registered" || res.Deregistration == nil || !res.Deregistration.Confirmed {
				t.Errorf("imsue --json: %s", u.stdout.String())
			}
			requireEmpty(t, lab.UE, "after "+signalName(sig))
			foreignOK("after " + signalName(sig))
		})
	}

	killed := func(t *testing.T) (reg traceMsg) {
		t.Helper()
		u := startUE(t, lab, core, profile, opts("--until-signal"))
		reg, _ = u.registered(t, 1)
		if err := u.stop(t, syscall.SIGKILL); err == nil {
			t.Fatal("imsue survived SIGKILL")
		}
		v := listXfrm(t, lab.UE)
		if s, st, pol := v.counts(); s != 1 || st != 4 || pol != 4 || v.sets[0].Owner == nil || v.sets[0].Owner.Alive {
			t.Fatalf("after SIGKILL: %d sets, %d SAs, %d policies, owner %+v", s, st, pol, v.sets[0].Owner)
		}
		return reg
	}

	t.Run("SIGKILL_sa_flush", func(t *testing.T) {
		reg := killed(t)
		var fl struct{ Sets, SAs, Policies int }
		if err := json.Unmarshal(netlab.RunImsue(t, lab.UE, "sa", "flush", "--json"), &fl); err != nil || fl.Sets != 1 || fl.SAs != 4 || fl.Policies != 4 {
			t.Fatalf("imsue sa flush: %+v, %v", fl, err)
		}
		requireEmpty(t, lab.UE, "after SIGKILL and imsue sa flush")
		foreignOK("after imsue sa flush")
		mustState(t, listXfrm(t, lab.PCSCF), reg) // the negative case needs the P-CSCF's SAs for the killed UE
		cleartextRejected(t, lab, core, reg)
	})

	t.Run("SIGKILL_next_start", func(t *testing.T) {
		killed(t)
		u := startUE(t, lab, core, profile, opts())
		if err := u.stop(t, nil); err != nil {
			t.Fatalf("the next imsue register: %v\n%s", err, u.stderrText())
		}
		if res := u.result(t); res.Result != "registered" {
			t.Errorf("imsue --json: %s", u.stdout.String())
		}
		requireEmpty(t, lab.UE, "after SIGKILL and the next imsue register")
		foreignOK("after the next imsue register")
	})
}

func mustState(t *testing.T, v xfrmView, m traceMsg) kernel.State {
	t.Helper()
	st, ok := v.state(m.Src(), m.Dst())
	if !ok {
		t.Fatalf("no SA for %v → %v; SPIs %x", m.Src(), m.Dst(), v.spis())
	}
	return st
}

// cleartextRejected sends, from the UE's namespace without SAs, a SIP
// request in clear from the killed UE's port_uc to the P-CSCF's port_ps
// (the flow its SAs protect), then to the unprotected port; neither may be
// answered or reach the core, and the first must be dropped by the P-CSCF's
// inbound policy (XfrmInTmplMismatch).
func cleartextRejected(t *testing.T, lab *netlab.Lab, core *labCore, reg traceMsg) {
	t.Helper()
	conn, err := lab.UE.ListenUDP(reg.Local)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before, mismatch := core.stats(t), netlab.TmplMismatch(t, lab.PCSCF)
	req := func(to netip.AddrPort, method string) []byte {
		return []byte(fmt.Sprintf("%s sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-cleartext-%s\r\nMax-Forwards: 70\r\n"+
			"From: <sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org>;tag=clear\r\nTo: <sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org>\r\n"+
			"Call-ID: cleartext-%s@imsue\r\nCSeq: 1 %s\r\nContent-Length: 0\r\n\r\n", method, to, reg.Local, method, method, method))
	}
	protected := reg.Remote
	if _, err := conn.WriteToUDPAddrPort(req(protected, "OPTIONS"), protected); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout) // for both waits together
	if !testenv.Poll(waitTimeout, func() bool { return netlab.TmplMismatch(t, lab.PCSCF) > mismatch }) {
		t.Fatal("XfrmInTmplMismatch at the P-CSCF did not grow: the cleartext OPTIONS to port_ps was not dropped by its policy")
	}
	unprot := core.Addr
	if _, err := conn.WriteToUDPAddrPort(req(unprot, "SUBSCRIBE"), unprot); err != nil {
		t.Fatal(err)
	}
	if !testenv.Poll(time.Until(deadline), func() bool { return core.stats(t).Discarded > before.Discarded }) {
		t.Fatal("the core did not discard the cleartext SUBSCRIBE on its unprotected port")
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, from, err := conn.ReadFromUDPAddrPort(make([]byte, 4096)); err == nil {
		t.Errorf("the P-CSCF answered a cleartext request: %d bytes from %v", n, from)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatal(err)
	}
	after := core.stats(t)
	if after.RegistersProtected != before.RegistersProtected || after.Discarded != before.Discarded+1 {
		t.Errorf("core stats moved: protected REGISTERs %d → %d, discarded %d → %d (want +0, +1)",
			before.RegistersProtected, after.RegistersProtected, before.Discarded, after.Discarded)
	}
}

// BenchmarkUMLRegister measures a whole registration through kernel ESP:
// the real `imsue register --ipsec kernel` in namespace ue, the lab core
// with the kernel backend in namespace pcscf, over UDP with
// hmac-sha-1-96/aes-cbc (the algorithms' transforms exist after the first
// run). ns/op is the process from exec to exit, de-registration and SA
// removal included; register-ms is imsue's own timings_ms.register (initial
// REGISTER to the 200 of the protected one), sa-install-ms the UE's SA set
// install, protected-ms the protected REGISTER's round trip, and
// to-registered-ms from process start to registered.
func BenchmarkUMLRegister(b *testing.B) {
	lab := netlab.New(b)
	profile := loadSubscriber(b).profile(b, b.TempDir())
	core := startCore(b, lab, false)
	opts := ueOpts{transport: "udp", alg: ipsec.AuthHMACSHA196, ealg: ipsec.EncAESCBC}
	warm := startUE(b, lab, core, profile, opts)
	if err := warm.stop(b, nil); err != nil {
		b.Fatalf("warm-up: %v\n%s", err, warm.stderrText())
	}
	sum := map[string]float64{}
	n := 0
	for b.Loop() {
		u := startUE(b, lab, core, profile, opts)
		if err := u.stop(b, nil); err != nil {
			b.Fatalf("imsue: %v\n%s", err, u.stderrText())
		}
		res := u.result(b)
		if res.Result != "registered" {
			b.Fatalf("imsue --json: %s", u.stdout.String())
		}
		for k, v := range res.TimingsMS {
			sum[k] += v
		}
		n++
	}
	for metric, key := range map[string]string{"register-ms": "register", "sa-install-ms": "sa_install",
		"protected-ms": "protected_register", "to-registered-ms": "process_to_registered", "deregister-ms": "deregister"} {
		b.ReportMetric(sum[key]/float64(n), metric)
	}
	requireEmpty(b, lab.UE, "after the benchmark")
}
