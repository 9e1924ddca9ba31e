package imscore

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
)

// SQN layout (TS 33.102 Annex C.1.2): SQN = SEQ ‖ IND, 48 bits, with the
// usual 5 IND bits (a = 32 array slots in the USIM).
const (
	sqnBits = 48
	indBits = 5
	indMask = 1<<indBits - 1
	seqMax  = 1<<(sqnBits-indBits) - 1
)

var (
	errUnknownSubscriber = errors.New("unknown subscriber")
	errIMPUNotOfIMPI     = errors.New("public identity outside the subscriber's implicit registration set")
	errSQNExhausted      = errors.New("SQN exhausted: SEQ would wrap (TS 33.102 §C.3.2)")
	errBadAUTS           = errors.New("AUTS: MAC-S does not verify")
)

// hssClient is the S-CSCF's side of the Cx interface (TS 29.229): the two
// requests a registration needs. In the lab core the hss below answers
// them in-process; issue 11 puts Diameter there.
type hssClient interface {
	// authorize is the User-Authorization request (UAR/UAA, TS 29.229
	// §6.1.1/§6.1.2): may the private identity register the public one?
	// It returns the subscriber record, of which the S-CSCF reads only
	// IMPI, IMPUs and, for MD5 digest, Password, or errUnknownSubscriber or
	// errIMPUNotOfIMPI. With impi empty the subscriber is found by impu.
	authorize(impi, impu string) (Subscriber, error)
	// vectors is the Multimedia-Auth request (MAR/MAA, TS 29.229
	// §6.1.7/§6.1.8) for one vector. With resync (the SIP-Authorization AVP
	// carrying RAND‖AUTS after a synchronisation failure, TS 29.228 §6.3.3)
	// the HSS first resynchronises SQN_HE (TS 33.102 §6.3.5) and fails with
	// errBadAUTS when MAC-S does not verify.
	vectors(impi string, resync *resyncData) (vector, error)
}

// resyncData is the RAND of the refused challenge and the UE's AUTS.
type resyncData struct {
	RAND isim.RAND
	AUTS isim.AUTS
}

// hss is the Home Subscriber Server's authentication centre: it keeps each
// subscriber's SQN_HE and generates MILENAGE authentication vectors
// (TS 33.102 §6.3.2), and resynchronises from AUTS (§6.3.5). It has its own
// lock and implements hssClient.
type hss struct {
	rand   io.Reader // RAND source: crypto/rand, or fixed RANDs in tests
	faults *Faults   // BadMAC and StaleSQN alter the vectors here; nil: none
	log    *slog.Logger
	mu     sync.Mutex
	byIMPI map[string]*hssEntry // lower-cased IMPI
	byIMPU map[string]*hssEntry // canonURI(IMPU)
}

type hssEntry struct {
	sub   Subscriber
	impus []string         // canonURI of each of sub.IMPUs
	mil   *milenage.Cipher // not safe for concurrent use: guarded by hss.mu
	seq   uint64           // SEQ_HE: the SEQ of the last SQN issued
	ind   uint64           // the fixed IND of every SQN this HSS issues
}

// vector is one authentication vector (RAND, XRES, CK, IK, AUTN) plus the
// SQN it carries.
type vector struct {
	RAND isim.RAND
	AUTN isim.AUTN
	XRES [milenage.RESSize]byte
	CK   [16]byte
	IK   [16]byte
	SQN  uint64
}

// newHSS builds the HSS of subs, without faults and logging nothing.
func newHSS(subs []Subscriber) *hss {
	h := &hss{rand: rand.Reader, log: slog.New(slog.DiscardHandler), byIMPI: map[string]*hssEntry{}, byIMPU: map[string]*hssEntry{}}
	for _, s := range subs {
		s.IMPUs = append([]string(nil), s.IMPUs...)
		e := &hssEntry{sub: s, mil: milenage.New(s.K, s.OPc), seq: s.SQN >> indBits, ind: s.SQN & indMask}
		h.byIMPI[strings.ToLower(s.IMPI)] = e
		for _, u := range s.IMPUs {
			cu := canonURI(u)
			e.impus = append(e.impus, cu)
			h.byIMPU[cu] = e
		}
	}
	return h
}

// lookup returns the entry of the subscriber with this IMPI, or with this
// IMPU when impi is empty. An entry's sub and impus are never changed after
// newHSS: they can be read without the lock.
func (h *hss) lookup(impi, impu string) (*hssEntry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var e *hssEntry
	if impi != "" {
		e = h.byIMPI[strings.ToLower(impi)]
	} else {
		e = h.byIMPU[canonURI(impu)]
	}
	if e == nil {
		return nil, false
	}
	return e, true
}

// authorize implements hssClient (UAR).
func (h *hss) authorize(impi, impu string) (Subscriber, error) {
	e, ok := h.lookup(impi, impu)
	switch {
	case !ok:
		return Subscriber{}, errUnknownSubscriber
	case impu != "" && !slices.Contains(e.impus, canonURI(impu)): // Subscriber.hasIMPU
		return e.sub, errIMPUNotOfIMPI
	}
	return e.sub, nil
}

// vectors implements hssClient (MAR): an optional resynchronisation, then
// the next vector, altered by the armed BadMAC or StaleSQN fault.
func (h *hss) vectors(impi string, resync *resyncData) (vector, error) {
	if resync != nil {
		sqnMS, err := h.resync(impi, resync.RAND, resync.AUTS)
		if err != nil {
			return vector{}, err
		}
		h.log.Info("HSS resynchronised from AUTS", "impi", impi, "sqn_ms", sqnMS)
	}
	var f vectorFault
	if h.faults != nil {
		f = vectorFault{badMAC: h.faults.take(&h.faults.badMAC), staleSQN: h.faults.take(&h.faults.staleSQN)}
	}
	return h.generate(impi, f)
}

// vectorFault alters one vector for fault injection.
type vectorFault struct {
	badMAC   bool // flip a bit of MAC-A
	staleSQN bool // reuse the last issued SQN instead of a fresh one
}

// generate issues the next vector for impi: SEQ_HE+1 with the fixed IND
// (or, for staleSQN, the last SQN issued again) and a fresh RAND.
func (h *hss) generate(impi string, f vectorFault) (vector, error) {
	var v vector
	if _, err := io.ReadFull(h.rand, v.RAND[:]); err != nil {
		return v, fmt.Errorf("hss: RAND: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.byIMPI[strings.ToLower(impi)]
	if e == nil {
		return v, fmt.Errorf("hss: %s: %w", impi, errUnknownSubscriber)
	}
	if !f.staleSQN {
		if e.seq >= seqMax {
			return v, fmt.Errorf("hss: %s: %w", impi, errSQNExhausted)
		}
		e.seq++
	}
	v.SQN = e.seq<<indBits | e.ind
	var sqn [milenage.SQNSize]byte
	putSQN(&sqn, v.SQN)
	v.AUTN = e.mil.AUTN(v.RAND, sqn, e.sub.AMF)
	if f.badMAC {
		v.AUTN[15] ^= 0x01
	}
	v.XRES, v.CK, v.IK, _ = e.mil.F2345(v.RAND)
	return v, nil
}

// resync recovers SQN_MS from AUTS for the RAND the UE refused, checks
// MAC-S, and moves SEQ_HE to SQN_MS's SEQ so that the next vector is above
// it (TS 33.102 §6.3.5). It returns SQN_MS.
func (h *hss) resync(impi string, rnd isim.RAND, auts isim.AUTS) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.byIMPI[strings.ToLower(impi)]
	if e == nil {
		return 0, fmt.Errorf("hss: %s: %w", impi, errUnknownSubscriber)
	}
	sqnMS, ok := e.mil.OpenAUTS(rnd, auts)
	if !ok {
		return 0, fmt.Errorf("hss: %s: %w", impi, errBadAUTS)
	}
	ms := getSQN(sqnMS)
	// SQN_HE ← SQN_MS, even downwards: a USIM also refuses an SQN too far
	// ahead of its own (SEQ − SEQ_MS > Δ), and the next vector (SEQ_MS+1)
	// is the one it accepts in either case.
	e.seq = ms >> indBits
	return ms, nil
}

// sqnHE returns the subscriber's current SQN_HE (for tests and snapshots).
func (h *hss) sqnHE(impi string) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.byIMPI[strings.ToLower(impi)]
	if e == nil {
		return 0, false
	}
	return e.seq<<indBits | e.ind, true
}

func putSQN(b *[milenage.SQNSize]byte, sqn uint64) {
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], sqn)
	copy(b[:], w[2:])
}

func getSQN(b [milenage.SQNSize]byte) uint64 {
	var w [8]byte
	copy(w[2:], b[:])
	return binary.BigEndian.Uint64(w[:])
}
