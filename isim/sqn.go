package isim

import (
	"encoding/binary"
	"fmt"
)

// This file is the USIM's sequence number check of TS 33.102 Annex C.2,
// kept free of storage and cryptography so that it can be tested alone.
//
// The 48-bit SQN is SEQ ‖ IND: the low INDBits bits are an index that the
// HE/AuC varies per serving node, the high 43 bits a counter. The USIM keeps,
// per IND value, the highest SEQ it accepted (SEQ_MS[IND]), and accepts a
// challenge iff
//
//	SEQ > SEQ_MS[IND]                   (fresh in its slot: no replay)
//	SEQ − SEQ_MS_max ≤ Δ                (C.2.2: no jump far ahead)
//	SEQ ≤ MaxSEQ                        (wrap protection, below)
//
// where SEQ_MS_max is the highest SEQ accepted in any slot. The per-slot
// array lets vectors that the HE handed to different serving nodes arrive
// out of order without a resynchronisation, while a replay in the same slot
// is always refused.
//
// Wrap protection: TS 33.102 requires that SEQ never wraps round. This
// implementation never stores a SEQ above Policy.MaxSEQ, by default
// 2^43 − 2: the all-ones SEQ, whose successor an HE's SEQ_HE+1 would wrap to
// zero, is never accepted, and a lab may lower the ceiling to retire a
// subscriber early. A SEQ above the ceiling is refused like a stale one (sync
// failure), so the network learns SQN_MS and cannot push the ISIM further; the
// Δ window keeps a single genuine but runaway vector from jumping to the top.

// Sizes of the SQN fields (TS 33.102 Annex C.3.2, 5 IND bits).
const (
	INDBits  = 5
	INDSlots = 1 << INDBits // the array size a = 32
	SEQBits  = 48 - INDBits
	// SEQMax is the all-ones 43-bit SEQ.
	SEQMax = 1<<SEQBits - 1
	// DefaultDelta is Δ, the accepted jump of SEQ above SEQ_MS_max: 2^28,
	// the value TS 33.102 Annex C gives as an example.
	DefaultDelta = 1 << 28
	// DefaultMaxSEQ is the highest SEQ accepted by default: one below the
	// all-ones value (see the wrap protection rule above).
	DefaultMaxSEQ = SEQMax - 1
)

// SQN is a 48-bit sequence number SEQ ‖ IND, held in the low 48 bits.
type SQN uint64

// SQNFromBytes reads the 6-byte big-endian SQN of an AUTN or AUTS.
func SQNFromBytes(b [6]byte) SQN {
	var w [8]byte
	copy(w[2:], b[:])
	return SQN(binary.BigEndian.Uint64(w[:]))
}

// MakeSQN builds SEQ ‖ IND. SEQ is truncated to 43 bits and IND to 5.
func MakeSQN(seq uint64, ind int) SQN {
	return SQN((seq&SEQMax)<<INDBits | uint64(ind)&(INDSlots-1))
}

// Bytes returns the 6-byte big-endian form used in AUTN and AUTS.
func (s SQN) Bytes() [6]byte {
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], uint64(s))
	var b [6]byte
	copy(b[:], w[2:])
	return b
}

// SEQ is the counter part: the high 43 bits.
func (s SQN) SEQ() uint64 { return uint64(s) >> INDBits & SEQMax }

// IND is the array index: the low 5 bits.
func (s SQN) IND() int { return int(s & (INDSlots - 1)) }

// String prints the SQN as 12 lowercase hex digits with its SEQ and IND.
func (s SQN) String() string {
	return fmt.Sprintf("%012x (SEQ %d, IND %d)", uint64(s)&(1<<48-1), s.SEQ(), s.IND())
}

// Policy holds the tunable limits of the freshness check. The zero Policy
// means the defaults.
type Policy struct {
	// Delta is Δ: the largest accepted SEQ − SEQ_MS_max. Zero means
	// DefaultDelta; SEQMax (or more) turns the check off.
	Delta uint64
	// MaxSEQ is the highest SEQ ever accepted (wrap protection). Zero means
	// DefaultMaxSEQ; values above DefaultMaxSEQ are lowered to it.
	MaxSEQ uint64
}

func (p Policy) delta() uint64 {
	if p.Delta == 0 {
		return DefaultDelta
	}
	return p.Delta
}

func (p Policy) maxSEQ() uint64 {
	if p.MaxSEQ == 0 || p.MaxSEQ > DefaultMaxSEQ {
		return DefaultMaxSEQ
	}
	return p.MaxSEQ
}

// Freshness is the verdict of the Annex C.2 check on one SQN.
type Freshness uint8

const (
	// Fresh: the SQN is accepted.
	Fresh Freshness = iota
	// Replayed: SEQ ≤ SEQ_MS[IND]; this slot already saw this SEQ or a later one.
	Replayed
	// TooFarAhead: SEQ − SEQ_MS_max > Δ.
	TooFarAhead
	// AboveLimit: SEQ > MaxSEQ (wrap protection).
	AboveLimit
)

func (f Freshness) String() string {
	switch f {
	case Fresh:
		return "fresh"
	case Replayed:
		return "not above the highest accepted SEQ of its IND slot"
	case TooFarAhead:
		return "too far ahead of the highest accepted SEQ (beyond Δ)"
	case AboveLimit:
		return "above the SEQ limit (wrap protection)"
	}
	return fmt.Sprintf("Freshness(%d)", uint8(f))
}

// SQNState is the USIM's SQN array: SEQ[i] is the highest SEQ accepted with
// IND = i, 0 when none was. The zero value is a fresh ISIM.
type SQNState struct {
	SEQ [INDSlots]uint64
}

// MaxSEQ returns SEQ_MS_max, the highest SEQ accepted in any slot.
func (st SQNState) MaxSEQ() uint64 {
	var m uint64
	for _, s := range st.SEQ {
		m = max(m, s)
	}
	return m
}

// Highest returns SQN_MS, the highest SQN accepted so far (0 when none):
// SEQ_MS_max ‖ the IND of the slot holding it (the highest such IND if
// several slots hold the same SEQ). This is what AUTS reports: TS 33.102
// §6.3.5 asks for the highest previously accepted sequence number, and an
// HE that restarts SEQ_HE from its SEQ produces vectors that every slot
// accepts.
func (st SQNState) Highest() SQN {
	var best SQN
	for ind, seq := range st.SEQ {
		if seq == 0 {
			continue
		}
		if s := MakeSQN(seq, ind); s > best {
			best = s
		}
	}
	return best
}

// Check judges sqn against the state without changing it.
func (st SQNState) Check(sqn SQN, p Policy) Freshness {
	seq, ind := sqn.SEQ(), sqn.IND()
	if seq <= st.SEQ[ind] {
		return Replayed
	}
	if seq > p.maxSEQ() {
		return AboveLimit
	}
	if m := st.MaxSEQ(); seq > m && seq-m > p.delta() {
		return TooFarAhead
	}
	return Fresh
}

// Accept records sqn as accepted: SEQ_MS[IND] = SEQ. Call it only after
// Check returned Fresh.
func (st *SQNState) Accept(sqn SQN) {
	st.SEQ[sqn.IND()] = sqn.SEQ()
}
