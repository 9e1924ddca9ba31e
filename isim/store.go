package isim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/imsue/imsue/internal/regfile"
)

// Store keeps the SQN state of one software ISIM.
//
// Update runs fn on the current state while holding the store's exclusive
// lock, so that the check and the update of one challenge are atomic with
// respect to every other user of the same state, in this process or another.
// When fn returns true the modified state is durable before Update returns;
// when fn returns false or an error, nothing is written.
type Store interface {
	Update(ctx context.Context, fn func(*SQNState) (changed bool, err error)) error
}

// StateError reports an SQN state file that cannot be read, locked, decoded
// or written. It names the file. The command line maps it to exit code 2:
// the state is configuration the user must repair; it is never reset
// silently.
type StateError struct {
	Path string
	Op   string // "open", "read", "lock", "write"
	Err  error
}

func (e *StateError) Error() string {
	msg := fmt.Sprintf("SQN state file %s: %s: %v", e.Path, e.Op, e.Err)
	if errors.Is(e.Err, ErrCorruptState) {
		msg += " (refusing to reset it: restore the file, or delete it to start" +
			" a fresh ISIM and let the network resynchronise)"
	}
	return msg
}

func (e *StateError) Unwrap() error { return e.Err }

// FileStore is a Store in one file, for one profile.
//
// Durability: the new state goes to <path>.tmp (created 0600, exclusively),
// is fsynced, renamed over <path>, and the directory is fsynced; a crash at
// any point leaves either the old or the new state, both valid. Mutual
// exclusion: an flock on <path>.lock, held from the read to the rename. The
// lock is on a separate file because the rename replaces the state file's
// inode, and a lock on the old inode would not exclude a process that opened
// the new one. The lock file is never removed: removing it would let two
// processes lock two different inodes.
//
// A missing state file is a fresh ISIM (all SEQ_MS zero); a present but
// unreadable or corrupt one is a *StateError.
type FileStore struct {
	path string
}

// OpenFileStore returns the store for the state file at path. It reads the
// file once so that a corrupt state is reported before any network traffic,
// and checks that the directory exists.
func OpenFileStore(path string) (*FileStore, error) {
	if path == "" {
		return nil, &StateError{Path: path, Op: "open", Err: errors.New("empty path")}
	}
	s := &FileStore{path: path}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil, &StateError{Path: path, Op: "open", Err: err}
	} else if !fi.IsDir() {
		return nil, &StateError{Path: path, Op: "open", Err: fmt.Errorf("%s is not a directory", filepath.Dir(path))}
	}
	if _, err := s.Load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path returns the state file's path.
func (s *FileStore) Path() string { return s.path }

// Load reads the current state without taking the lock (a reader sees the
// old or the new file, never a mix, because writers rename).
func (s *FileStore) Load() (SQNState, error) {
	var st SQNState
	f, err := regfile.Open(s.path) // a FIFO is refused, not waited on
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, &StateError{Path: s.path, Op: "read", Err: bare(err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return st, &StateError{Path: s.path, Op: "read", Err: bare(err)}
	}
	if err := st.UnmarshalText(b); err != nil {
		return SQNState{}, &StateError{Path: s.path, Op: "read", Err: err}
	}
	return st, nil
}

// bare drops the path an *fs.PathError repeats: StateError names the file.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path != "" {
		return pe.Err
	}
	return err
}

// Update implements Store. It waits for the lock until ctx is done.
func (s *FileStore) Update(ctx context.Context, fn func(*SQNState) (bool, error)) error {
	unlock, err := lockFile(ctx, s.path+".lock")
	if err != nil {
		if ctx.Err() != nil {
			// Given up, not broken: no StateError (that means "repair me").
			return fmt.Errorf("SQN state file %s: waiting for the lock: %w", s.path, err)
		}
		return &StateError{Path: s.path, Op: "lock", Err: err}
	}
	defer unlock()
	st, err := s.Load()
	if err != nil {
		return err
	}
	changed, err := fn(&st)
	if err != nil || !changed {
		return err
	}
	if err := s.write(&st); err != nil {
		return &StateError{Path: s.path, Op: "write", Err: err}
	}
	return nil
}

// write replaces the state file durably. The caller holds the lock, so
// <path>.tmp belongs to this call; one left by a crashed writer is removed.
func (s *FileStore) write(st *SQNState) (err error) {
	b, err := st.MarshalText()
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// O_EXCL also refuses a symlink planted at tmp.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(s.path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// MemoryStore is a Store in memory: for tests, benchmarks and the lab demo,
// where the SQN state need not outlive the process.
type MemoryStore struct {
	mu sync.Mutex
	st SQNState
}

// NewMemoryStore returns a MemoryStore starting from st.
func NewMemoryStore(st SQNState) *MemoryStore { return &MemoryStore{st: st} }

// Update implements Store.
func (m *MemoryStore) Update(ctx context.Context, fn func(*SQNState) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	changed, err := fn(&st)
	if err == nil && changed {
		m.st = st
	}
	return err
}

// State returns a copy of the current state.
func (m *MemoryStore) State() SQNState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}
