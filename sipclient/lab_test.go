package sipclient

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/sipnet"
)

// The flow tests run the UE against the in-process lab core (package
// imscore) on loopback with ipsec.None-like backends: every message really
// crosses sockets, only the kernel SAs are not there.

const labDomain = "ims.mnc001.mcc001.3gppnetwork.org"

func mustHex16(s string) (b [16]byte) {
	n, err := hex.Decode(b[:], []byte(s))
	if err != nil || n != 16 {
		panic("bad hex " + s)
	}
	return b
}

// Subscriber 1 of the lab: TS 35.208 test set 1 keys.
var (
	labK   = mustHex16("465b5ce8b199b49faa5f0a2ee238a6bc")
	labOPc = mustHex16("cd63cb71954a9f4e48a5994e37a02baf")
)

func labIdentity(n int) isim.Identity {
	imsi := fmt.Sprintf("0010101234567%02d", n)
	return isim.Identity{
		IMPI:   imsi + "@" + labDomain,
		IMPUs:  []string{"sip:" + imsi + "@" + labDomain},
		Domain: labDomain,
		IMSI:   imsi,
	}
}

func labSubscriber(n int) imscore.Subscriber {
	id := labIdentity(n)
	return imscore.Subscriber{
		IMPI:  id.IMPI,
		IMPUs: append(id.IMPUs, "tel:+1555000"+fmt.Sprint(n)),
		K:     labK, OPc: labOPc, SQN: 0x20,
		AMF: [2]byte{0x80, 0x00}, Password: "secret",
	}
}

// testLogger writes to the test log only with -v, so failures stay readable.
func testLogger(t testing.TB, name string) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tlogWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct {
	t    testing.TB
	name string
}

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startCore starts a lab core on an ephemeral loopback port.
func startCore(t testing.TB, mod func(*imscore.Config)) *imscore.Core {
	t.Helper()
	cfg := imscore.Config{
		Domain:      labDomain,
		Addr:        netip.MustParseAddrPort("127.0.0.1:0"),
		Subscribers: []imscore.Subscriber{labSubscriber(1), labSubscriber(2)},
		Logger:      testLogger(t, "core"),
	}
	if mod != nil {
		mod(&cfg)
	}
	core, err := imscore.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("imscore.Start: %v", err)
	}
	t.Cleanup(func() { core.Close() })
	return core
}

// softISIM is a software ISIM for lab subscriber n with its SQN state in
// memory.
func softISIM(t testing.TB, n int) *isim.Software {
	t.Helper()
	s, err := isim.NewSoftware(isim.Config{
		Identity: labIdentity(n),
		K:        isim.Key(labK), OPc: isim.Key(labOPc),
		Store: isim.NewMemoryStore(isim.SQNState{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ue builds a Client for lab subscriber 1 against core with ephemeral
// ports, a short T1 (Timer F = 640 ms) and a Recorder backend.
func ue(t testing.TB, core *imscore.Core, mod func(*Config)) (*Client, *ipsec.Recorder, *testenv.SyncBuffer) {
	t.Helper()
	rec := &ipsec.Recorder{}
	trace := &testenv.SyncBuffer{}
	cfg := Config{
		Auth:         softISIM(t, 1),
		PCSCF:        core.Addr(),
		Backend:      rec,
		Timers:       sipnet.Timers{T1: 10 * time.Millisecond},
		DeregTimeout: 500 * time.Millisecond,
		MinRefresh:   50 * time.Millisecond, // the lab grants lifetimes of seconds
		Trace:        trace,
		Logger:       testLogger(t, "ue"),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() && !testing.Verbose() {
			t.Logf("UE trace:\n%s", trace.String())
		}
	})
	return c, rec, trace
}
