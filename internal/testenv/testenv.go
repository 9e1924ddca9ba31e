// Package testenv decides what a test does when a real component it needs
// (root, pcscd, User-Mode Linux, Kamailio, tshark) is missing: outside CI it
// skips with the reason; with CI=true it fails, because CI must prove the
// real path and a silent skip would hide a missing install step.
//
// It also holds what many tests need alike: Poll and Eventually wait for a
// condition, BuildBinary builds a command once per test binary (with Main),
// and AddSeedFiles gives a fuzz target files as seeds.
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// InCI reports whether the test runs under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips t (or fails it under CI) because what is not available.
func Missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("required component missing under CI: %s", what)
	}
	t.Skipf("skipped: %s (CI=true makes this a failure)", what)
}

// NeedRoot requires uid 0.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root privileges")
	}
}

// NeedCommand requires an executable on PATH and returns its path.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" not on PATH")
	}
	return p
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a tracer
// writing from several socket goroutines) and a reading test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
