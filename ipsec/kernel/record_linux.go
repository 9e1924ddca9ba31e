package kernel

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imsue/imsue/ipsec"
)

// nsID identifies a network namespace while it exists: the device and inode
// of its nsfs file (what `stat -L /proc/self/ns/net` shows).
type nsID struct{ Dev, Ino uint64 }

func (n nsID) String() string { return fmt.Sprintf("%x-%x", n.Dev, n.Ino) }

// record is the state record of one SA set (see the package documentation).
// It never holds keys.
type record struct {
	Version int        `json:"version"`
	ReqID   uint32     `json:"reqid"`
	NetNS   nsRecord   `json:"netns"`
	PID     int        `json:"pid"`
	Start   uint64     `json:"start_ticks"` // field 22 of /proc/PID/stat
	Created time.Time  `json:"created"`
	SAs     []saRecord `json:"sas"`
}

type nsRecord struct {
	Path string `json:"path,omitempty"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

type saRecord struct {
	Dir string `json:"dir"`
	Src string `json:"src"`
	Dst string `json:"dst"`
	SPI uint32 `json:"spi"`
}

const recordVersion = 1

// maxRecordSize bounds what decodeRecord reads: a record is a few hundred bytes.
const maxRecordSize = 64 << 10

func newRecord(set *ipsec.SASet, ns nsID, nsPath string, pid int, start uint64, now time.Time) *record {
	r := &record{
		Version: recordVersion,
		NetNS:   nsRecord{Path: nsPath, Dev: ns.Dev, Ino: ns.Ino},
		PID:     pid,
		Start:   start,
		Created: now.UTC().Truncate(time.Second),
	}
	for i := range set.SAs {
		sa := &set.SAs[i]
		r.SAs = append(r.SAs, saRecord{Dir: sa.Dir.String(), Src: sa.Src.String(), Dst: sa.Dst.String(), SPI: sa.SPI})
	}
	return r
}

// decodeRecord parses a state record. It checks what Flush relies on: the
// version and a reqid in imsue's range.
func decodeRecord(b []byte) (*record, error) {
	if len(b) > maxRecordSize {
		return nil, fmt.Errorf("record of %d bytes exceeds %d", len(b), maxRecordSize)
	}
	var r record
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("record version %d, want %d", r.Version, recordVersion)
	}
	if !Owned(r.ReqID) {
		return nil, fmt.Errorf("record reqid 0x%08x outside imsue's range", r.ReqID)
	}
	if r.PID < 0 {
		return nil, fmt.Errorf("record pid %d", r.PID)
	}
	return &r, nil
}

// recordName is the file name of the record of reqid in namespace ns.
func recordName(ns nsID, reqid uint32) string {
	return fmt.Sprintf("sa-%s-%08x.json", ns, reqid)
}

// parseRecordName is the inverse of recordName.
func parseRecordName(name string) (ns nsID, reqid uint32, ok bool) {
	rest, found := strings.CutPrefix(name, "sa-")
	if !found {
		return nsID{}, 0, false
	}
	rest, found = strings.CutSuffix(rest, ".json")
	if !found {
		return nsID{}, 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 || len(parts[2]) != 8 {
		return nsID{}, 0, false
	}
	var vals [3]uint64
	for i, p := range parts {
		if p == "" || strings.HasPrefix(p, "+") {
			return nsID{}, 0, false
		}
		v, err := strconv.ParseUint(p, 16, 64)
		if err != nil {
			return nsID{}, 0, false
		}
		vals[i] = v
	}
	if vals[2] > 0xffffffff || !Owned(uint32(vals[2])) {
		return nsID{}, 0, false
	}
	ns = nsID{Dev: vals[0], Ino: vals[1]}
	if recordName(ns, uint32(vals[2])) != name { // canonical form only
		return nsID{}, 0, false
	}
	return ns, uint32(vals[2]), true
}

// store keeps the state records of one namespace in a directory.
type store struct {
	dir    string
	ns     nsID
	nsPath string
}

// create allocates a reqid that no record of this namespace holds and
// writes set's record under it, atomically: the record is written to a
// temporary file, synced, then hard-linked to its final name, which fails if
// another process took that reqid meanwhile (then the next reqid is tried).
func (s *store) create(set *ipsec.SASet) (reqid uint32, path string, err error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return 0, "", fmt.Errorf("state directory: %w", err)
	}
	if err := checkPrivateDir(s.dir); err != nil {
		return 0, "", err
	}
	start, err := procStart(os.Getpid())
	if err != nil {
		return 0, "", fmt.Errorf("own start time: %w", err)
	}
	rec := newRecord(set, s.ns, s.nsPath, os.Getpid(), start, time.Now())
	tmp, err := os.CreateTemp(s.dir, ".record-*")
	if err != nil {
		return 0, "", fmt.Errorf("state record: %w", err)
	}
	defer os.Remove(tmp.Name())
	n := ReqIDMax - ReqIDMin + 1
	first := reqidStart() % n
	for i := uint32(0); i < n; i++ {
		reqid = ReqIDMin + (first+i)%n
		rec.ReqID = reqid
		b, err := json.Marshal(rec)
		if err != nil {
			tmp.Close()
			return 0, "", fmt.Errorf("state record: %w", err)
		}
		if err := rewrite(tmp, b); err != nil {
			tmp.Close()
			return 0, "", fmt.Errorf("state record %s: %w", tmp.Name(), err)
		}
		path = filepath.Join(s.dir, recordName(s.ns, reqid))
		err = os.Link(tmp.Name(), path)
		if err == nil {
			tmp.Close()
			syncDir(s.dir)
			return reqid, path, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			tmp.Close()
			return 0, "", fmt.Errorf("state record: %w", err)
		}
	}
	tmp.Close()
	return 0, "", fmt.Errorf("state records in %s: all %d reqids of namespace %s in use", s.dir, n, s.ns)
}

// checkPrivateDir refuses a state directory that another user could write
// to: whoever can plant or delete records there can make Flush keep or
// remove sets, and block reqids.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s: not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("state directory %s: owned by uid %d, not by this process (uid %d)", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("state directory %s: mode %v lets others write to it", dir, fi.Mode().Perm())
	}
	return nil
}

func rewrite(f *os.File, b []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// remove deletes a record; a record already gone is not an error.
func (s *store) remove(path string) error {
	if path == "" {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state record: %w", err)
	}
	syncDir(s.dir)
	return nil
}

// pathOf is the path of the record of reqid in this namespace.
func (s *store) pathOf(reqid uint32) string { return filepath.Join(s.dir, recordName(s.ns, reqid)) }

// loaded is a record found on disk; rec is nil when the file is unreadable
// or corrupt (it is then treated as an owner that is gone).
type loaded struct {
	path string
	rec  *record
}

// list returns this namespace's records by reqid. A missing directory
// holds no records.
func (s *store) list() (map[uint32]loaded, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[uint32]loaded{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	out := map[uint32]loaded{}
	for _, e := range ents {
		ns, reqid, ok := parseRecordName(e.Name())
		if !ok || ns != s.ns || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		l := loaded{path: path}
		if b, err := readLimited(path, maxRecordSize); err == nil {
			if r, err := decodeRecord(b); err == nil && r.ReqID == reqid {
				l.rec = r
			}
		}
		out[reqid] = l
	}
	return out, nil
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max+1))
}

// owner turns a loaded record into the Owner List reports.
func (l loaded) owner() *Owner {
	if l.rec == nil {
		return &Owner{}
	}
	return &Owner{PID: l.rec.PID, Alive: alive(l.rec.PID, l.rec.Start), Created: l.rec.Created}
}

// alive reports whether pid still runs and is the process that started at
// start (so that a reused PID does not keep a dead owner's set alive).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	s, err := procStart(pid)
	return err == nil && s == start
}

// procStart reads the start time (clock ticks since boot) of pid.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatStart(b)
}

// parseStatStart extracts field 22 (starttime) from a /proc/PID/stat line.
// The command name (field 2) may contain spaces and parentheses, so fields
// are counted after its last ')'.
func parseStatStart(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	const idx = 22 - 3 // fields after the name start at field 3 (state)
	if len(f) <= idx {
		return 0, fmt.Errorf("stat: %d fields after the name, need %d", len(f), idx+1)
	}
	return strconv.ParseUint(f[idx], 10, 64)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// reqidStart picks where the search for a free reqid begins; random, so that
// concurrent processes rarely contend. Tests replace it.
var reqidStart = randUint32

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}
