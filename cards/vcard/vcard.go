// Package vcard is a virtual UICC: a card with an ISIM and a USIM (or a
// USIM only) whose AKA answers come from any isim.Authenticator, served to
// pcscd through the vpcd virtual reader (package vsmartcard-vpcd) so that
// the real PC/SC path can be tested without hardware.
//
// It answers the way real cards do, because that is what the UE side must
// cope with: an ATR with the card's protocol, MF/EF.DIR/ADF file system,
// SELECT (by FID, AID, path), READ BINARY, READ RECORD, VERIFY PIN,
// AUTHENTICATE and GET RESPONSE; under T=0, 61xx after case-4 commands and
// 6Cxx when Le is not the length the card has; PIN and selection state
// reset on power-up. It needs no cgo.
package vcard

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/cards/uicc"
	"github.com/imsue/imsue/isim"
)

// Config is what the card holds and how it behaves.
type Config struct {
	// Identity personalises EF.IMPI, EF.DOMAIN, EF.IMPU (ISIM) and EF.IMSI
	// (USIM). IMSI is required; the ISIM files may be empty.
	Identity isim.Identity
	// MNCLength goes into EF.AD (2 or 3).
	MNCLength int
	// Auth answers AUTHENTICATE in both applications.
	Auth isim.Authenticator
	// USIMOnly leaves out the ISIM (EF.DIR entry and ADF).
	USIMOnly bool
	// T0GetResponse makes the card a T=0 card that answers every command
	// carrying data with 61xx, the data left for GET RESPONSE, even when Le
	// follows the data. (Any T=0 card answers 61xx when there is no Le.)
	T0GetResponse bool
	// T0WrongLe makes the card a T=0 card that answers 6Cxx (xx = the
	// length it has) when Le asks for more than that.
	T0WrongLe bool
	// PIN is PIN1 (4 to 8 digits); empty means the PIN is disabled.
	PIN []byte
	// PINTries is the retry counter's maximum and start value (default 3).
	PINTries int
	// ICCID personalises EF.ICCID (default 8999 + the IMSI's digits).
	ICCID string
	// PCSCF fills the ISIM's EF.P-CSCF and sets IST service 1.
	PCSCF []string
	// NoQuickACK leaves TCP_QUICKACK alone on the vpcd connection: only to
	// measure what it saves (see Serve).
	NoQuickACK bool
}

// Stats counts what the card saw, for tests that must prove a path ran.
type Stats struct {
	APDUs         int // command APDUs answered
	GetResponses  int // GET RESPONSE commands
	Sent61        int // 61xx answers
	Sent6C        int // 6Cxx answers
	Authenticates int // AUTHENTICATE commands that reached the Authenticator
	PowerUps      int // power-on and reset controls
}

// Card is a virtual UICC. It implements apdu.Transport, so the UE side can
// also talk to it in process, without pcscd.
type Card struct {
	mu    sync.Mutex
	cfg   Config
	atr   []byte
	mf    *file
	adfs  []*file
	ctx   context.Context
	stats Stats

	powered chan struct{} // closed on the first power-up

	// state that a power cycle resets
	curDF, curEF *file
	curADF       *file
	verified     bool
	pending      []byte // data waiting for GET RESPONSE

	tries int // survives power cycles, as on a real card
	rsp   []byte
}

// New personalises a card. It keeps its own copies of cfg's slices: the
// caller may wipe cfg.PIN afterwards.
func New(cfg Config) (*Card, error) {
	cfg.PIN = bytes.Clone(cfg.PIN)
	cfg.PCSCF = append([]string(nil), cfg.PCSCF...)
	cfg.Identity.IMPUs = append([]string(nil), cfg.Identity.IMPUs...)
	if cfg.Auth == nil {
		return nil, errors.New("vcard: no Authenticator")
	}
	if err := isim.ValidateIMSI(cfg.Identity.IMSI); err != nil {
		return nil, fmt.Errorf("vcard: IMSI: %w", err)
	}
	if cfg.MNCLength != 2 && cfg.MNCLength != 3 {
		return nil, fmt.Errorf("vcard: MNC length %d, want 2 or 3", cfg.MNCLength)
	}
	if len(cfg.PIN) > 0 {
		if _, err := uicc.PINBlock(cfg.PIN); err != nil {
			return nil, fmt.Errorf("vcard: %w", err)
		}
	}
	if cfg.PINTries == 0 {
		cfg.PINTries = 3
	}
	if cfg.PINTries < 1 || cfg.PINTries > 15 {
		return nil, fmt.Errorf("vcard: PIN tries %d, want 1 to 15", cfg.PINTries)
	}
	if cfg.ICCID == "" {
		cfg.ICCID = "8999" + cfg.Identity.IMSI[:min(15, len(cfg.Identity.IMSI))]
	}
	c := &Card{cfg: cfg, ctx: context.Background(), tries: cfg.PINTries, powered: make(chan struct{})}
	if err := c.build(); err != nil {
		return nil, err
	}
	c.atr = makeATR(cfg.T0GetResponse || cfg.T0WrongLe)
	c.reset()
	return c, nil
}

// AIDs of the card's applications, as in the pySim samples.
var (
	usimAID = []byte{0xA0, 0x00, 0x00, 0x00, 0x87, 0x10, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x89, 0x07, 0x09, 0x00, 0x00}
	isimAID = []byte{0xA0, 0x00, 0x00, 0x00, 0x87, 0x10, 0x04, 0xFF, 0xFF, 0xFF, 0xFF, 0x89, 0x07, 0x09, 0x00, 0x00}
)

func (c *Card) build() error {
	id := c.cfg.Identity
	c.mf = &file{fid: uicc.FIDMF, name: "MF", kind: kindMF}
	apps := []uicc.Application{{AID: usimAID, Label: "USim1"}}
	if !c.cfg.USIMOnly {
		apps = append(apps, uicc.Application{AID: isimAID, Label: "ISim1"})
	}
	var dirVals []string
	for i := range apps {
		dirVals = append(dirVals, string(rune('0'+i)))
	}
	dir, err := linear("EF.DIR", uicc.FIDDIR, false, dirVals, func(v string, size int) ([]byte, error) {
		return uicc.EncodeDIRRecord(apps[v[0]-'0'], size)
	}, 0)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	c.mf.add(dir)
	iccid, err := uicc.EncodeICCID(c.cfg.ICCID)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	c.mf.add(transparent("EF.ICCID", uicc.FIDICCID, iccid, false))

	usim := &file{name: "ADF.USIM", kind: kindADF, aid: usimAID}
	imsi, err := uicc.EncodeIMSI(id.IMSI)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	usim.add(transparent("EF.IMSI", uicc.FIDIMSI, imsi, true))
	usim.add(transparent("EF.AD", uicc.FIDAD, uicc.EncodeAD(c.cfg.MNCLength), false))
	ust, _ := uicc.EncodeServices(8, 27) // GSM access: the USIM returns Kc
	usim.add(transparent("EF.UST", uicc.FIDUST, ust, false))
	c.mf.add(usim)
	c.adfs = append(c.adfs, usim)
	if c.cfg.USIMOnly {
		return nil
	}

	isimADF := &file{name: "ADF.ISIM", kind: kindADF, aid: isimAID}
	impi, err := uicc.EncodeString("EF.IMPI", id.IMPI, 0)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	isimADF.add(transparent("EF.IMPI", uicc.FIDIMPI, impi, true))
	domain, err := uicc.EncodeString("EF.DOMAIN", id.Domain, 0)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	isimADF.add(transparent("EF.DOMAIN", uicc.FIDDOMAIN, domain, true))
	impu, err := linear("EF.IMPU", uicc.FIDIMPU, true, id.IMPUs, func(v string, size int) ([]byte, error) {
		return uicc.EncodeString("EF.IMPU", v, size)
	}, 32)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	isimADF.add(impu)
	var services []int
	if len(c.cfg.PCSCF) > 0 {
		services = append(services, 1)
		pcscf, err := linear("EF.P-CSCF", uicc.FIDPCSCF, true, c.cfg.PCSCF, uicc.EncodePCSCF, 16)
		if err != nil {
			return fmt.Errorf("vcard: %w", err)
		}
		isimADF.add(pcscf)
	}
	ist, _ := uicc.EncodeServices(1, services...)
	isimADF.add(transparent("EF.IST", uicc.FIDIST, ist, true))
	isimADF.add(transparent("EF.AD", uicc.FIDAD, uicc.EncodeAD(c.cfg.MNCLength), false))
	c.mf.add(isimADF)
	c.adfs = append(c.adfs, isimADF)
	return nil
}

// makeATR returns a UICC ATR (TS 102 221 §6.3) offering T=0 or T=1, with one
// random byte in the historical bytes so that a test can tell its card from
// another one in the same reader.
func makeATR(t0 bool) []byte {
	td1 := byte(0x81) // TD2 follows; T=1
	if t0 {
		td1 = 0x80 // T=0
	}
	hist := []byte{0x80, 0x31, 0xE0, 0x73, 0xFE, 0x21, 0x1B, 0x63, 0x3A, 0x20, 0x4E, 0x83, 0x00, 0x90, 0x00}
	var r [1]byte
	_, _ = rand.Read(r[:])
	hist[10] = r[0] // last byte of the pre-issuing data object (tag 6, length 3)
	atr := []byte{0x3B, 0x90 | byte(len(hist)), 0x96, td1, 0x1F, 0xC7}
	atr = append(atr, hist...)
	var tck byte
	for _, b := range atr[1:] {
		tck ^= b
	}
	return append(atr, tck)
}

// ATR returns the card's answer to reset.
func (c *Card) ATR() []byte { return bytes.Clone(c.atr) }

// Protocol returns the protocol the ATR offers.
func (c *Card) Protocol() apdu.Protocol {
	if c.cfg.T0GetResponse || c.cfg.T0WrongLe {
		return apdu.T0
	}
	return apdu.T1
}

// Stats returns the counters.
func (c *Card) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Powered is closed when a reader powers the card up for the first time:
// pcscd has seen it.
func (c *Card) Powered() <-chan struct{} { return c.powered }

// Reset is a power cycle: the MF is selected again, the PIN is no longer
// verified and pending response data is dropped. The PIN retry counter
// stays.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
}

func (c *Card) reset() {
	c.curDF, c.curEF, c.curADF = c.mf, nil, nil
	c.verified = false
	c.pending = nil
}

func (c *Card) powerUp() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
	c.stats.PowerUps++
	select {
	case <-c.powered:
	default:
		close(c.powered)
	}
}

// Transmit answers one command APDU (apdu.Transport). The returned slice is
// reused by the next call.
func (c *Card) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.APDUs++
	data, sw := c.process(cmd)
	switch sw.SW1() {
	case 0x61:
		c.stats.Sent61++
	case 0x6C:
		c.stats.Sent6C++
	}
	c.rsp = append(c.rsp[:0], data...)
	c.rsp = append(c.rsp, sw.SW1(), sw.SW2())
	return c.rsp, nil
}

func (c *Card) process(raw []byte) ([]byte, apdu.SW) {
	cmd, err := apdu.ParseCommand(raw)
	if err != nil {
		return nil, apdu.SWWrongLength
	}
	switch {
	case cmd.CLA == 0x00:
	case cmd.CLA == 0xA0:
		return nil, apdu.SWCLANotSupported // a GSM SIM command
	case cmd.CLA&0x43 != 0 && cmd.CLA&0x80 == 0:
		return nil, apdu.SWLogicalChannel // only the basic channel
	default:
		return nil, apdu.SWCLANotSupported
	}
	if cmd.INS == 0xC0 {
		c.stats.GetResponses++
		return c.getResponse(&cmd)
	}
	c.pending = nil
	var data []byte
	var sw apdu.SW
	switch cmd.INS {
	case 0xA4:
		data, sw = c.selectFile(&cmd)
	case 0xB0:
		return c.readBinary(&cmd)
	case 0xB2:
		return c.readRecord(&cmd)
	case 0x20:
		return c.verify(&cmd)
	case 0x88:
		data, sw = c.authenticate(&cmd)
	default:
		return nil, apdu.SWINSNotSupported
	}
	return c.deliver(&cmd, data, sw)
}

// deliver returns the response data of a command that may carry some (SELECT
// with FCP, AUTHENTICATE) the way the transmission protocol allows.
func (c *Card) deliver(cmd *apdu.Command, data []byte, sw apdu.SW) ([]byte, apdu.SW) {
	if len(data) == 0 {
		return nil, sw
	}
	if len(cmd.Data) > 0 && (c.cfg.T0GetResponse || c.Protocol() == apdu.T0 && cmd.Ne == 0) {
		// T=0: after command data the card can only send a status word.
		// With T0GetResponse it does so even when a (non-standard) Le
		// followed the data, as a card behind a TPDU-level reader would.
		c.pending = data
		return nil, 0x6100 | apdu.SW(byte(len(data)))
	}
	if cmd.Ne == 0 {
		return nil, sw // no Le: the terminal asked for no data
	}
	if len(data) > cmd.Ne {
		c.pending = data[cmd.Ne:]
		return data[:cmd.Ne], 0x6100 | apdu.SW(byte(len(c.pending)))
	}
	return data, sw
}

func (c *Card) getResponse(cmd *apdu.Command) ([]byte, apdu.SW) {
	if c.pending == nil {
		return nil, apdu.SWConditionsOfUse
	}
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWWrongP1P2
	}
	if cmd.Ne == 0 || len(cmd.Data) > 0 {
		return nil, apdu.SWWrongLength
	}
	avail := len(c.pending)
	if c.cfg.T0WrongLe && cmd.Ne > avail {
		return nil, 0x6C00 | apdu.SW(byte(avail))
	}
	n := min(cmd.Ne, avail)
	out := c.pending[:n]
	if c.pending = c.pending[n:]; len(c.pending) > 0 {
		return out, 0x6100 | apdu.SW(byte(len(c.pending)))
	}
	c.pending = nil
	return out, apdu.SWOK
}

// selectFile implements SELECT by FID (P1 00), by DF name (P1 04, a full or
// partial AID) and by path from the MF (P1 08). P2 04 returns the FCP, 0C
// nothing.
func (c *Card) selectFile(cmd *apdu.Command) ([]byte, apdu.SW) {
	if cmd.P2&0x03 != 0 || (cmd.P2&0xF0 != 0 && cmd.P2 != 0x0C) {
		return nil, apdu.SWWrongP1P2
	}
	var f *file
	switch d := cmd.Data; cmd.P1 {
	case 0x00:
		if len(d) != 2 {
			return nil, apdu.SWWrongLength
		}
		f = c.byFID(uint16(d[0])<<8 | uint16(d[1]))
	case 0x04:
		if len(d) < 5 || len(d) > 16 {
			return nil, apdu.SWWrongLength
		}
		for _, a := range c.adfs {
			if bytes.HasPrefix(a.aid, d) {
				f = a
				break
			}
		}
	case 0x08:
		if len(d) < 2 || len(d)%2 != 0 {
			return nil, apdu.SWWrongLength
		}
		f = c.mf
		for i := 0; f != nil && i < len(d); i += 2 {
			fid := uint16(d[i])<<8 | uint16(d[i+1])
			switch {
			case fid == uicc.FIDADF && c.curADF != nil && f == c.mf:
				f = c.curADF
			case f.isDF():
				f = f.child(fid)
			default:
				f = nil
			}
		}
	default:
		return nil, apdu.SWWrongP1P2
	}
	if f == nil {
		return nil, apdu.SWFileNotFound
	}
	if f.isDF() {
		c.curDF, c.curEF = f, nil
		if f.kind == kindADF {
			c.curADF = f
		}
	} else {
		c.curDF, c.curEF = f.parent, f
	}
	if cmd.P2 == 0x0C {
		return nil, apdu.SWOK
	}
	return f.fcp(), apdu.SWOK
}

// byFID resolves a file identifier from the current DF (TS 102 221 §8.4.1,
// the subset terminals use): the MF, the current ADF (7FFF), a child of the
// current DF, or the current DF itself.
func (c *Card) byFID(fid uint16) *file {
	switch {
	case fid == uicc.FIDMF:
		return c.mf
	case fid == uicc.FIDADF:
		return c.curADF
	case c.curDF.fid == fid && fid != 0:
		return c.curDF
	}
	return c.curDF.child(fid)
}

func (c *Card) readable(f *file) apdu.SW {
	if f.needPIN && len(c.cfg.PIN) > 0 && !c.verified {
		return apdu.SWSecurityStatus
	}
	return apdu.SWOK
}

func (c *Card) readBinary(cmd *apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1&0x80 != 0 {
		return nil, apdu.SW(0x6A81) // short file identifiers: not offered
	}
	f := c.curEF
	switch {
	case f == nil:
		return nil, apdu.SWNoEFSelected
	case f.kind != kindTransparent:
		return nil, apdu.SWIncompatibleFile
	case cmd.Ne == 0 || len(cmd.Data) > 0:
		return nil, apdu.SWWrongLength
	}
	if sw := c.readable(f); sw != apdu.SWOK {
		return nil, sw
	}
	off := int(cmd.P1)<<8 | int(cmd.P2)
	if off >= len(f.data) {
		return nil, apdu.SWWrongOffset
	}
	avail := len(f.data) - off
	if c.cfg.T0WrongLe && cmd.Ne > avail {
		return nil, 0x6C00 | apdu.SW(byte(avail))
	}
	n := min(cmd.Ne, avail)
	if n < cmd.Ne && cmd.Ne != apdu.MaxNe {
		return f.data[off : off+n], apdu.SWEndOfFile
	}
	return f.data[off : off+n], apdu.SWOK
}

func (c *Card) readRecord(cmd *apdu.Command) ([]byte, apdu.SW) {
	f := c.curEF
	switch {
	case f == nil:
		return nil, apdu.SWNoEFSelected
	case f.kind != kindLinear:
		return nil, apdu.SWIncompatibleFile
	case cmd.P2 != 0x04:
		return nil, apdu.SWWrongP1P2 // only absolute addressing
	case cmd.Ne == 0 || len(cmd.Data) > 0:
		return nil, apdu.SWWrongLength
	}
	if sw := c.readable(f); sw != apdu.SWOK {
		return nil, sw
	}
	n := int(cmd.P1)
	if n < 1 || n > len(f.records) {
		return nil, apdu.SWRecordNotFound
	}
	if c.cfg.T0WrongLe && cmd.Ne != f.recLen {
		return nil, 0x6C00 | apdu.SW(byte(f.recLen))
	}
	if cmd.Ne < f.recLen {
		return nil, apdu.SWWrongLength
	}
	return f.records[n-1], apdu.SWOK
}

// verify implements VERIFY PIN for PIN1: no data asks for the state (9000 or
// 63Cx), 8 bytes try the PIN.
func (c *Card) verify(cmd *apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0x00 {
		return nil, apdu.SWWrongP1P2
	}
	if cmd.P2 != 0x01 {
		return nil, apdu.SWRefDataNotFound
	}
	if len(c.cfg.PIN) == 0 {
		return nil, apdu.SWOK // disabled
	}
	if c.tries == 0 {
		return nil, apdu.SWAuthBlocked
	}
	if len(cmd.Data) == 0 {
		if c.verified {
			return nil, apdu.SWOK
		}
		return nil, 0x63C0 | apdu.SW(c.tries)
	}
	if len(cmd.Data) != 8 || cmd.Ne != 0 {
		return nil, apdu.SWWrongLength
	}
	want, _ := uicc.PINBlock(c.cfg.PIN)
	if subtle.ConstantTimeCompare(want[:], cmd.Data) == 1 {
		c.tries = c.cfg.PINTries
		c.verified = true
		return nil, apdu.SWOK
	}
	c.tries--
	c.verified = false
	return nil, 0x63C0 | apdu.SW(c.tries)
}

func (c *Card) authenticate(cmd *apdu.Command) ([]byte, apdu.SW) {
	adf := c.curDF
	if adf.kind != kindADF {
		return nil, apdu.SWConditionsOfUse
	}
	switch {
	case cmd.P1 != 0x00:
		return nil, apdu.SWWrongP1P2
	case cmd.P2 == 0x80:
		return nil, apdu.SWAuthContextUnknown // GSM context: not offered
	case cmd.P2 != uicc.P2Auth3G:
		return nil, apdu.SWWrongP1P2
	case len(cmd.Data) != 34:
		return nil, apdu.SWWrongLength
	}
	if len(c.cfg.PIN) > 0 && !c.verified {
		return nil, apdu.SWSecurityStatus
	}
	rnd, autn, err := uicc.ParseAuthenticateData(cmd.Data)
	if err != nil {
		return nil, apdu.SWWrongData
	}
	c.stats.Authenticates++
	res, err := c.cfg.Auth.Authenticate(c.ctx, rnd, autn)
	var sf *isim.SyncFailure
	switch {
	case errors.Is(err, isim.ErrMACFailure):
		return nil, apdu.SWAuthMACFailure
	case errors.As(err, &sf):
		return uicc.AppendAuthenticateSync(nil, &sf.AUTS), apdu.SWOK
	case err != nil:
		return nil, apdu.SWTechnicalProblem
	}
	var kc []byte
	if bytes.Equal(adf.aid, usimAID) {
		k := uicc.KcFromCKIK(&res.CK, &res.IK)
		kc = k[:]
	}
	out, err := uicc.AppendAuthenticateSuccess(nil, &res, kc)
	if err != nil {
		return nil, apdu.SWTechnicalProblem
	}
	return out, apdu.SWOK
}
