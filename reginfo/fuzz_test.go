package reginfo

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, fails only with its typed errors, and a
// document it accepts survives Marshal → Parse unchanged (so the lab core
// can echo anything a UE could read). Decide and Freshness must not panic.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<reginfo version="0" state="full"/>`))
	f.Add([]byte(`<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1" state="partial"><registration aor="sip:a@b" id="r" state="active"><contact id="c" state="terminated" event="probation" retry-after="5"><uri>sip:a@h</uri></contact></registration></reginfo>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Parse(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		_ = r.Decide("", "sip:a@h")
		for _, reg := range r.Registrations {
			_ = r.Decide(reg.AOR, "sip:a@h")
		}
		_ = r.Freshness(r.Version, true)
		b, err := r.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed document: %v", err)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))): %v\n%s", body, err, b)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip of %q\n got %+v\nwant %+v\n%s", body, back, r, b)
		}
	})
}
