// Package akatest gives the card tests the AKA side of their material: a
// software ISIM over a memory store, fresh challenges, and AUTS opening.
// The TS 35.208 sets the tests key them with come from internal/vectors.
package akatest

import (
	"testing"

	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
)

// Software returns the project's software ISIM for k/opc over a memory
// store: a fresh ISIM that has accepted nothing yet.
func Software(id isim.Identity, k, opc [16]byte) (*isim.Software, error) {
	return isim.NewSoftware(isim.Config{Identity: id, K: isim.Key(k), OPc: isim.Key(opc),
		Store: isim.NewMemoryStore(isim.SQNState{})})
}

// AUTN builds the network's AUTN for rand with sequence number sqn and AMF
// 8000 (as lab HSSs send for IMS too).
func AUTN(k, opc [16]byte, rand isim.RAND, sqn uint64) isim.AUTN {
	var s [6]byte
	for i := range s {
		s[i] = byte(sqn >> (8 * (5 - i)))
	}
	return isim.AUTN(milenage.New(k, opc).AUTN(rand, s, [2]byte{0x80, 0x00}))
}

// OpenAUTS recovers SQN_MS from an AUTS, checking MAC-S.
func OpenAUTS(k, opc [16]byte, rand isim.RAND, auts isim.AUTS) (uint64, bool) {
	s, ok := milenage.New(k, opc).OpenAUTS(rand, auts)
	var sqn uint64
	for _, b := range s {
		sqn = sqn<<8 | uint64(b)
	}
	return sqn, ok
}

// benchBatch is how many AUTNs BenchAuthenticate makes at a time.
const benchBatch = 1024

// BenchAuthenticate runs b's loop, calling auth once an iteration with a
// fresh AUTN for rand: the SQNs climb by 0x20 (one SEQ step) from sqn, so a
// card that checks freshness accepts every one. The AUTNs are made in
// batches with the timer stopped: ns/op and allocs/op are auth's alone.
func BenchAuthenticate(b *testing.B, k, opc [16]byte, rand isim.RAND, sqn uint64, auth func(isim.AUTN) error) {
	b.Helper()
	var autns []isim.AUTN
	b.ReportAllocs()
	for b.Loop() {
		if len(autns) == 0 {
			b.StopTimer()
			for range benchBatch {
				sqn += 0x20
				autns = append(autns, AUTN(k, opc, rand, sqn))
			}
			b.StartTimer()
		}
		if err := auth(autns[0]); err != nil {
			b.Fatal(err)
		}
		autns = autns[1:]
	}
}
