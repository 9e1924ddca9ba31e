// Package pcsctest runs the real PC/SC stack for tests: pcsc-lite's pcscd
// with the vpcd virtual reader, and a virtual UICC (cards/vcard) inserted
// into it. Without root, pcscd or the vpcd driver the test is skipped with
// the reason (failed under CI=true, see internal/testenv).
//
// pcscd runs in a private mount namespace whose /run/pcscd is a directory of
// this test process (test/pcsc/run-pcscd.sh), so it never meets a system
// pcscd or another test's. The process's PC/SC clients find it through
// PCSCLITE_CSOCK_NAME, which Start sets; libpcsclite reads that variable
// once per process, so every daemon of one test process uses the same path
// and they run one after the other.
package pcsctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imsue/imsue/cards/vcard"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/profile"
)

// VPCDDriver is where Debian's vsmartcard-vpcd installs the driver.
const VPCDDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// EnvSocket is the variable libpcsclite reads for the daemon's socket.
const EnvSocket = "PCSCLITE_CSOCK_NAME"

// one daemon at a time per process: they share the socket path.
var daemonMu sync.Mutex

// SocketDir is this process's directory for pcscd's socket.
func SocketDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("imsue-pcsc-%d", os.Getpid()))
}

// Socket is the socket path PC/SC clients of this process use.
func Socket() string { return filepath.Join(SocketDir(), "pcscd.comm") }

// Daemon is a pcscd with one vpcd entry (two slots) for one test.
type Daemon struct {
	// Name is the readers' name prefix: the slots are "<Name> 00 00" and
	// "<Name> 00 01".
	Name string
	// Port is vpcd's TCP port for slot 0; slot 1 is Port+1.
	Port int
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Reader returns the PC/SC name of vpcd's slot (0 or 1).
func (d *Daemon) Reader(slot int) string { return fmt.Sprintf("%s 00 %02d", d.Name, slot) }

// VPCDAddr returns the address a virtual card dials for slot (0 or 1).
func (d *Daemon) VPCDAddr(slot int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port+slot))
}

// Options tune StartDaemon.
type Options struct {
	// NoReaders starts pcscd without any reader configured.
	NoReaders bool
}

// need checks the prerequisites, skipping (or failing under CI).
func need(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "pcscd")
	testenv.NeedCommand(t, "unshare")
	if _, err := os.Stat(VPCDDriver); err != nil {
		testenv.Missing(t, "vpcd driver "+VPCDDriver+" (package vsmartcard-vpcd)")
	}
}

// NoDaemon makes sure no pcscd serves this process's socket until the test
// ends, and points PC/SC clients at it: for tests of "pcscd not running".
func NoDaemon(t testing.TB) {
	t.Helper()
	daemonMu.Lock()
	t.Cleanup(daemonMu.Unlock)
	os.Setenv(EnvSocket, Socket())
	_ = os.Remove(Socket())
}

// StartDaemon starts pcscd for the test and stops it when the test ends.
func StartDaemon(t testing.TB, opt Options) *Daemon {
	t.Helper()
	need(t)
	daemonMu.Lock()
	locked := true
	defer func() {
		if locked && t.Failed() {
			daemonMu.Unlock()
		}
	}()
	sweep()
	dir := SocketDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(Socket())
	os.Setenv(EnvSocket, Socket())

	var r [3]byte
	_, _ = rand.Read(r[:])
	d := &Daemon{Name: "imsue-" + hex.EncodeToString(r[:]), done: make(chan struct{})}
	conf := filepath.Join(t.TempDir(), "reader.conf")
	content := ""
	if !opt.NoReaders {
		port, err := freePortPair()
		if err != nil {
			t.Fatal(err)
		}
		d.Port = port
		tmpl, err := os.ReadFile(filepath.Join(Dir(), "reader.conf.in"))
		if err != nil {
			t.Fatal(err)
		}
		content = strings.NewReplacer("@PORTHEX@", fmt.Sprintf("%04X", port), "@PORT@", strconv.Itoa(port),
			"@NAME@", d.Name, "@LIBPATH@", VPCDDriver).Replace(string(tmpl))
	}
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{dir, conf}
	if os.Getenv("IMSUE_PCSCD_DEBUG") == "1" {
		args = append(args, "--debug", "--apdu")
	}
	d.log = filepath.Join(t.TempDir(), "pcscd.log")
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(filepath.Join(Dir(), "run-pcscd.sh"), args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// If the test process dies without its cleanups (a test timeout),
	// pcscd goes too: the setting survives the script's execs.
	d.cmd.SysProcAttr = dieWithParent()
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start pcscd: %v", err)
	}
	go func() {
		_ = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	locked = false
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			if b, err := os.ReadFile(d.log); err == nil {
				t.Logf("pcscd log (%s):\n%s", d.cmdline(), tail(b, 60))
			}
		}
		_ = os.RemoveAll(dir)
		daemonMu.Unlock()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(Socket()); err == nil {
			break
		}
		select {
		case <-d.done:
			b, _ := os.ReadFile(d.log)
			t.Fatalf("pcscd exited at start (%s):\n%s", d.cmdline(), tail(b, 30))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pcscd did not create %s in 10 s", Socket())
		}
	}
	return d
}

func (d *Daemon) cmdline() string { return strings.Join(d.cmd.Args, " ") }

// stop sends SIGTERM to pcscd (the script execs it: same PID) and waits,
// killing it after 5 s.
func (d *Daemon) stop(t testing.TB) {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Errorf("pcscd (pid %d) ignored SIGTERM for 5 s: killing it", d.cmd.Process.Pid)
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// Stop stops pcscd now (it is stopped at the end of the test anyway).
func (d *Daemon) Stop(t testing.TB) { d.stop(t) }

// Insert personalises a virtual card and dials it into vpcd's slot; it
// returns once pcscd has powered the card up. The card is removed at the
// end of the test.
func (d *Daemon) Insert(t testing.TB, cfg vcard.Config, slot int) *vcard.Card {
	t.Helper()
	card, err := vcard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.InsertCard(t, card, slot)
	return card
}

// InsertCard dials card into vpcd's slot, as Insert does.
func (d *Daemon) InsertCard(t testing.TB, card *vcard.Card, slot int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	var conn net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		conn, err = net.DialTimeout("tcp", d.VPCDAddr(slot), time.Second)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			cancel()
			t.Fatalf("insert the card into vpcd at %s: %v", d.VPCDAddr(slot), err)
		}
		select {
		case <-d.done:
			cancel()
			t.Fatal("pcscd exited before vpcd listened")
		case <-time.After(20 * time.Millisecond):
		}
	}
	go func() { served <- card.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("virtual card: %v", err)
		}
	})
	select {
	case <-card.Powered():
	case err := <-served:
		t.Fatalf("virtual card ended before pcscd powered it: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("pcscd did not power the virtual card up in 10 s")
	}
}

// Env is a running pcscd with a virtual card in slot 0.
type Env struct {
	*Daemon
	Card   *vcard.Card
	Reader string // the PC/SC name of the card's reader
}

// Start runs pcscd with vpcd and inserts a virtual card personalised with
// cfg; both go away at the end of the test.
func Start(t testing.TB, cfg vcard.Config) *Env {
	t.Helper()
	d := StartDaemon(t, Options{})
	card := d.Insert(t, cfg, 0)
	return &Env{Daemon: d, Card: card, Reader: d.Reader(0)}
}

// StartProfile is Start with a card personalised from the imsue profile
// at path: its identities and MNC length, and its software ISIM (keys and
// SQN state file) behind AUTHENTICATE. cfg gives the rest (protocol modes,
// PIN, USIM only); its Identity, MNCLength and Auth are replaced. The
// profile needs imsi, mnc_length, k and opc (or op).
func StartProfile(t testing.TB, path string, cfg vcard.Config) *Env {
	t.Helper()
	p, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Identity.IMSI == "" || p.MNCLength == 0 {
		t.Fatalf("profile %s: the virtual card needs imsi and mnc_length", path)
	}
	sw, err := p.OpenSoftware()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	cfg.Identity, cfg.MNCLength, cfg.Auth = p.Identity, p.MNCLength, sw
	return Start(t, cfg)
}

// Dir returns the repository's test/pcsc directory (scripts and templates).
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "test", "pcsc")
}

// sweep removes the socket directories of test processes that are gone.
func sweep() {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "imsue-pcsc-*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "imsue-pcsc-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// freePortPair finds P such that P and P+1 are free on all interfaces, as
// vpcd binds both.
func freePortPair() (int, error) {
	for range 50 {
		l1, err := net.Listen("tcp", ":0")
		if err != nil {
			return 0, err
		}
		p := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", ":"+strconv.Itoa(p+1))
		l1.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no two consecutive free TCP ports")
}

func tail(b []byte, lines int) string {
	ls := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte("\n")))
}
