package vcard

import (
	"fmt"

	"github.com/imsue/imsue/cards/uicc"
)

type fileKind int

const (
	kindMF fileKind = iota
	kindADF
	kindTransparent
	kindLinear
)

// file is one node of the card's file system.
type file struct {
	fid      uint16
	name     string
	kind     fileKind
	aid      []byte   // ADF
	data     []byte   // transparent EF
	records  [][]byte // linear fixed EF, each recLen bytes
	recLen   int
	needPIN  bool // reading needs PIN1 verified
	parent   *file
	children []*file
}

func (f *file) isDF() bool { return f.kind == kindMF || f.kind == kindADF }

func (f *file) add(c *file) *file {
	c.parent = f
	f.children = append(f.children, c)
	return c
}

func (f *file) child(fid uint16) *file {
	for _, c := range f.children {
		if c.fid == fid {
			return c
		}
	}
	return nil
}

func (f *file) fcp() []byte {
	var p uicc.FCP
	var aid []byte
	switch f.kind {
	case kindMF:
		p = uicc.FCP{DF: true, FID: f.fid}
	case kindADF:
		p, aid = uicc.FCP{DF: true}, f.aid
	case kindTransparent:
		p = uicc.FCP{Structure: uicc.StructTransparent, FID: f.fid, Size: len(f.data)}
	case kindLinear:
		p = uicc.FCP{Structure: uicc.StructLinearFixed, FID: f.fid, RecordLen: f.recLen, NumRecords: len(f.records)}
	}
	b, err := uicc.EncodeFCP(p, aid)
	if err != nil {
		return nil // sizes were checked when the file system was built
	}
	return b
}

func transparent(name string, fid uint16, data []byte, needPIN bool) *file {
	return &file{fid: fid, name: name, kind: kindTransparent, data: data, needPIN: needPIN}
}

// linear builds a linear fixed EF; encode returns each record padded to the
// record length, which is the longest value plus spare room, as cards are
// personalised with room to grow. One spare (empty) record follows.
func linear(name string, fid uint16, needPIN bool, values []string,
	encode func(v string, size int) ([]byte, error), minLen int) (*file, error) {
	recLen := minLen
	for _, v := range values {
		b, err := encode(v, 0)
		if err != nil {
			return nil, err
		}
		recLen = max(recLen, len(b)+8)
	}
	recLen = min(recLen, 255)
	f := &file{fid: fid, name: name, kind: kindLinear, recLen: recLen, needPIN: needPIN}
	for _, v := range values {
		b, err := encode(v, recLen)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		f.records = append(f.records, b)
	}
	spare := make([]byte, recLen)
	for i := range spare {
		spare[i] = 0xFF
	}
	f.records = append(f.records, spare)
	return f, nil
}
