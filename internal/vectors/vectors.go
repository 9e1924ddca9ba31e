// Package vectors is the one home of the project's standard test vectors:
// the MILENAGE (TS 35.208), HTTP Digest / Digest AKA (RFC 2617, RFC 3310,
// RFC 4169) and UICC (pySim, TS 23.003 §13) vectors, embedded byte for
// byte as testdata/*_vectors.json (each file's notes say where its values
// come from and how the derived ones were computed) and handed out
// decoded: hex becomes fixed-size arrays or byte slices, so a test compares
// what the code under test computes with the published value directly.
//
// It is test support only: import it from _test.go files and from
// test-helper packages (such as cards/internal/akatest), never from code
// that ends up in a binary. TestOnlyTestsImport enforces this.
//
// The files are embedded, so a malformed one is a programming error, not
// an input error: the accessors panic with a message naming the file, the
// vector and the field. TestVectorsDecode decodes everything on every test
// run, so such a panic never first shows up in someone else's test.
//
// Every call decodes afresh and returns values the caller owns: a test may
// modify them (flip a bit of an AUTN, say) without affecting another test.
package vectors

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

var (
	//go:embed testdata/milenage_vectors.json
	milenageJSON []byte
	//go:embed testdata/digest_vectors.json
	digestJSON []byte
	//go:embed testdata/uicc_vectors.json
	uiccJSON []byte
)

// Milenage returns the 15 TS 35.208 test sets of milenage_vectors.json, in
// the file's order (sets 1 to 14, then 19).
func Milenage() []MilenageSet {
	sets, _, err := decodeMilenage(milenageJSON)
	must(err)
	return sets
}

// MilenageExtra returns the extra MILENAGE vectors of milenage_vectors.json
// (libosmocore's), in the file's order.
func MilenageExtra() []ExtraVector {
	_, extra, err := decodeMilenage(milenageJSON)
	must(err)
	return extra
}

// Digest returns the vectors of digest_vectors.json, in the file's order.
func Digest() []DigestVector {
	v, err := decodeDigest(digestJSON)
	must(err)
	return v
}

// UICC returns the contents of uicc_vectors.json.
func UICC() UICCVectors {
	v, err := decodeUICC(uiccJSON)
	must(err)
	return v
}

func must(err error) {
	if err != nil {
		panic("internal/vectors: embedded file is malformed: " + err.Error())
	}
}

// unmarshalStrict decodes one JSON document and refuses fields the target
// does not know: a field added to the spec file must be given a home here
// (or be listed as ignored) rather than silently dropped.
func unmarshalStrict(file string, data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: data after the JSON document", file)
	}
	return nil
}

// fields decodes the hex fields of one vector. It keeps the first error,
// which names the vector and the field, so that a vector's decoding reads
// as a list of assignments with one check at the end.
type fields struct {
	where string // file and vector, e.g. `milenage_vectors.json test_sets[3] "TS 35.208 test set 4"`
	err   error
}

func newFields(file, list string, i int, name string) *fields {
	return &fields{where: fmt.Sprintf("%s %s[%d] %q", file, list, i, name)}
}

func (f *fields) fail(field string, err error) {
	if f.err == nil {
		f.err = fmt.Errorf("%s: field %s: %w", f.where, field, err)
	}
}

var errMissing = errors.New("missing")

// fixed decodes the required hex field s into dst, which it must fill
// exactly.
func (f *fields) fixed(dst []byte, field, s string) {
	if s == "" {
		f.fail(field, errMissing)
		return
	}
	b, err := hex.DecodeString(s)
	switch {
	case err != nil:
		f.fail(field, err) // names the bad character, not the value
	case len(b) != len(dst):
		f.fail(field, fmt.Errorf("%d bytes, want %d", len(b), len(dst)))
	default:
		copy(dst, b)
	}
}

// optFixed is fixed for a field that may be absent (nil); it reports
// whether it was present.
func (f *fields) optFixed(dst []byte, field string, s *string) bool {
	if s == nil {
		return false
	}
	f.fixed(dst, field, *s)
	return true
}

// bytes decodes the hex field s, of any length from min bytes on.
func (f *fields) bytes(field, s string, min int) []byte {
	b, err := hex.DecodeString(s)
	switch {
	case err != nil:
		f.fail(field, err)
	case len(b) < min:
		f.fail(field, fmt.Errorf("%d bytes, want at least %d", len(b), min))
	}
	return b
}

// text checks a required text field.
func (f *fields) text(field, s string) string {
	if s == "" {
		f.fail(field, errMissing)
	}
	return s
}

// md5Hex checks a field holding an MD5 result as lowercase hex, the form
// in which HTTP Digest puts it on the wire (RFC 2617 §3.2.2.1), and returns
// it as text; "" (absent) stays "".
func (f *fields) md5Hex(field, s string) string {
	if s == "" {
		return ""
	}
	b, err := hex.DecodeString(s)
	switch {
	case err != nil:
		f.fail(field, err)
	case len(b) != 16:
		f.fail(field, fmt.Errorf("%d bytes, want 16", len(b)))
	case hex.EncodeToString(b) != s:
		f.fail(field, errors.New("not lowercase hex"))
	}
	return s
}
