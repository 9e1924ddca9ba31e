package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// builds holds what BuildBinary built in this test binary.
var builds struct {
	mu     sync.Mutex
	shared bool   // Main runs the tests: build once, remove at the end
	dir    string // the shared builds' directory, made at the first build
	by     map[string]func() (string, error)
}

// BuildBinary builds the main package pkg (a `go build` package argument,
// relative to the test's working directory, such as ".") with the build tags
// tags, and returns the executable's path. It skips the test under -short
// and when no go tool is on PATH, and fails it when the build fails.
//
// Where the package's TestMain runs the tests through Main, each pkg and set
// of tags is built once per test binary, into one temporary directory that
// Main removes when the tests have run. Without Main, every call builds into
// the calling test's t.TempDir(), which the testing package removes: slower,
// and equally never left behind.
func BuildBinary(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary (-short)")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool on PATH to build %s", pkg)
	}
	builds.mu.Lock()
	if !builds.shared {
		builds.mu.Unlock()
		bin, err := goBuild(goTool, t.TempDir(), pkg, tags)
		if err != nil {
			t.Fatal(err)
		}
		return bin
	}
	key := pkg + "\x00" + strings.Join(tags, ",")
	build, ok := builds.by[key]
	if !ok {
		if builds.by == nil {
			builds.by = map[string]func() (string, error){}
		}
		n := len(builds.by)
		build = sync.OnceValues(func() (string, error) {
			dir, err := sharedDir()
			if err != nil {
				return "", err
			}
			sub := filepath.Join(dir, strconv.Itoa(n))
			if err := os.Mkdir(sub, 0o700); err != nil {
				return "", err
			}
			return goBuild(goTool, sub, pkg, tags)
		})
		builds.by[key] = build
	}
	builds.mu.Unlock()
	bin, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// sharedDir makes the shared builds' directory once.
func sharedDir() (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "testenv-bin-")
		if err != nil {
			return "", err
		}
		builds.dir = dir
	}
	return builds.dir, nil
}

// goBuild runs go build -o dir/prog pkg.
func goBuild(goTool, dir, pkg string, tags []string) (string, error) {
	bin := filepath.Join(dir, "prog")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	out, err := exec.Command(goTool, append(args, pkg)...).CombinedOutput()
	if err != nil {
		return "", &buildError{pkg: pkg, tags: tags, err: err, out: out}
	}
	return bin, nil
}

type buildError struct {
	pkg  string
	tags []string
	err  error
	out  []byte
}

func (e *buildError) Error() string {
	return "go build " + e.pkg + " (tags " + strings.Join(e.tags, ",") + "): " + e.err.Error() + "\n" + string(e.out)
}

// Main runs m's tests and then removes every binary BuildBinary built for
// them, and returns the exit code for os.Exit. A package whose tests share
// built binaries calls it from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	builds.mu.Lock()
	builds.shared = true
	builds.mu.Unlock()
	code := m.Run()
	builds.mu.Lock()
	dir := builds.dir
	builds.dir, builds.by = "", nil
	builds.mu.Unlock()
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			os.Stderr.WriteString("testenv: removing built binaries: " + err.Error() + "\n")
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}
