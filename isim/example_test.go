package isim_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
)

// A software ISIM with the keys of TS 35.208 test set 1, answering a
// challenge and then its replay.
func ExampleNewSoftware() {
	k, _ := isim.ParseKey("465b5ce8b199b49faa5f0a2ee238a6bc")
	opc, _ := isim.ParseKey("cd63cb71954a9f4e48a5994e37a02baf")
	sim, err := isim.NewSoftware(isim.Config{
		Identity: isim.Identity{IMPI: "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"},
		K:        k, OPc: opc,
		Store: isim.NewMemoryStore(isim.SQNState{}), // isim.OpenFileStore for a real profile
	})
	if err != nil {
		panic(err)
	}
	defer sim.Close()

	// The network's side: an AUTN for SEQ 1 on IND 1.
	var rand isim.RAND
	hex.Decode(rand[:], []byte("23553cbe9637a89d218ae64dae47bf35"))
	autn := isim.AUTN(milenage.New(k, opc).AUTN(rand, isim.MakeSQN(1, 1).Bytes(), [2]byte{0x80, 0x00}))

	res, err := sim.Authenticate(context.Background(), rand, autn)
	fmt.Printf("RES %x, err %v\n", res.RES, err)

	_, err = sim.Authenticate(context.Background(), rand, autn)
	var sync *isim.SyncFailure
	fmt.Println("replay is a sync failure:", errors.As(err, &sync))
	// Output:
	// RES a54211d5e3ba50bf, err <nil>
	// replay is a sync failure: true
}
