// Package milenage implements the 3GPP MILENAGE authentication and key
// generation functions f1, f1*, f2, f3, f4, f5 and f5* (TS 35.205, TS 35.206)
// over AES-128.
//
// A Cipher holds one subscriber's key schedule and OPc, computed once. The
// per-challenge methods allocate nothing: the UE side of one challenge
// (Cipher.Challenge) is five AES block encryptions plus XORs.
package milenage

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
)

// Sizes of the MILENAGE inputs and outputs, in bytes.
const (
	KeySize  = 16 // K, OP, OPc
	RANDSize = 16
	SQNSize  = 6
	AMFSize  = 2
	MACSize  = 8 // MAC-A, MAC-S
	RESSize  = 8
	AKSize   = 6 // AK, AK*
	AUTNSize = SQNSize + AMFSize + MACSize
	AUTSSize = SQNSize + MACSize
)

// Cipher is MILENAGE keyed for one subscriber. It is not safe for concurrent
// use: it keeps its scratch blocks inside so that no call allocates.
type Cipher struct {
	block cipher.Block
	opc   [16]byte

	temp   [16]byte // E_K(RAND ⊕ OPc) of the current RAND
	th, tl uint64   // TEMP ⊕ OPc as two big-endian halves, for f2..f5
	in     [16]byte // scratch: AES input
	out    [16]byte // scratch: AES output
}

// New returns a Cipher for the subscriber key K and the derived operator key OPc.
func New(k, opc [KeySize]byte) *Cipher {
	b, err := aes.NewCipher(k[:])
	if err != nil {
		// aes.NewCipher fails only for a key length other than 16, 24 or 32.
		panic("milenage: " + err.Error())
	}
	return &Cipher{block: b, opc: opc}
}

// NewWithOP returns a Cipher for K and the operator variant OP, deriving OPc.
func NewWithOP(k, op [KeySize]byte) *Cipher {
	c := New(k, [KeySize]byte{})
	c.opc = c.deriveOPc(op)
	return c
}

// OPc returns OPc = OP ⊕ E_K(OP) (TS 35.206 §4.1).
func OPc(k, op [KeySize]byte) [KeySize]byte {
	return New(k, [KeySize]byte{}).deriveOPc(op)
}

func (c *Cipher) deriveOPc(op [KeySize]byte) [KeySize]byte {
	c.block.Encrypt(c.out[:], op[:])
	var opc [KeySize]byte
	subtle.XORBytes(opc[:], c.out[:], op[:])
	return opc
}

// OPc returns the operator key the Cipher was built with (or derived).
func (c *Cipher) OPc() [KeySize]byte { return c.opc }

// setRAND computes TEMP = E_K(RAND ⊕ OPc).
func (c *Cipher) setRAND(rand *[RANDSize]byte) {
	subtle.XORBytes(c.in[:], rand[:], c.opc[:])
	c.block.Encrypt(c.temp[:], c.in[:])
	c.th = binary.BigEndian.Uint64(c.temp[0:8]) ^ binary.BigEndian.Uint64(c.opc[0:8])
	c.tl = binary.BigEndian.Uint64(c.temp[8:16]) ^ binary.BigEndian.Uint64(c.opc[8:16])
}

// outK computes OUTk = E_K(rot(TEMP ⊕ OPc, rk) ⊕ ck) ⊕ OPc for k = 2..5 into
// c.out, with r2..r5 = 0, 32, 64, 96 bits; ck is zero but for its last byte,
// which is 1<<(k-2). The rotation is done on two 64-bit halves.
func (c *Cipher) outK(k int) {
	hi, lo := c.th, c.tl
	switch k {
	case 3: // 32
		hi, lo = hi<<32|lo>>32, lo<<32|hi>>32
	case 4: // 64
		hi, lo = lo, hi
	case 5: // 96
		hi, lo = lo<<32|hi>>32, hi<<32|lo>>32
	}
	binary.BigEndian.PutUint64(c.in[0:8], hi)
	binary.BigEndian.PutUint64(c.in[8:16], lo^1<<(k-2))
	c.block.Encrypt(c.out[:], c.in[:])
	subtle.XORBytes(c.out[:], c.out[:], c.opc[:])
}

// out1 computes OUT1 = E_K(TEMP ⊕ rot(IN1 ⊕ OPc, r1) ⊕ c1) ⊕ OPc into c.out,
// with IN1 = SQN ‖ AMF ‖ SQN ‖ AMF, r1 = 64 and c1 = 0.
func (c *Cipher) out1(sqn *[SQNSize]byte, amf *[AMFSize]byte) {
	var in1 [16]byte
	copy(in1[0:6], sqn[:])
	copy(in1[6:8], amf[:])
	copy(in1[8:14], sqn[:])
	copy(in1[14:16], amf[:])
	for i := 0; i < 16; i++ {
		j := (i + 8) & 15
		c.in[i] = c.temp[i] ^ in1[j] ^ c.opc[j]
	}
	c.block.Encrypt(c.out[:], c.in[:])
	subtle.XORBytes(c.out[:], c.out[:], c.opc[:])
}

// F1 computes the network authentication code MAC-A (f1) and the
// resynchronisation code MAC-S (f1*) for RAND, SQN and AMF.
func (c *Cipher) F1(rand [RANDSize]byte, sqn [SQNSize]byte, amf [AMFSize]byte) (macA, macS [MACSize]byte) {
	c.setRAND(&rand)
	c.out1(&sqn, &amf)
	copy(macA[:], c.out[0:8])
	copy(macS[:], c.out[8:16])
	return macA, macS
}

// F2345 computes RES (f2), CK (f3), IK (f4) and AK (f5) for RAND.
func (c *Cipher) F2345(rand [RANDSize]byte) (res [RESSize]byte, ck, ik [16]byte, ak [AKSize]byte) {
	c.setRAND(&rand)
	c.outK(2)
	copy(ak[:], c.out[0:6])
	copy(res[:], c.out[8:16])
	c.outK(3)
	ck = c.out
	c.outK(4)
	ik = c.out
	return res, ck, ik, ak
}

// F5Star computes the resynchronisation anonymity key AK* (f5*) for RAND.
func (c *Cipher) F5Star(rand [RANDSize]byte) (akStar [AKSize]byte) {
	c.setRAND(&rand)
	c.outK(5)
	copy(akStar[:], c.out[0:6])
	return akStar
}

// AUTN builds the network's authentication token for RAND, SQN and AMF:
// AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A.
func (c *Cipher) AUTN(rand [RANDSize]byte, sqn [SQNSize]byte, amf [AMFSize]byte) (autn [AUTNSize]byte) {
	macA, _ := c.F1(rand, sqn, amf)
	c.outK(2) // TEMP is still that of rand
	subtle.XORBytes(autn[0:6], sqn[:], c.out[0:6])
	copy(autn[6:8], amf[:])
	copy(autn[8:16], macA[:])
	return autn
}

// Challenge is what the UE side derives from one (RAND, AUTN) pair.
type Challenge struct {
	SQN   [SQNSize]byte // recovered: AUTN[0:6] ⊕ AK
	AMF   [AMFSize]byte
	MACOK bool // MAC-A in AUTN verified; RES, CK and IK are set only then
	RES   [RESSize]byte
	CK    [16]byte
	IK    [16]byte
	AK    [AKSize]byte
}

// Challenge runs the UE side of one challenge into ch: AK from RAND, SQN from
// AUTN, MAC-A check, and — only when the MAC verifies — RES, CK and IK. It
// does not judge the freshness of SQN: that is the SQN manager's job.
func (c *Cipher) Challenge(rand, autn *[16]byte, ch *Challenge) {
	c.setRAND(rand)
	c.outK(2)
	copy(ch.AK[:], c.out[0:6])
	subtle.XORBytes(ch.SQN[:], autn[0:6], ch.AK[:])
	copy(ch.AMF[:], autn[6:8])
	copy(ch.RES[:], c.out[8:16])

	c.out1(&ch.SQN, &ch.AMF)
	ch.MACOK = subtle.ConstantTimeCompare(c.out[0:8], autn[8:16]) == 1
	if !ch.MACOK {
		ch.RES = [RESSize]byte{}
		ch.CK = [16]byte{}
		ch.IK = [16]byte{}
		return
	}
	c.outK(3)
	ch.CK = c.out
	c.outK(4)
	ch.IK = c.out
}

// AUTS builds the resynchronisation token for the UE's highest accepted
// sequence number: AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, where MAC-S =
// f1*(SQN_MS, RAND, AMF*) with the dummy AMF* = 0000 (TS 33.102 §6.3.3).
func (c *Cipher) AUTS(rand [RANDSize]byte, sqnMS [SQNSize]byte) (auts [AUTSSize]byte) {
	_, macS := c.F1(rand, sqnMS, [AMFSize]byte{})
	c.outK(5)
	subtle.XORBytes(auts[0:6], sqnMS[:], c.out[0:6])
	copy(auts[6:14], macS[:])
	return auts
}

// OpenAUTS is the network side of resynchronisation: it recovers SQN_MS from
// AUTS and reports whether MAC-S verifies.
func (c *Cipher) OpenAUTS(rand [RANDSize]byte, auts [AUTSSize]byte) (sqnMS [SQNSize]byte, ok bool) {
	c.setRAND(&rand)
	c.outK(5)
	subtle.XORBytes(sqnMS[:], auts[0:6], c.out[0:6])
	amf := [AMFSize]byte{}
	c.out1(&sqnMS, &amf)
	return sqnMS, subtle.ConstantTimeCompare(c.out[8:16], auts[6:14]) == 1
}
