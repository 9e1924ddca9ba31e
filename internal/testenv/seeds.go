package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// AddSeedFiles adds the content of every file matching the glob pattern to
// f's seed corpus, after the arguments lead (for a fuzz target that takes
// more than the message: AddSeedFiles(f, pattern, uint8(0))). Seeds run in
// plain go test. A pattern that matches no file fails f: a wrong path must
// not leave a target silently without its seeds.
func AddSeedFiles(f *testing.F, pattern string, lead ...any) {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		f.Fatalf("seed files %s: %v", pattern, err)
	}
	if len(files) == 0 {
		f.Fatalf("no seed files match %s", pattern)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(append([]any(nil), lead...), data)...)
	}
}
