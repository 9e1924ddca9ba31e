package milenage

import (
	"crypto/aes"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
)

// BenchmarkChallenge is the UE side of one challenge from a prepared
// subscriber: AK, SQN recovery, MAC-A check, RES, CK and IK.
func BenchmarkChallenge(b *testing.B) {
	ts := vectors.Milenage()[0]
	c := New(ts.K, ts.OPc)
	rand := ts.RAND
	autn := ts.AUTN
	var ch Challenge
	b.ReportAllocs()
	for b.Loop() {
		c.Challenge(&rand, &autn, &ch)
	}
	if !ch.MACOK {
		b.Fatal("challenge did not verify")
	}
}

// BenchmarkAESBlocks5 is the floor for BenchmarkChallenge: five AES-128 block
// encryptions under one key schedule, through the same cipher.Block interface.
func BenchmarkAESBlocks5(b *testing.B) {
	blk, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 16)
	b.ReportAllocs()
	for b.Loop() {
		blk.Encrypt(buf, buf)
		blk.Encrypt(buf, buf)
		blk.Encrypt(buf, buf)
		blk.Encrypt(buf, buf)
		blk.Encrypt(buf, buf)
	}
}
