package testenv

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain runs the tests through Main and then checks that Main removed
// the shared builds' directory.
func TestMain(m *testing.M) {
	code := Main(m)
	if dir := sharedSeen; dir != "" {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "Main left %s behind (%v)\n", dir, err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestPoll(t *testing.T) {
	var n atomic.Int32
	if !Poll(time.Second, func() bool { return n.Add(1) == 3 }) {
		t.Fatal("Poll gave up on a condition that became true")
	}
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll reported a false condition true")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > time.Second {
		t.Errorf("Poll(50ms) of a false condition took %v", d)
	}
	calls := 0
	Poll(0, func() bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Poll(0) checked %d times, want once", calls)
	}
}

// sharedSeen is the shared builds' directory TestBuildBinaryShared saw.
var sharedSeen string

// recorder is a testing.TB that keeps what Errorf says.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	r := &recorder{}
	if !Eventually(r, time.Second, "ready", func() bool { return true }) || r.msg != "" {
		t.Fatalf("a true condition: %q", r.msg)
	}
	if Eventually(r, 20*time.Millisecond, "the queue drained", func() bool { return false }) {
		t.Fatal("Eventually reported a false condition true")
	}
	if r.msg != "not true after 20ms: the queue drained" {
		t.Errorf("message %q", r.msg)
	}
}

func runHello(t *testing.T, bin string) {
	t.Helper()
	out, err := exec.Command(bin).Output()
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("%s: %q, %v", bin, out, err)
	}
}

func TestBuildBinaryShared(t *testing.T) {
	a := BuildBinary(t, "./testdata/hello")
	b := BuildBinary(t, "./testdata/hello")
	if a != b {
		t.Errorf("built twice: %s and %s", a, b)
	}
	sharedSeen = builds.dir
	if !strings.HasPrefix(a, builds.dir+string(filepath.Separator)) {
		t.Errorf("%s is not in the shared directory %s", a, builds.dir)
	}
	c := BuildBinary(t, "./testdata/hello", "sometag")
	if c == a {
		t.Error("other tags, same binary")
	}
	runHello(t, a)
	runHello(t, c)
}

func TestBuildBinaryWithoutMain(t *testing.T) {
	builds.mu.Lock()
	builds.shared = false
	builds.mu.Unlock()
	defer func() {
		builds.mu.Lock()
		builds.shared = true
		builds.mu.Unlock()
	}()
	var bin string
	t.Run("build", func(t *testing.T) {
		bin = BuildBinary(t, "./testdata/hello")
		runHello(t, bin)
	})
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("%s outlived its test (%v)", bin, err)
	}
}

func TestBuildBinaryFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary (-short)")
	}
	_, err := goBuild("go", t.TempDir(), "./testdata/nosuchpackage", nil)
	if err == nil || !strings.Contains(err.Error(), "go build ./testdata/nosuchpackage") {
		t.Errorf("error %v", err)
	}
}

func FuzzAddSeedFiles(f *testing.F) {
	AddSeedFiles(f, "testdata/seeds/*.txt", uint8(7))
	fuzzing := flag.Lookup("test.fuzz").Value.String() != ""
	var seen atomic.Int32
	f.Cleanup(func() {
		if n := seen.Load(); !fuzzing && n != 2 {
			f.Errorf("%d seeds ran, want the 2 files", n)
		}
	})
	f.Fuzz(func(t *testing.T, lead uint8, data []byte) {
		if fuzzing {
			return // the fuzzer's own inputs
		}
		seen.Add(1)
		if lead != 7 || !bytes.HasPrefix(data, []byte("seed ")) || !bytes.HasSuffix(data, []byte("\r\n")) {
			t.Errorf("seed %d, %q", lead, data)
		}
	})
}
