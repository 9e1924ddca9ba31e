package isim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash and race tests run this test binary again as a child process
// (childEnv set) that answers challenges on a FileStore, reporting each
// accepted SQN on stdout only after Authenticate returned: a line "ok SQN"
// means the acceptance was durable.

const childEnv = "IMSUE_ISIM_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode, os.Getenv("IMSUE_STATE"), os.Getenv("IMSUE_SEEN")))
	}
	os.Exit(m.Run())
}

// child runs one child process; its exit code tells the parent what went
// wrong (it is normally killed, or ends the race list with 0).
func child(mode, statePath, seenPath string) int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return code
	}
	store, err := OpenFileStore(statePath)
	if err != nil {
		return fail(3, "open: %v", err)
	}
	k, opc := testKeys()
	sim, err := NewSoftware(Config{K: k, OPc: opc, Store: store})
	if err != nil {
		return fail(3, "new: %v", err)
	}
	net := newNetwork(k, opc)
	net.rand[1] = byte(os.Getpid())
	net.rand[2] = byte(os.Getpid() >> 8)
	out := os.Stdout // unbuffered: each line is one write(2), atomic on a pipe

	switch mode {
	case "crash":
		// Every SQN an earlier run reported accepted must now be refused.
		if seenPath != "" {
			b, err := os.ReadFile(seenPath)
			if err != nil {
				return fail(3, "seen: %v", err)
			}
			for _, f := range strings.Fields(string(b)) {
				v, _ := strconv.ParseUint(f, 16, 64)
				rand, autn := net.challenge(SQN(v))
				_, err := sim.Authenticate(ctx, rand, autn)
				var sf *SyncFailure
				if err == nil {
					return fail(4, "replay of %v accepted", SQN(v))
				} else if !errors.As(err, &sf) {
					return fail(5, "replay of %v: %v", SQN(v), err)
				}
			}
		}
		fmt.Fprintln(out, "ready")
		for i := 0; ; i++ {
			st, err := store.Load()
			if err != nil {
				return fail(3, "load: %v", err)
			}
			sqn := MakeSQN(st.MaxSEQ()+1, i%INDSlots)
			rand, autn := net.challenge(sqn)
			if _, err := sim.Authenticate(ctx, rand, autn); err != nil {
				return fail(6, "fresh %v refused: %v", sqn, err)
			}
			fmt.Fprintf(out, "ok %012x\n", uint64(sqn))
		}
	case "race":
		fmt.Fprintln(out, "ready")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return fail(3, "waiting for go: %v", err)
		}
		// Both children offer the same SQNs in the same order.
		for i := 1; i <= raceSQNs; i++ {
			sqn := MakeSQN(uint64(i), i%4)
			rand, autn := net.challenge(sqn)
			_, err := sim.Authenticate(ctx, rand, autn)
			var sf *SyncFailure
			switch {
			case err == nil:
				fmt.Fprintf(out, "ok %012x\n", uint64(sqn))
			case errors.As(err, &sf):
			default:
				return fail(5, "%v: %v", sqn, err)
			}
		}
		return 0
	}
	return fail(2, "unknown child mode %q", mode)
}

const raceSQNs = 150

func startChild(t *testing.T, mode, statePath, seenPath string) (*exec.Cmd, <-chan string, io.WriteCloser, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "IMSUE_STATE="+statePath, "IMSUE_SEEN="+seenPath)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(strings.Builder)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines, stdin, stderr
}

// parseOK returns the SQN of an "ok SQN" line.
func parseOK(t *testing.T, line string) (SQN, bool) {
	hexSQN, ok := strings.CutPrefix(line, "ok ")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(hexSQN, 16, 64)
	if err != nil || len(hexSQN) != 12 {
		t.Fatalf("child printed a malformed line %q", line)
	}
	return SQN(v), true
}

// TestCrashSafety SIGKILLs a child that accepts fresh challenges in a loop,
// at random moments (one run in five during start-up, the others within
// 20 ms of its first acceptance, while it is writing), 30 times. Every run must start (the state file always decodes), every SQN a
// run reported accepted must be refused by every later run, and at the end
// by this process.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 30 processes")
	}
	dir := t.TempDir()
	statePath := filepath.Join(dir, "ue1.sqn")
	seenPath := filepath.Join(dir, "seen")
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill timing seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var seen []SQN
	const kills = 30
	for run := range kills {
		var list strings.Builder
		for _, s := range seen {
			fmt.Fprintf(&list, "%012x\n", uint64(s))
		}
		if err := os.WriteFile(seenPath, []byte(list.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd, lines, stdin, stderr := startChild(t, "crash", statePath, seenPath)
		stdin.Close()
		var timer *time.Timer
		kill := func() { _ = cmd.Process.Signal(syscall.SIGKILL) }
		if run%5 == 4 {
			// Now and then during start-up or the replay checks.
			timer = time.AfterFunc(time.Duration(rng.IntN(15_000))*time.Microsecond, kill)
		}
		for line := range lines {
			if s, ok := parseOK(t, line); ok {
				seen = append(seen, s)
				if timer == nil {
					// Mostly while it writes: from its first acceptance on.
					timer = time.AfterFunc(time.Duration(rng.IntN(20_000))*time.Microsecond, kill)
				}
			}
		}
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %d: child ended without being killed (%v); stderr: %s", run, err, stderr)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: child failed by itself (%v): %s", run, err, stderr)
		}
	}
	if len(seen) < kills/2 {
		t.Fatalf("only %d acceptances in %d runs: the kills came too early to test anything", len(seen), kills)
	}
	t.Logf("%d runs killed, %d acceptances reported", kills, len(seen))

	store, err := OpenFileStore(statePath)
	if err != nil {
		t.Fatalf("after the kills the state does not open: %v", err)
	}
	k, opc := testKeys()
	s, _ := NewSoftware(Config{K: k, OPc: opc, Store: store})
	net := newNetwork(k, opc)
	for _, sqn := range seen {
		rand, autn := net.challenge(sqn)
		if _, err := s.Authenticate(ctx, rand, autn); err == nil {
			t.Fatalf("%v was accepted again after the crashes", sqn)
		} else {
			syncAUTS(t, err)
		}
	}
	if _, err := os.Stat(statePath + ".tmp"); err == nil {
		// A kill between create and rename leaves it; the next writer removes it.
		t.Logf("a temporary file from a killed writer remains (harmless)")
	}
}

// TestTwoProcessesRace starts two children on one state file; both offer
// the same SQNs in the same order as fast as they can. No SQN may be
// accepted by both.
func TestTwoProcessesRace(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	statePath := filepath.Join(t.TempDir(), "ue1.sqn")
	type kid struct {
		cmd    *exec.Cmd
		lines  <-chan string
		stdin  io.WriteCloser
		stderr *strings.Builder
	}
	var kids [2]kid
	for i := range kids {
		c, l, in, e := startChild(t, "race", statePath, "")
		kids[i] = kid{c, l, in, e}
	}
	for i := range kids {
		if line := <-kids[i].lines; line != "ready" {
			t.Fatalf("child %d: %q, stderr %s", i, line, kids[i].stderr)
		}
	}
	for i := range kids {
		fmt.Fprintln(kids[i].stdin, "go")
	}
	by := map[SQN]int{}
	count := [2]int{}
	for i := range kids {
		for line := range kids[i].lines {
			if s, ok := parseOK(t, line); ok {
				if other, dup := by[s]; dup {
					t.Errorf("%v accepted by child %d and child %d", s, other, i)
				}
				by[s] = i
				count[i]++
			}
		}
		if err := kids[i].cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v: %s", i, err, kids[i].stderr)
		}
	}
	t.Logf("accepted: child 0 %d, child 1 %d, of %d offered to each", count[0], count[1], raceSQNs)
	if len(by) == 0 {
		t.Fatal("nothing was accepted")
	}
}
