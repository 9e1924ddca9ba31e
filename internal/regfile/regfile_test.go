package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A FIFO neither blocks nor opens; the call returns at once (a blocked
// open would hang the test, which then fails on its deadline).
func TestFIFORefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 2)
	go func() {
		_, err := Open(fifo)
		done <- err
		_, err = Create(fifo)
		done <- err
	}()
	for _, op := range []string{"Open", "Create"} {
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s(FIFO) = %v; want ErrNotRegular", op, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s(FIFO) blocked", op)
		}
	}
}

// Create does not follow a symbolic link: the target is left as it was.
func TestCreateRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "out.pcap")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(link); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Create(symlink) = %v; want ErrNotRegular", err)
	}
	b, _ := os.ReadFile(target)
	fi, _ := os.Stat(target)
	if string(b) != "keep me" || fi.Mode().Perm() != 0o644 {
		t.Errorf("the link's target changed: %q, %v", b, fi.Mode())
	}
}

// Create truncates an existing file and tightens its mode to 0600.
func TestCreateTruncatesAndTightens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new")
	f.Close()
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(b) != "new" || fi.Mode().Perm() != 0o600 {
		t.Errorf("content %q mode %v; want \"new\" and 0600", b, fi.Mode().Perm())
	}
	if _, err := Open(path); err != nil {
		t.Errorf("Open(regular file) = %v", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Open(directory) = %v; want ErrNotRegular", err)
	}
}
