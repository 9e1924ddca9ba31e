//go:build linux

package netlab

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestCounter(t *testing.T) {
	stat, err := ParseXfrmStat([]byte("XfrmInError\t0\nXfrmInTmplMismatch\t3\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		want uint64
		ok   bool
	}{
		{"XfrmInTmplMismatch", 3, true},
		{"XfrmInError", 0, true},
		{"XfrmOutNoStates", 0, false}, // absent: an error, not a zero
	} {
		v, err := counter(stat, tt.name)
		if (err == nil) != tt.ok || v != tt.want {
			t.Errorf("counter(%s) = %d, %v; want %d, ok %v", tt.name, v, err, tt.want, tt.ok)
		}
	}
}

func TestParseTsharkFields(t *testing.T) {
	for _, tt := range []struct {
		name string
		out  string
		n    int
		want [][]string
	}{
		{"two frames", "1\t0x00010001\t1\n2\t\t\n", 3, [][]string{{"1", "0x00010001", "1"}, {"2", "", ""}}},
		{"no final newline", "7\tTrue", 2, [][]string{{"7", "True"}}},
		{"short line", "1\t0x1\n2\n", 2, nil},
		{"long line", "1\t2\t3\n", 2, nil},
		{"empty output", "", 2, nil},
	} {
		got, err := ParseTsharkFields([]byte(tt.out), tt.n)
		if (err == nil) != (tt.want != nil) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestTsharkValues(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []byte
		ok   bool
	}{
		{"52:45:47", []byte("REG"), true},
		{"524547", []byte("REG"), true},
		{"", []byte{}, true},
		{"52:4", nil, false},
		{"zz", nil, false},
	} {
		got, err := TsharkBytes(tt.in)
		if (err == nil) != tt.ok || (tt.ok && !bytes.Equal(got, tt.want)) {
			t.Errorf("TsharkBytes(%q) = %x, %v", tt.in, got, err)
		}
	}
	for in, want := range map[string]bool{"1": true, "True": true, "0": false, "False": false, "": false} {
		if TsharkTrue(in) != want {
			t.Errorf("TsharkTrue(%q) != %v", in, want)
		}
	}
}

func TestWritePCAPFile(t *testing.T) {
	pkts := []Packet{{Time: time.Unix(1700000000, 0), Data: []byte{1, 2, 3}}}
	var want bytes.Buffer
	if err := WritePCAP(&want, pkts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "capture.pcap")
	if err := WritePCAPFile(path, pkts); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("file %x, %v; want %x", got, err, want.Bytes())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if err := WritePCAPFile(filepath.Join(t.TempDir(), "missing", "x.pcap"), pkts); err == nil {
		t.Fatal("WritePCAPFile into a missing directory succeeded")
	}
}

func FuzzParseTsharkFields(f *testing.F) {
	f.Add([]byte("1\t0x00010001\t1\t52:45:47\t\n2\t\t\t\t\n"), 5)
	f.Add([]byte("3\t10.77.0.1\t\t0x00010003\tTrue\t\t53:49:50\n"), 7)
	f.Fuzz(func(t *testing.T, out []byte, n int) {
		lines, err := ParseTsharkFields(out, n)
		for _, l := range lines {
			if len(l) != n {
				t.Fatalf("line of %d fields, want %d", len(l), n)
			}
		}
		if err == nil && len(lines) == 0 {
			t.Fatal("no lines and no error")
		}
	})
}

// TestHostCases: every case directory under EnvOut/kind is visited, in
// order, with its expect.json decoded; other kinds are not.
func TestHostCases(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EnvOut, root)
	t.Setenv(EnvRun, "")
	for path, body := range map[string]string{
		"esp/ipv4_a/expect.json":   `{"n": 1}`,
		"esp/ipv6_b/expect.json":   `{"n": 2}`,
		"other/ipv4_c/expect.json": `{"n": 3}`,
	} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type expect struct{ N int }
	var got []string
	HostCases(t, "esp", "TestProducer", func(e expect) bool { return e.N != 0 }, func(t *testing.T, dir string, want expect) {
		got = append(got, filepath.Base(dir)+"="+string(rune('0'+want.N)))
	})
	if want := []string{"ipv4_a=1", "ipv6_b=2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("visited %q, want %q", got, want)
	}
}
