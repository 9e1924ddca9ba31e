package isim

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func acceptFn(s SQN) func(*SQNState) (bool, error) {
	return func(st *SQNState) (bool, error) {
		if st.Check(s, Policy{}) != Fresh {
			return false, nil
		}
		st.Accept(s)
		return true, nil
	}
}

func TestFileStoreFreshAndPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ue1.sqn")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatalf("missing file must be a fresh ISIM: %v", err)
	}
	if st, err := s.Load(); err != nil || st != (SQNState{}) {
		t.Fatalf("fresh load: %v %v", st.SEQ, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("opening created the state file")
	}
	if err := s.Update(ctx, acceptFn(MakeSQN(9, 4))); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %04o, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(path + ".lock"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", fi, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("temporary file left behind")
	}
	// A new store on the same file (another run) sees the state.
	again, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := again.Load()
	if err != nil || st.SEQ[4] != 9 {
		t.Fatalf("after reopen: slot 4 = %d, %v", st.SEQ[4], err)
	}
}

func TestFileStoreNoWriteUnlessChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ue1.sqn")
	s, _ := OpenFileStore(path)
	if err := s.Update(ctx, func(*SQNState) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.Update(ctx, func(st *SQNState) (bool, error) { st.SEQ[0] = 5; return true, boom }); !errors.Is(err, boom) {
		t.Fatalf("fn's error not returned: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a state was written though fn did not commit")
	}
}

func TestFileStoreKeepsModeOfNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ue1.sqn")
	s, _ := OpenFileStore(path)
	_ = s.Update(ctx, acceptFn(MakeSQN(1, 0)))
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = s.Update(ctx, acceptFn(MakeSQN(2, 0)))
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("rewritten state file mode %04o, want 0600", fi.Mode().Perm())
	}
}

func TestFileStoreStaleTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ue1.sqn")
	// A crash after creating the temporary file; or someone planting a
	// symlink there. Neither may be followed or block the store.
	if err := os.WriteFile(path+".tmp", []byte("half a state"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := OpenFileStore(path)
	if err := s.Update(ctx, acceptFn(MakeSQN(1, 0))); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, acceptFn(MakeSQN(2, 0))); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("the store wrote through a symlink: %q", b)
	}
	if st, _ := s.Load(); st.SEQ[0] != 2 {
		t.Fatalf("slot 0 = %d", st.SEQ[0])
	}
}

func TestFileStoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	good, _ := goldenState().MarshalText()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-10]},
		{"edited", []byte(strings.Replace(string(good), "seq 10 3", "seq 10 2", 1))},
		{"garbage", []byte("\x00\x01\x02")},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.name+".sqn")
		if err := os.WriteFile(path, tt.data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenFileStore(path)
		var se *StateError
		if !errors.As(err, &se) || !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: want a *StateError naming %s and wrapping ErrCorruptState, got %v", tt.name, path, err)
		}
		// Update must refuse too, and leave the damaged file as it is.
		s := &FileStore{path: path}
		if err := s.Update(ctx, acceptFn(MakeSQN(1, 0))); !errors.Is(err, ErrCorruptState) {
			t.Errorf("%s: Update on a corrupt file: %v", tt.name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != string(tt.data) {
			t.Errorf("%s: the corrupt file was overwritten", tt.name)
		}
	}
}

func TestFileStoreUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: unreadable as a file, for root too.
	path := filepath.Join(dir, "isdir.sqn")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	var se *StateError
	if _, err := OpenFileStore(path); !errors.As(err, &se) || se.Path != path {
		t.Fatalf("state path is a directory: %v", err)
	}
	if _, err := OpenFileStore(filepath.Join(dir, "no", "such", "dir.sqn")); !errors.As(err, &se) {
		t.Fatalf("missing directory: %v", err)
	}
	if _, err := OpenFileStore(""); !errors.As(err, &se) {
		t.Fatalf("empty path: %v", err)
	}
	// A FIFO as the state file is refused at once, never waited on.
	fifo := filepath.Join(dir, "fifo.sqn")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(fifo); !errors.As(err, &se) || !strings.Contains(err.Error(), "FIFO") {
		t.Fatalf("state path is a FIFO: %v", err)
	}
}

// TestFileStoreLockWaitsForContext holds the lock through another open file
// description (as another process would) and checks that Update waits and
// gives up when its context ends, writing nothing.
func TestFileStoreLockWaitsForContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ue1.sqn")
	s, _ := OpenFileStore(path)
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	err = s.Update(c, acceptFn(MakeSQN(1, 0)))
	var se *StateError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &se) {
		t.Fatalf("Update under a held lock: %v, want the context's deadline (not a StateError)", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("Update wrote without the lock")
	}
	// Released: the same Update goes through.
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, acceptFn(MakeSQN(1, 0))); err != nil {
		t.Fatal(err)
	}
}

// TestFileStoreConcurrentStores: many stores on one file in one process
// (each Update opens its own lock descriptor, so flock excludes them as it
// would processes) all offer the same SQNs; each SQN is accepted once.
func TestFileStoreConcurrentStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ue1.sqn")
	const workers, n = 4, 25
	var mu sync.Mutex
	accepted := map[SQN]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := OpenFileStore(path)
			if err != nil {
				t.Error(err)
				return
			}
			for i := 1; i <= n; i++ {
				sqn := MakeSQN(uint64(i), i%3)
				ok := false
				err := s.Update(ctx, func(st *SQNState) (bool, error) {
					ok = st.Check(sqn, Policy{}) == Fresh
					if ok {
						st.Accept(sqn)
					}
					return ok, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					accepted[sqn]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for sqn, c := range accepted {
		if c != 1 {
			t.Errorf("%v accepted %d times", sqn, c)
		}
	}
}

func TestMemoryStore(t *testing.T) {
	m := NewMemoryStore(SQNState{})
	if err := m.Update(ctx, func(st *SQNState) (bool, error) { st.SEQ[1] = 7; return false, nil }); err != nil {
		t.Fatal(err)
	}
	if m.State().SEQ[1] != 0 {
		t.Fatal("an uncommitted change was kept")
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Update(c, acceptFn(MakeSQN(1, 1))); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}
