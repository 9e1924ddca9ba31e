package kernel

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/ipsec"
)

func TestParseRecordName(t *testing.T) {
	tests := []struct {
		name  string
		ok    bool
		ns    nsID
		reqid uint32
	}{
		{"sa-4-f0000098-494d0001.json", true, nsID{4, 0xf0000098}, 0x494d0001},
		{"sa-0-0-494dffff.json", true, nsID{0, 0}, 0x494dffff},
		{"sa-4-f0000098-494d0000.json", false, nsID{}, 0},  // below the range
		{"sa-4-f0000098-00000005.json", false, nsID{}, 0},  // foreign reqid
		{"sa-4-f0000098-494d001.json", false, nsID{}, 0},   // not 8 digits
		{"sa-04-f0000098-494d0001.json", false, nsID{}, 0}, // not canonical
		{"sa-4-F0000098-494d0001.json", false, nsID{}, 0},  // not canonical
		{"sa-4-f0000098-494d0001.json.tmp", false, nsID{}, 0},
		{".record-123", false, nsID{}, 0},
		{"sa-4-494d0001.json", false, nsID{}, 0},
		{"sa--4-494d0001.json", false, nsID{}, 0},
		{"sa-+4-1-494d0001.json", false, nsID{}, 0},
		{"sa-10000000000000000-1-494d0001.json", false, nsID{}, 0},
	}
	for _, tt := range tests {
		ns, reqid, ok := parseRecordName(tt.name)
		if ok != tt.ok || ns != tt.ns || reqid != tt.reqid {
			t.Errorf("parseRecordName(%q) = %v, %#x, %t; want %v, %#x, %t", tt.name, ns, reqid, ok, tt.ns, tt.reqid, tt.ok)
		}
	}
}

func TestDecodeRecord(t *testing.T) {
	good := `{"version":1,"reqid":1229783041,"netns":{"path":"/run/netns/ue","dev":4,"ino":4026532000},"pid":42,"start_ticks":1234,"created":"2026-01-02T03:04:05Z","sas":[{"dir":"out","src":"10.77.0.1:5100","dst":"10.77.0.2:5201","spi":8193}]}`
	r, err := decodeRecord([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if r.ReqID != 0x494d0001 || r.PID != 42 || r.Start != 1234 || r.NetNS.Ino != 4026532000 || len(r.SAs) != 1 || r.SAs[0].SPI != 8193 {
		t.Fatalf("decoded %+v", r)
	}
	for _, bad := range []struct{ in, want string }{
		{``, "record"},
		{`{`, "record"},
		{`[]`, "record"},
		{`{"version":2,"reqid":1229783041}`, "version 2"},
		{`{"version":1,"reqid":5}`, "outside imsue's range"},
		{`{"version":1,"reqid":1229783041,"pid":-1}`, "pid -1"},
		{`{"version":1,"reqid":"x"}`, "record"},
		{strings.Repeat(" ", maxRecordSize+1), "exceeds"},
	} {
		if _, err := decodeRecord([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("decodeRecord(%.40q): error %v, want %q", bad.in, err, bad.want)
		}
	}
}

func TestParseStatStart(t *testing.T) {
	// Field 22 is starttime; the command name may hold spaces and ')'.
	tail := " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21\n"
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1234 (imsue)" + tail, 987654, true},
		{"1234 (a b) c)" + tail, 987654, true},
		{"1234 (x)) S 1 2", 0, false},
		{"1234 imsue S 1", 0, false},
		{"1234 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5", 0, false},
	}
	for _, tt := range tests {
		got, err := parseStatStart([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseStatStart(%q) = %d, %v; want %d ok=%t", tt.in, got, err, tt.want, tt.ok)
		}
	}
	own, err := procStart(os.Getpid())
	if err != nil || own == 0 {
		t.Fatalf("procStart(self) = %d, %v", own, err)
	}
	if !alive(os.Getpid(), own) || alive(os.Getpid(), own+1) || alive(0, 0) || alive(1<<30, own) {
		t.Fatal("alive() misjudges: self, reused PID, PID 0 or a PID that does not exist")
	}
}

func TestStoreCreateAllocatesAndIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "imsue")
	s := &store{dir: dir, ns: nsID{Dev: 4, Ino: 0xf00}, nsPath: "/run/netns/ue"}
	set := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACSHA196, unhex(t, exIK+"00000000"), ipsec.EncAESCBC, unhex(t, exCK))

	old := reqidStart
	reqidStart = func() uint32 { return ReqIDMax - ReqIDMin } // start at the top: wraps to ReqIDMin next
	t.Cleanup(func() { reqidStart = old })
	other := &store{dir: dir, ns: nsID{Dev: 4, Ino: 0xbad}} // another namespace's record does not collide
	if r, _, err := other.create(set); err != nil || r != ReqIDMax {
		t.Fatalf("other namespace: reqid %#x, %v", r, err)
	}
	r1, p1, err := s.create(set)
	if err != nil || r1 != ReqIDMax {
		t.Fatalf("first: %#x, %v", r1, err)
	}
	r2, p2, err := s.create(set)
	if err != nil || r2 != ReqIDMin {
		t.Fatalf("second: %#x %v, want the range to wrap to %#x", r2, err, ReqIDMin)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, %v", st.Mode().Perm(), err)
	}
	for _, p := range []string{p1, p2} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("record %s: %v, %v", p, st.Mode().Perm(), err)
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), exIK) || strings.Contains(string(b), exCK) {
			t.Fatalf("record holds a key: %s", b)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Fatalf("%d files in the state dir, want 3 records and no temporary files", len(ents))
	}
	recs, err := s.list()
	if err != nil || len(recs) != 2 {
		t.Fatalf("list: %v, %v", recs, err)
	}
	l := recs[r1]
	if l.rec == nil || l.rec.PID != os.Getpid() || len(l.rec.SAs) != 4 || l.rec.SAs[0].Dst != "10.77.0.2:5201" || !l.owner().Alive {
		t.Fatalf("record %+v", l.rec)
	}
	// A corrupt record is listed, with an owner that is not alive.
	if err := os.WriteFile(p2, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, _ = s.list()
	if l := recs[r2]; l.rec != nil || l.owner().Alive {
		t.Fatalf("corrupt record: %+v", l)
	}
	if err := s.remove(p1); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(p1); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

func TestStoreRefusesSharedDir(t *testing.T) {
	set := ueSet(t, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncNull, nil)
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	s := &store{dir: dir, ns: nsID{1, 2}}
	if _, _, err := s.create(set); err == nil || !strings.Contains(err.Error(), "lets others write") {
		t.Fatalf("create in a 0777 directory: %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	s.dir = link
	if _, _, err := s.create(set); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("create through a symlink: %v", err)
	}
}

func TestRecordJSONHasNoKeys(t *testing.T) {
	set := ueSet(t, "fd77::1", "fd77::2", ipsec.AuthHMACMD596, unhex(t, exIK), ipsec.EncAESCBC, unhex(t, exCK))
	b, err := json.Marshal(newRecord(set, nsID{1, 2}, "", 1, 2, time.Unix(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), exIK) || strings.Contains(string(b), exCK) || !strings.Contains(string(b), `"[fd77::1]:5100"`) {
		t.Fatalf("record %s", b)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"version":1,"reqid":1229783041,"netns":{"path":"/run/netns/ue","dev":4,"ino":4026532000},"pid":42,"start_ticks":1234,"created":"2026-01-02T03:04:05Z","sas":[{"dir":"out","src":"10.77.0.1:5100","dst":"10.77.0.2:5201","spi":8193}]}`))
	f.Add([]byte(`{"version":1,"reqid":5}`))
	f.Add([]byte(`{"version":1,"reqid":1229783041,"sas":null,"created":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err == nil && (!Owned(r.ReqID) || r.Version != recordVersion || r.PID < 0) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseRecordName(f *testing.F) {
	f.Add("sa-4-f0000098-494d0001.json")
	f.Add("sa-0-0-494dffff.json")
	f.Add(".record-1234")
	f.Fuzz(func(t *testing.T, name string) {
		ns, reqid, ok := parseRecordName(name)
		if ok && recordName(ns, reqid) != name {
			t.Fatalf("%q parsed to %v %#x, which formats as %q", name, ns, reqid, recordName(ns, reqid))
		}
	})
}

func FuzzParseStatStart(f *testing.F) {
	f.Add([]byte("1234 (imsue) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21\n"))
	f.Add([]byte("1 (a) b)) R 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStatStart(b) // must not panic
	})
}

// BenchmarkStateRecord is the cost of the crash-safety record of one set:
// allocate a reqid, write and sync the record, link it, then remove it.
func BenchmarkStateRecord(b *testing.B) {
	set := ueSet(b, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACSHA196, unhex(b, exIK+"00000000"), ipsec.EncAESCBC, unhex(b, exCK))
	s := &store{dir: b.TempDir(), ns: nsID{1, 2}}
	b.ReportAllocs()
	for b.Loop() {
		_, path, err := s.create(set)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.remove(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildSet is the translation of one SA set into its eight kernel
// objects.
func BenchmarkBuildSet(b *testing.B) {
	set := ueSet(b, "10.77.0.1", "10.77.0.2", ipsec.AuthHMACSHA196, unhex(b, exIK+"00000000"), ipsec.EncAESCBC, unhex(b, exCK))
	b.ReportAllocs()
	for b.Loop() {
		o, err := buildSet(set, ReqIDMin)
		if err != nil {
			b.Fatal(err)
		}
		o.wipe()
	}
}
