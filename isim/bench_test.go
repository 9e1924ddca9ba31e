package isim

import (
	"os"
	"testing"
)

// BenchmarkSoftwareAuthenticate measures one accepted challenge of the
// software ISIM: MILENAGE, the freshness check, and the durable state update.
// With a file store the update (write, fsync, rename, fsync of the folder)
// dominates; the memory store shows the rest.
func BenchmarkSoftwareAuthenticate(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) {
		benchAuthenticate(b, NewMemoryStore(SQNState{}))
	})
	b.Run("store=tempdir", func(b *testing.B) {
		s, err := OpenFileStore(b.TempDir() + "/ue1.sqn")
		if err != nil {
			b.Fatal(err)
		}
		benchAuthenticate(b, s)
	})
	b.Run("store=devshm", func(b *testing.B) {
		dir, err := os.MkdirTemp("/dev/shm", "imsue-isim-bench-")
		if err != nil {
			b.Skipf("no tmpfs at /dev/shm: %v", err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		s, err := OpenFileStore(dir + "/ue1.sqn")
		if err != nil {
			b.Fatal(err)
		}
		benchAuthenticate(b, s)
	})
}

func benchAuthenticate(b *testing.B, store Store) {
	k, opc := testKeys()
	s := newSoft(b, k, opc, store, Policy{})
	net := newNetwork(k, opc)
	// The network's side is prepared outside the timer, in batches.
	const batch = 1024
	rands := make([]RAND, batch)
	autns := make([]AUTN, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % batch
		if j == 0 {
			b.StopTimer()
			for n := range batch {
				rands[n], autns[n] = net.challenge(MakeSQN(uint64(i+n+1), (i+n)%INDSlots))
			}
			b.StartTimer()
		}
		if _, err := s.Authenticate(ctx, rands[j], autns[j]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck is the pure Annex C.2 decision.
func BenchmarkCheck(b *testing.B) {
	st := goldenState()
	sqn := MakeSQN(4, 10)
	b.ReportAllocs()
	for b.Loop() {
		if st.Check(sqn, Policy{}) != Fresh {
			b.Fatal("not fresh")
		}
	}
}
