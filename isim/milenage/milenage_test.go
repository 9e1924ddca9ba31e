package milenage

import (
	"bytes"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
)

func TestTS35208(t *testing.T) {
	sets := vectors.Milenage()
	if len(sets) != 15 {
		t.Fatalf("expected the 15 TS 35.208 sets, found %d", len(sets))
	}
	for _, ts := range sets {
		t.Run(ts.Name, func(t *testing.T) {
			k := ts.K
			op := ts.OP
			opc := ts.OPc
			if got := OPc(k, op); got != ts.OPc {
				t.Errorf("OPc = %x, want %x", got, ts.OPc)
			}
			for _, c := range []struct {
				name string
				c    *Cipher
			}{{"fromOP", NewWithOP(k, op)}, {"fromOPc", New(k, opc)}} {
				rand := ts.RAND
				sqn := ts.SQN
				amf := ts.AMF
				macA, macS := c.c.F1(rand, sqn, amf)
				res, ck, ik, ak := c.c.F2345(rand)
				akStar := c.c.F5Star(rand)
				for _, f := range []struct {
					name      string
					got, want []byte
				}{
					{"f1", macA[:], ts.MACA[:]},
					{"f1*", macS[:], ts.MACS[:]},
					{"f2", res[:], ts.RES[:]},
					{"f3", ck[:], ts.CK[:]},
					{"f4", ik[:], ts.IK[:]},
					{"f5", ak[:], ts.AK[:]},
					{"f5*", akStar[:], ts.AKStar[:]},
				} {
					if !bytes.Equal(f.got, f.want) {
						t.Errorf("%s %s = %x, want %x", c.name, f.name, f.got, f.want)
					}
				}
				autn := c.c.AUTN(rand, sqn, amf)
				if autn != ts.AUTN {
					t.Errorf("%s AUTN = %x, want %x", c.name, autn, ts.AUTN)
				}
				var ch Challenge
				c.c.Challenge(&rand, &autn, &ch)
				if !ch.MACOK || ch.SQN != sqn || ch.AMF != amf || ch.RES != res || ch.CK != ck || ch.IK != ik || ch.AK != ak {
					t.Errorf("%s Challenge = %+v, want the f1..f5 values", c.name, ch)
				}
				auts := c.c.AUTS(rand, sqn)
				if auts != ts.AUTS {
					t.Errorf("%s AUTS = %x, want %x", c.name, auts, ts.AUTS)
				}
				got, ok := c.c.OpenAUTS(rand, auts)
				if !ok || got != sqn {
					t.Errorf("%s OpenAUTS = %x %v, want %x true", c.name, got, ok, sqn)
				}
			}
		})
	}
}

func TestChallengeRejectsTamperedAUTN(t *testing.T) {
	ts := vectors.Milenage()[0]
	c := New(ts.K, ts.OPc)
	rand := ts.RAND
	autn := ts.AUTN
	for i := range autn { // any single flipped bit must fail: SQN, AMF or MAC
		bad := autn
		bad[i] ^= 0x01
		var ch Challenge
		c.Challenge(&rand, &bad, &ch)
		if ch.MACOK {
			t.Fatalf("flipping AUTN byte %d still verified", i)
		}
		if ch.RES != ([8]byte{}) || ch.CK != ([16]byte{}) || ch.IK != ([16]byte{}) {
			t.Fatalf("keys leaked out of a failed challenge (byte %d)", i)
		}
	}
}

func TestExtraVectors(t *testing.T) {
	for _, e := range vectors.MilenageExtra() {
		t.Run(e.Name, func(t *testing.T) {
			k := e.K
			switch e.Kind {
			case vectors.ExtraOPc:
				if got := OPc(k, e.OP); got != e.OPc {
					t.Fatalf("OPc = %x, want %x", got, e.OPc)
				}
				return
			case vectors.ExtraResync:
				c := New(k, e.OPc)
				rand := e.RAND
				sqnMS, ok := c.OpenAUTS(rand, e.AUTS)
				if !ok || sqnMS != e.SQNMS {
					t.Fatalf("OpenAUTS = %x %v, want %x true", sqnMS, ok, e.SQNMS)
				}
				if auts := c.AUTS(rand, sqnMS); auts != e.AUTS {
					t.Fatalf("AUTS = %x, want %x", auts, e.AUTS)
				}
				return
			}
			c := New(k, e.OPc)
			rand := e.RAND
			autn := c.AUTN(rand, e.SQN, e.AMF)
			if autn != e.AUTN {
				t.Fatalf("AUTN = %x, want %x", autn, e.AUTN)
			}
			var ch Challenge
			c.Challenge(&rand, &autn, &ch)
			if !ch.MACOK || ch.RES != e.RES || ch.CK != e.CK || ch.IK != e.IK {
				t.Fatalf("Challenge = %+v", ch)
			}
		})
	}
}

func TestChallengeAllocatesNothing(t *testing.T) {
	ts := vectors.Milenage()[0]
	c := New(ts.K, ts.OPc)
	rand := ts.RAND
	autn := ts.AUTN
	var ch Challenge
	if n := testing.AllocsPerRun(100, func() { c.Challenge(&rand, &autn, &ch) }); n != 0 {
		t.Fatalf("Challenge allocates %v times per call", n)
	}
}
