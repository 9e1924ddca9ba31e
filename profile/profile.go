// Package profile reads imsue's subscriber profile: a small YAML file with
// the subscriber's identities, its MILENAGE keys (or the card that holds
// them) and where the software ISIM keeps its SQN state.
//
//	imsi: "001010123456789"   # identities are derived from it (TS 23.003 §13) when absent
//	mnc_length: 2             # needed to derive them: the IMSI does not say where the MNC ends
//	impi: 001010123456789@ims.mnc001.mcc001.3gppnetwork.org   # optional
//	impu: [sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org]  # optional; a list or one URI
//	domain: ims.mnc001.mcc001.3gppnetwork.org                 # optional
//	k: 465b5ce8b199b49faa5f0a2ee238a6bc
//	opc: cd63cb71954a9f4e48a5994e37a02baf   # or op: (exactly one)
//	sqn_state: ue1.sqn        # optional; relative to the profile's folder; default <name>.sqn
//	card: ""                  # "pcsc" or "pcsc:<reader substring>": a real card instead
//	password: ""              # optional: for cores that use plain MD5 digest instead of AKA
//
// Every validation error is a *Error naming the file and the field, and never
// quotes a secret. The secrets (K, OP, OPc, password) are held in types that
// print as "[redacted]".
package profile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imsue/imsue/internal/regfile"
	"github.com/imsue/imsue/isim"
)

// Error is a profile that cannot be read or is not valid. Field is the YAML
// key at fault, empty when the problem is the file as a whole.
type Error struct {
	Path  string
	Field string
	Err   error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("profile %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("profile %s: %s: %v", e.Path, e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Secret is a string that formats as "[redacted]" (the digest password).
type Secret string

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, "[redacted]") }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Card values: CardNone uses the software ISIM with the profile's keys.
const (
	CardNone = ""
	CardPCSC = "pcsc"
)

// Profile is a validated subscriber profile.
type Profile struct {
	// Path is the file as given to Load (or to Parse); Name is its base
	// name without .yaml/.yml, from which the default SQN state is named.
	Path, Name string
	// Identity is the one the profile gives, each part it leaves out
	// derived from the IMSI per TS 23.003 §13 (IMSI empty if not given).
	Identity isim.Identity
	// MNCLength is 2 or 3, or 0 when the profile does not give it.
	MNCLength int
	// HasKeys says K and OPc are set: required for the software ISIM.
	HasKeys bool
	K       isim.Key
	// OPc is given, or derived from OP (OPGiven says which).
	OPc     isim.Key
	OPGiven bool
	// SQNState is the path of the software ISIM's state file, resolved
	// against the profile's folder.
	SQNState string
	// Card is CardNone, CardPCSC or "pcsc:<reader substring>".
	Card string
	// Password is for IMS cores that use plain MD5 digest; may be empty.
	Password Secret
	// IMEI is the device's IMEI (15 digits), from which the Contact's
	// +sip.instance is built (TS 23.003 §13.8); may be empty.
	IMEI string
	// Warnings are problems that do not stop the profile from working
	// (a file readable by group or others); the caller shows them.
	Warnings []string
}

// InstanceURN is the IMEI URN of TS 23.003 §13.8 (RFC 7254),
// urn:gsma:imei:TAC-SNR-0, or "" without an IMEI.
func (p *Profile) InstanceURN() string {
	if p.IMEI == "" {
		return ""
	}
	return "urn:gsma:imei:" + p.IMEI[:8] + "-" + p.IMEI[8:14] + "-0"
}

// CardReader returns the reader substring of a "pcsc:<reader>" card, ""
// for plain "pcsc" or no card.
func (p *Profile) CardReader() string {
	r, _ := strings.CutPrefix(p.Card, CardPCSC+":")
	if r == p.Card {
		return ""
	}
	return r
}

// String describes the profile without its secrets.
func (p *Profile) String() string {
	if p == nil {
		return "profile <nil>"
	}
	keys := "no keys"
	if p.HasKeys {
		keys = "k and opc set"
		if p.OPGiven {
			keys = "k and op set"
		}
	}
	card := "software ISIM, SQN state " + p.SQNState
	if p.Card != CardNone {
		card = "card " + p.Card
	}
	return fmt.Sprintf("profile %s (impi %s, %d impu, domain %s, %s, %s)",
		p.Path, p.Identity.IMPI, len(p.Identity.IMPUs), p.Identity.Domain, keys, card)
}

// GoString is String: %#v must not print the keys either.
func (p *Profile) GoString() string { return p.String() }

// Format writes String whatever the verb, so that no fmt verb prints the
// fields one by one.
func (p *Profile) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }

// maxSize bounds the profile file; real ones are a few hundred bytes.
const maxSize = 64 << 10

// Load reads and validates the profile at path. A profile that group or
// others can read gets a warning in Warnings (it holds secret keys), not an
// error, so that a lab on a shared folder still works.
func Load(path string) (*Profile, error) {
	f, err := regfile.Open(path) // a FIFO is refused, not waited on
	if err != nil {
		return nil, &Error{Path: path, Err: unwrapPathError(err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &Error{Path: path, Err: unwrapPathError(err)}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, &Error{Path: path, Err: unwrapPathError(err)}
	}
	p, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		what := ""
		if p.HasKeys || p.K != (isim.Key{}) || p.Password != "" {
			what = " and holds secrets"
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf(
			"profile %s is readable by group or others (mode %04o)%s: chmod 600 %s",
			path, perm, what, path))
	}
	return p, nil
}

// unwrapPathError drops the path that *os.PathError repeats, since Error
// already names the file.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// Parse validates a profile held in memory; path names it in errors and
// anchors a relative sqn_state. It touches no file.
func Parse(data []byte, path string) (*Profile, error) {
	if len(data) > maxSize {
		return nil, &Error{Path: path, Err: fmt.Errorf("%d bytes, larger than any profile (limit %d)", len(data), maxSize)}
	}
	raw, err := decode(data)
	if err != nil {
		if fe, ok := err.(*fieldError); ok {
			return nil, &Error{Path: path, Field: fe.field, Err: fe.err}
		}
		return nil, &Error{Path: path, Err: err}
	}
	p, err := validate(raw, path)
	if err != nil {
		if fe, ok := err.(*fieldError); ok {
			return nil, &Error{Path: path, Field: fe.field, Err: fe.err}
		}
		return nil, &Error{Path: path, Err: err}
	}
	return p, nil
}

// fieldError is an error about one field, before the path is known.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }

func fieldErr(field, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

// name is the profile's base name without a YAML extension.
func name(path string) string {
	base := filepath.Base(path)
	for _, ext := range []string{".yaml", ".yml"} {
		if n, ok := strings.CutSuffix(base, ext); ok && n != "" {
			return n
		}
	}
	return base
}
