package kernel_test

// Kernel tests: real ESP between two network namespaces. They run only
// inside the User-Mode Linux guest that test/uml/run boots (see netlab);
// anywhere else they skip. The SA sets come from the MT layer (mt.PlanUE and
// mt.PlanPCSCF), as in a registration: the UE's set in namespace ue, the
// P-CSCF's mirror in namespace pcscf.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/ipsec/kernel"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/test/uml/netlab"
)

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

// params gives case n its own ports and SPIs, so that no case meets a
// TIME_WAIT socket or an SA of another.
func params(n int) (ue, pcscf mt.Params) {
	base := uint16(20000 + 10*n)
	spi := uint32(0x10000 + 0x10*n)
	return mt.Params{SPIc: spi, SPIs: spi + 1, PortC: base, PortS: base + 1},
		mt.Params{SPIc: spi + 2, SPIs: spi + 3, PortC: base + 2, PortS: base + 3}
}

// planPair plans the UE's set and the P-CSCF's mirror for case n with fresh
// random CK and IK.
func planPair(t testing.TB, n int, v6 bool, alg ipsec.Auth, ealg ipsec.Enc) (ue, pcscf *ipsec.SASet, ep mt.Endpoints, up, pp mt.Params) {
	t.Helper()
	var ck, ik [16]byte
	rand.Read(ck[:])
	rand.Read(ik[:])
	ep = mt.Endpoints{UE: netlab.UEv4, PCSCF: netlab.PCSCFv4}
	if v6 {
		ep = mt.Endpoints{UE: netlab.UEv6, PCSCF: netlab.PCSCFv6}
	}
	up, pp = params(n)
	m := mt.Mechanism{Name: mt.MechanismIPsec3GPP, Alg: alg, EAlg: ealg}
	ue, err := mt.PlanUE(ep, up, pp, m, ck, ik, mt.TemporaryLifetime)
	if err != nil {
		t.Fatal(err)
	}
	pcscf, err = mt.PlanPCSCF(ep, up, pp, m, ck, ik, mt.TemporaryLifetime)
	if err != nil {
		t.Fatal(err)
	}
	return ue, pcscf, ep, up, pp
}

// imsueObjects counts the imsue states and policies in a namespace.
func imsueObjects(t testing.TB, cfg kernel.Config) (sets []kernel.Set, states, policies int) {
	t.Helper()
	sets, err := kernel.List(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		states += len(s.States)
		policies += len(s.Policies)
	}
	return sets, states, policies
}

// endpoints are the four UDP sockets of one case, at the protected ports.
type endpoints struct {
	ueC, ueS, pC, pS *net.UDPConn
}

func openEndpoints(t *testing.T, l *netlab.Lab, ep mt.Endpoints, up, pp mt.Params) *endpoints {
	t.Helper()
	e := &endpoints{}
	for _, s := range []struct {
		ns   *netlab.NS
		addr netip.AddrPort
		c    **net.UDPConn
	}{
		{l.UE, netip.AddrPortFrom(ep.UE, up.PortC), &e.ueC},
		{l.UE, netip.AddrPortFrom(ep.UE, up.PortS), &e.ueS},
		{l.PCSCF, netip.AddrPortFrom(ep.PCSCF, pp.PortC), &e.pC},
		{l.PCSCF, netip.AddrPortFrom(ep.PCSCF, pp.PortS), &e.pS},
	} {
		c, err := s.ns.ListenUDP(s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		*s.c = c
	}
	return e
}

const ioTimeout = 20 * time.Second // generous: the guest shares 2 loaded cores

// udp sends msg from one socket to another and requires it to arrive intact
// from the sender's address.
func udp(t *testing.T, from, to *net.UDPConn, msg string) {
	t.Helper()
	dst := to.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := from.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
	buf := make([]byte, 2048)
	to.SetReadDeadline(time.Now().Add(ioTimeout))
	n, src, err := to.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("receive %q: %v", msg, err)
	}
	if string(buf[:n]) != msg || src != from.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("received %q from %v, want %q from %v", buf[:n], src, msg, from.LocalAddr())
	}
}

// tcpExchange opens a connection from client (in cns) to server (in sns),
// sends req, answers resp, and closes it.
func tcpExchange(t *testing.T, cns, sns *netlab.NS, client, server netip.AddrPort, req, resp string) {
	t.Helper()
	ln, err := sns.ListenTCP(server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		ln.SetDeadline(time.Now().Add(ioTimeout))
		c, err := ln.AcceptTCP()
		if err != nil {
			accepted <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		buf := make([]byte, len(req))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != req {
			accepted <- fmt.Errorf("server read %q: %v", buf, err)
			return
		}
		_, err = c.Write([]byte(resp))
		accepted <- err
	}()
	c, err := cns.DialTCP(client, server)
	if err != nil {
		t.Fatalf("connect %v → %v: %v", client, server, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(resp))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != resp {
		t.Fatalf("client read %q: %v", buf, err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
}

// artifact is what a case leaves for the host-side check (TestUMLHostTshark).
type artifact struct {
	Case    string   `json:"case"`
	EAlg    string   `json:"ealg"`
	Markers []string `json:"markers"` // payloads the UE sent, to be found decrypted
}

// TestUMLESPTraffic installs, for every alg × ealg pair and in IPv4 and
// IPv6, the UE's SA set in ue and the mirror in pcscf, then proves that
// UDP both ways on all four flows and a TCP connection each way go through
// ESP: every SA's counters moved on both sides; the UE's outgoing capture
// holds ESP and no cleartext UDP or TCP (nor the payload, unless ealg is
// null); after the UE's set is removed, its cleartext is dropped by the
// P-CSCF's policy (XfrmInTmplMismatch grows) and never delivered; after
// both are removed nothing of imsue is left, and a foreign SA and policy
// added with ip xfrm are still there. The captures and esp_sa files go to
// IMSUE_UML_OUT for TestUMLHostTshark.
func TestUMLESPTraffic(t *testing.T) {
	l := netlab.New(t)
	foreignOK := netlab.Foreign(t, l.UE)
	dir := t.TempDir()
	ueCfg := kernel.Config{NetNS: l.UE.Path, StateDir: filepath.Join(dir, "ue")}
	pcCfg := kernel.Config{NetNS: l.PCSCF.Path, StateDir: filepath.Join(dir, "pcscf")}
	ueB, err := kernel.New(ueCfg)
	if err != nil {
		t.Fatal(err)
	}
	pcB, err := kernel.New(pcCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := 0
	for _, v6 := range []bool{false, true} {
		for _, p := range algPairs {
			n++
			fam := "ipv4"
			if v6 {
				fam = "ipv6"
			}
			name := fmt.Sprintf("%s_%s_%s", p.alg, p.ealg, fam)
			t.Run(name, func(t *testing.T) {
				ueSet, pcSet, ep, up, pp := planPair(t, n, v6, p.alg, p.ealg)
				t0 := time.Now()
				if err := ueB.Install(ctx, ueSet); err != nil {
					t.Fatalf("install UE set: %v", err)
				}
				t1 := time.Now()
				if err := pcB.Install(ctx, pcSet); err != nil {
					t.Fatalf("install P-CSCF set: %v", err)
				}
				t.Logf("install: UE set %v, P-CSCF set %v", t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))

				e := openEndpoints(t, l, ep, up, pp)
				capture, err := l.UE.Capture(l.UE.Link)
				if err != nil {
					t.Fatal(err)
				}
				tag := "imsue " + name
				sent := []string{tag + " udp uc→ps", tag + " udp us→pc", tag + " tcp uc→ps", tag + " tcp us←pc"}
				udp(t, e.ueC, e.pS, sent[0])          // SA #1
				udp(t, e.pS, e.ueC, tag+" udp ps→uc") // SA #2
				udp(t, e.pC, e.ueS, tag+" udp pc→us") // SA #3
				udp(t, e.ueS, e.pC, sent[1])          // SA #4
				tcpExchange(t, l.UE, l.PCSCF, netip.AddrPortFrom(ep.UE, up.PortC), netip.AddrPortFrom(ep.PCSCF, pp.PortS),
					sent[2], tag+" tcp ps→uc") // SA #1 and #2
				tcpExchange(t, l.PCSCF, l.UE, netip.AddrPortFrom(ep.PCSCF, pp.PortC), netip.AddrPortFrom(ep.UE, up.PortS),
					tag+" tcp pc→us", sent[3]) // SA #3 and #4
				pkts, err := capture.Stop()
				if err != nil {
					t.Fatal(err)
				}

				// Every SA on both sides carried traffic.
				for _, side := range []struct {
					name string
					cfg  kernel.Config
				}{{"UE", ueCfg}, {"P-CSCF", pcCfg}} {
					sets, states, policies := imsueObjects(t, side.cfg)
					if len(sets) != 1 || states != 4 || policies != 4 {
						t.Fatalf("%s: %d sets, %d SAs, %d policies", side.name, len(sets), states, policies)
					}
					for _, st := range sets[0].States {
						if st.Packets == 0 || st.Bytes == 0 || st.Auth != p.alg || st.Enc != p.ealg || st.ReplayWindow != 32 || st.HardLifetime != mt.TemporaryLifetime {
							t.Errorf("%s SA spi 0x%x: %d packets, %d bytes, %s/%s, replay %d, lifetime %v",
								side.name, st.SPI, st.Packets, st.Bytes, st.Auth, st.Enc, st.ReplayWindow, st.HardLifetime)
						}
					}
				}

				// What left the UE: ESP only.
				var out []netlab.Packet
				esp, clear, withMarker := 0, 0, 0
				for _, pk := range pkts {
					ip, ok := netlab.ParseFrame(pk.Data)
					if !pk.Outgoing || !ok || ip.Src != ep.UE || ip.Dst != ep.PCSCF {
						continue
					}
					out = append(out, pk)
					switch ip.Proto {
					case unix.IPPROTO_ESP:
						esp++
					case unix.IPPROTO_UDP, unix.IPPROTO_TCP:
						clear++
					}
					for _, m := range sent {
						if bytes.Contains(pk.Data, []byte(m)) {
							withMarker++
							if ip.Proto != unix.IPPROTO_ESP {
								t.Errorf("payload %q left the UE outside ESP", m)
							}
						}
					}
				}
				if esp < 8 || clear != 0 {
					t.Errorf("UE sent %d ESP and %d cleartext UDP/TCP packets to the P-CSCF; want ≥8 and 0", esp, clear)
				}
				if p.ealg == ipsec.EncNull && withMarker < len(sent) {
					t.Errorf("null encryption: %d frames show the payload, want ≥%d (is the capture seeing the traffic?)", withMarker, len(sent))
				}
				if p.ealg != ipsec.EncNull && withMarker != 0 {
					t.Errorf("%s: %d outgoing frames show the payload in clear", p.ealg, withMarker)
				}
				saveArtifact(t, name, p.ealg, ueSet, out, sent)

				// Negative: without the UE's SAs, its cleartext is dropped by
				// the P-CSCF's inbound policy.
				before := netlab.TmplMismatch(t, l.PCSCF)
				t2 := time.Now()
				if err := ueB.Remove(ctx, ueSet); err != nil {
					t.Fatal(err)
				}
				t.Logf("remove: UE set %v", time.Since(t2).Round(time.Millisecond))
				if _, st, pol := imsueObjects(t, ueCfg); st+pol != 0 {
					t.Fatalf("after Remove: %d SAs, %d policies of imsue in ue", st, pol)
				}
				if _, err := e.ueC.WriteToUDPAddrPort([]byte(tag+" cleartext"), e.pS.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
					t.Fatal(err)
				}
				after := before
				testenv.Poll(ioTimeout, func() bool {
					after = netlab.TmplMismatch(t, l.PCSCF)
					return after > before
				})
				if after <= before {
					t.Errorf("XfrmInTmplMismatch at the P-CSCF stayed %d after cleartext from the UE", after)
				}
				e.pS.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if n, _, err := e.pS.ReadFromUDPAddrPort(make([]byte, 2048)); err == nil {
					t.Errorf("the P-CSCF received %d cleartext bytes on a protected port", n)
				}

				if err := pcB.Remove(ctx, pcSet); err != nil {
					t.Fatal(err)
				}
				if err := ueB.Remove(ctx, ueSet); err != nil {
					t.Fatalf("second Remove: %v", err)
				}
				for _, cfg := range []kernel.Config{ueCfg, pcCfg} {
					if sets, st, pol := imsueObjects(t, cfg); len(sets)+st+pol != 0 {
						t.Fatalf("after both removals: %d sets, %d SAs, %d policies in %s", len(sets), st, pol, cfg.NetNS)
					}
				}
				foreignOK("")
			})
		}
	}
	// Close removes what is still installed.
	ueSet, pcSet, _, _, _ := planPair(t, 90, false, ipsec.AuthHMACSHA196, ipsec.EncAESCBC)
	if err := ueB.Install(ctx, ueSet); err != nil {
		t.Fatal(err)
	}
	if err := pcB.Install(ctx, pcSet); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(ueB.Close(), pcB.Close()); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []kernel.Config{ueCfg, pcCfg} {
		if sets, st, pol := imsueObjects(t, cfg); len(sets)+st+pol != 0 {
			t.Fatalf("after Close: %d sets, %d SAs, %d policies in %s", len(sets), st, pol, cfg.NetNS)
		}
	}
	foreignOK("")
}

// saveArtifact leaves the UE's outgoing frames and its esp_sa file for
// TestUMLHostTshark, when the harness asks for artifacts.
func saveArtifact(t *testing.T, name string, ealg ipsec.Enc, set *ipsec.SASet, pkts []netlab.Packet, sent []string) {
	t.Helper()
	root := os.Getenv(netlab.EnvOut)
	if root == "" {
		return
	}
	dir := filepath.Join(root, "esp", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := netlab.WritePCAPFile(filepath.Join(dir, "capture.pcap"), pkts); err != nil {
		t.Fatal(err)
	}
	keys, err := ipsec.CreateESPKeysFile(filepath.Join(dir, "esp_sa"))
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(keys.Add(set), keys.Close()); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(artifact{Case: name, EAlg: string(ealg), Markers: sent})
	if err := os.WriteFile(filepath.Join(dir, "expect.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// holderEnv makes the test binary a process that installs one UE set in its
// own (current) network namespace, prints READY, and removes the set when
// SIGTERM or SIGINT arrives (TestUMLHolder).
const holderEnv = "IMSUE_UML_HOLDER"

// TestUMLHolder is not a test: it is the helper process of TestUMLOwnership.
func TestUMLHolder(t *testing.T) {
	spec := os.Getenv(holderEnv)
	if spec == "" {
		t.Skip("helper process of TestUMLOwnership")
	}
	n, _ := strconv.Atoi(spec)
	ue, _, _, _, _ := planPair(t, n, false, ipsec.AuthHMACSHA196, ipsec.EncAESCBC)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	b, err := kernel.New(kernel.Config{}) // the namespace the process was started in
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(3)
	}
	if err := b.Install(ctx, ue); err != nil {
		fmt.Println("FAIL", err)
		os.Exit(3)
	}
	fmt.Println("READY")
	<-ctx.Done()
	if err := b.Close(); err != nil {
		fmt.Println("FAIL close:", err)
		os.Exit(4)
	}
	fmt.Println("CLOSED")
	os.Exit(0)
}

type holder struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

// startHolder starts TestUMLHolder with SA set n in namespace ns and waits
// until its set is installed.
func startHolder(t *testing.T, ns *netlab.NS, n int) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestUMLHolder$", "-test.count=1")
	cmd.Env = append(os.Environ(), holderEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		for h.out.Scan() {
			if line := h.out.Text(); line == "READY" || strings.HasPrefix(line, "FAIL") {
				ready <- line
				return
			}
		}
		ready <- "EOF"
	}()
	select {
	case line := <-ready:
		if line != "READY" {
			t.Fatalf("holder: %s", line)
		}
	case <-time.After(2 * ioTimeout):
		t.Fatal("holder did not get ready")
	}
	return h
}

// stop sends sig and waits for the holder to exit.
func (h *holder) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return h.cmd.Wait()
}

// TestUMLOwnership: zero imsue objects after a process holding a set exits
// on SIGTERM or SIGINT; after SIGKILL the set stays, and `imsue sa flush`,
// or separately the start-up clean-up (Flush FlushStale) of the next imsue,
// removes it without touching a running imsue's set; a foreign SA and policy
// added with ip xfrm survive all of it. The state records live in the
// default /run/imsue (the guest's own tmpfs), as in real use.
func TestUMLOwnership(t *testing.T) {
	l := netlab.New(t)
	foreignOK := netlab.Foreign(t, l.UE)
	cfg := kernel.Config{NetNS: l.UE.Path}
	zero := func(when string) {
		t.Helper()
		if sets, st, pol := imsueObjects(t, cfg); len(sets)+st+pol != 0 {
			t.Fatalf("%s: %d sets, %d SAs, %d policies of imsue left", when, len(sets), st, pol)
		}
		foreignOK("")
	}
	zero("at start")

	for i, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		h := startHolder(t, l.UE, 40+i)
		sets, st, pol := imsueObjects(t, cfg)
		if len(sets) != 1 || st != 4 || pol != 4 || sets[0].Owner == nil || sets[0].Owner.PID != h.cmd.Process.Pid || !sets[0].Owner.Alive {
			t.Fatalf("while the holder runs: %+v", sets)
		}
		if err := h.stop(t, sig); err != nil {
			t.Fatalf("holder exit after %v: %v", sig, err)
		}
		zero("after " + sig.String())
	}

	// SIGKILL, then imsue sa flush.
	h := startHolder(t, l.UE, 42)
	if err := h.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("holder survived SIGKILL")
	}
	sets, st, pol := imsueObjects(t, cfg)
	if len(sets) != 1 || st != 4 || pol != 4 || sets[0].Owner == nil || sets[0].Owner.Alive {
		t.Fatalf("after SIGKILL: %+v", sets)
	}
	list := netlab.RunImsue(t, l.UE, "sa", "list", "--json")
	if !bytes.Contains(list, []byte(`"alive":false`)) || bytes.Contains(list, []byte("0x7777")) {
		t.Fatalf("imsue sa list --json: %s", list)
	}
	var fl struct{ Sets, SAs, Policies int }
	if err := json.Unmarshal(netlab.RunImsue(t, l.UE, "sa", "flush", "--json"), &fl); err != nil || fl.Sets != 1 || fl.SAs != 4 || fl.Policies != 4 {
		t.Fatalf("imsue sa flush: %+v, %v", fl, err)
	}
	zero("after SIGKILL and imsue sa flush")

	// SIGKILL, then the next start's clean-up, while another imsue runs.
	dead := startHolder(t, l.UE, 43)
	dead.stop(t, syscall.SIGKILL)
	live := startHolder(t, l.UE, 44)
	n, err := kernel.Flush(context.Background(), cfg, kernel.FlushStale)
	if err != nil || n != (kernel.Flushed{Sets: 1, States: 4, Policies: 4}) {
		t.Fatalf("Flush(FlushStale): %+v, %v", n, err)
	}
	sets, st, pol = imsueObjects(t, cfg)
	if len(sets) != 1 || st != 4 || pol != 4 || sets[0].Owner.PID != live.cmd.Process.Pid {
		t.Fatalf("after the stale flush, want the running holder's set only: %+v", sets)
	}
	if err := live.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	zero("after SIGKILL, the next start's clean-up and SIGTERM of the other holder")
}

// BenchmarkUMLInstallRemove measures installing and removing one UE SA set
// (4 states, 4 policies) under User-Mode Linux, after a first install has
// set up the algorithms' crypto transforms. ns/op is install plus remove;
// install-ns/op and remove-ns/op split it.
func BenchmarkUMLInstallRemove(b *testing.B) {
	for _, tt := range []struct {
		name string
		v6   bool
		alg  ipsec.Auth
		ealg ipsec.Enc
	}{
		{"ipv4_hmac-sha-1-96_aes-cbc", false, ipsec.AuthHMACSHA196, ipsec.EncAESCBC},
		{"ipv6_hmac-md5-96_null", true, ipsec.AuthHMACMD596, ipsec.EncNull},
	} {
		b.Run(tt.name, func(b *testing.B) {
			l := netlab.New(b)
			be, err := kernel.New(kernel.Config{NetNS: l.UE.Path, StateDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			set, _, _, _, _ := planPair(b, 60, tt.v6, tt.alg, tt.ealg)
			ctx := context.Background()
			if err := errors.Join(be.Install(ctx, set), be.Remove(ctx, set)); err != nil {
				b.Fatal(err)
			}
			var install, remove time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if err := be.Install(ctx, set); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := be.Remove(ctx, set); err != nil {
					b.Fatal(err)
				}
				install += t1.Sub(t0)
				remove += time.Since(t1)
			}
			b.ReportMetric(float64(install.Nanoseconds())/float64(b.N), "install-ns/op")
			b.ReportMetric(float64(remove.Nanoseconds())/float64(b.N), "remove-ns/op")
		})
	}
}

// TestUMLRollback: an SA that collides with another program's (same
// destination and SPI as SA #3) makes Install fail after it has added SAs
// #1 and #2; those are removed again, the state record too, and the other
// program's SA stays.
func TestUMLRollback(t *testing.T) {
	l := netlab.New(t)
	cfg := kernel.Config{NetNS: l.UE.Path, StateDir: t.TempDir()}
	b, err := kernel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ue, _, _, _, _ := planPair(t, 70, false, ipsec.AuthHMACSHA196, ipsec.EncAESCBC)
	sa3 := ue.SAs[2]
	args := []string{"-n", l.UE.Name, "xfrm", "state", "add", "src", sa3.Src.Addr().String(), "dst", sa3.Dst.Addr().String(),
		"proto", "esp", "spi", fmt.Sprint(sa3.SPI), "reqid", "7", "mode", "transport",
		"auth-trunc", "hmac(md5)", "0x" + strings.Repeat("33", 16), "96", "enc", "cipher_null", ""}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
	err = b.Install(context.Background(), ue)
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "add SA #3") || errors.Is(err, ipsec.ErrUnsupported) {
		t.Fatalf("Install over a foreign SA: %v", err)
	}
	if sets, st, pol := imsueObjects(t, cfg); len(sets)+st+pol != 0 {
		t.Fatalf("after the rollback: %d sets, %d SAs, %d policies of imsue", len(sets), st, pol)
	}
	ents, _ := os.ReadDir(cfg.StateDir)
	if len(ents) != 0 {
		t.Fatalf("state record left after the rollback: %v", ents[0].Name())
	}
	out, err := exec.Command("ip", "-n", l.UE.Name, "xfrm", "state", "list", "spi", fmt.Sprint(sa3.SPI)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "reqid 7 ") {
		t.Fatalf("the foreign SA is gone: %v\n%s", err, out)
	}
}

// TestUMLExtend: a set installed with the reg-await-auth bound
// (TS 33.203 §7.4: mt.TemporaryLifetime) gets, through XFRM_MSG_UPDSA, the
// hard lifetime of an established registration; its SAs keep their keys,
// reqid and policies (traffic still flows both ways), and a set the
// Backend did not install cannot be extended.
func TestUMLExtend(t *testing.T) {
	l := netlab.New(t)
	dir := t.TempDir()
	ueCfg := kernel.Config{NetNS: l.UE.Path, StateDir: filepath.Join(dir, "ue")}
	pcCfg := kernel.Config{NetNS: l.PCSCF.Path, StateDir: filepath.Join(dir, "pcscf")}
	ueB, err := kernel.New(ueCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ueB.Close()
	pcB, err := kernel.New(pcCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pcB.Close()
	ctx := context.Background()
	ueSet, pcSet, ep, up, pp := planPair(t, 80, false, ipsec.AuthHMACSHA196, ipsec.EncAESCBC)
	if err := ueB.Extend(ctx, ueSet, time.Now().Add(time.Hour)); err == nil {
		t.Fatal("Extend of a set not installed succeeded")
	}
	if err := ueB.Install(ctx, ueSet); err != nil {
		t.Fatal(err)
	}
	if err := pcB.Install(ctx, pcSet); err != nil {
		t.Fatal(err)
	}
	const life = 2 * time.Hour
	for _, b := range []*kernel.Backend{ueB, pcB} {
		set := ueSet
		if b == pcB {
			set = pcSet
		}
		if err := b.Extend(ctx, set, time.Now().Add(life)); err != nil {
			t.Fatalf("Extend: %v", err)
		}
	}
	for _, cfg := range []kernel.Config{ueCfg, pcCfg} {
		sets, states, policies := imsueObjects(t, cfg)
		if len(sets) != 1 || states != 4 || policies != 4 {
			t.Fatalf("%d sets, %d SAs, %d policies after Extend", len(sets), states, policies)
		}
		for _, st := range sets[0].States {
			// Counted from the install, which was a moment before.
			if st.HardLifetime < life || st.HardLifetime > life+10*time.Second {
				t.Errorf("SA spi 0x%x: hard lifetime %v after Extend, want %v", st.SPI, st.HardLifetime, life)
			}
		}
	}
	e := openEndpoints(t, l, ep, up, pp)
	udp(t, e.ueC, e.pS, "after Extend: uc→ps") // SA #1
	udp(t, e.pC, e.ueS, "after Extend: pc→us") // SA #3
}
