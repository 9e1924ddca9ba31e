package uicc

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// AppKind classifies an application by its AID.
type AppKind int

const (
	AppOther AppKind = iota
	AppUSIM
	AppISIM
)

func (k AppKind) String() string {
	switch k {
	case AppUSIM:
		return "USIM"
	case AppISIM:
		return "ISIM"
	}
	return "other"
}

// KindOf classifies aid by the 3GPP application code after the RID.
func KindOf(aid []byte) AppKind {
	switch {
	case bytes.HasPrefix(aid, ISIMPrefix):
		return AppISIM
	case bytes.HasPrefix(aid, USIMPrefix):
		return AppUSIM
	}
	return AppOther
}

// Application is one record of EF.DIR (TS 102 221 §13.1): an application
// template 61 holding its AID (4F) and optional label (50).
type Application struct {
	AID   []byte
	Label string
}

// Kind classifies the application.
func (a Application) Kind() AppKind { return KindOf(a.AID) }

// MarshalJSON-friendly view is left to callers; String gives "ISIM a000…".
func (a Application) String() string {
	s := a.Kind().String() + " " + hex.EncodeToString(a.AID)
	if a.Label != "" {
		s += " (" + a.Label + ")"
	}
	return s
}

// ParseDIRRecord decodes one EF.DIR record. An unused record (all FF) gives
// ok == false and no error.
func ParseDIRRecord(rec []byte) (app Application, ok bool, err error) {
	if empty(rec) {
		return Application{}, false, nil
	}
	tlvs, err := parseTLVs(rec)
	if err != nil {
		return Application{}, false, malformed("EF.DIR record", "%v", err)
	}
	if len(tlvs) == 0 || tlvs[0].tag != 0x61 {
		return Application{}, false, malformed("EF.DIR record", "no application template 61")
	}
	inner, err := parseTLVs(tlvs[0].value)
	if err != nil {
		return Application{}, false, malformed("EF.DIR record", "template 61: %v", err)
	}
	for _, t := range inner {
		switch t.tag {
		case 0x4F:
			if len(t.value) < 5 || len(t.value) > 16 {
				return Application{}, false, malformed("EF.DIR record", "AID of %d bytes, want 5 to 16", len(t.value))
			}
			app.AID = bytes.Clone(t.value)
		case 0x50:
			if utf8.Valid(t.value) {
				app.Label = string(t.value)
			}
		}
	}
	if app.AID == nil {
		return Application{}, false, malformed("EF.DIR record", "no AID (tag 4F)")
	}
	return app, true, nil
}

// EncodeDIRRecord encodes app as an EF.DIR record padded with FF to size
// bytes (size 0: no padding).
func EncodeDIRRecord(app Application, size int) ([]byte, error) {
	if len(app.AID) < 5 || len(app.AID) > 16 {
		return nil, fmt.Errorf("EF.DIR: AID of %d bytes, want 5 to 16", len(app.AID))
	}
	var inner []byte
	inner = appendTLV(inner, 0x4F, app.AID)
	if app.Label != "" {
		inner = appendTLV(inner, 0x50, []byte(app.Label))
	}
	rec := appendTLV(nil, 0x61, inner)
	if size > 0 && len(rec) > size {
		return nil, fmt.Errorf("EF.DIR: record of %d bytes exceeds %d", len(rec), size)
	}
	return pad(rec, size), nil
}
