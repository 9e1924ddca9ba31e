package isimtest

import (
	"context"
	"errors"
	"testing"

	"github.com/imsue/imsue/isim"
)

var ctx = context.Background()

func TestScript(t *testing.T) {
	id := isim.Identity{IMPI: "u@d", IMPUs: []string{"sip:u@d"}, Domain: "d"}
	boom := errors.New("card removed")
	a := New(id).
		Succeed(isim.Result{RES: []byte{1, 2, 3, 4}, CK: [16]byte{5}, IK: [16]byte{6}}).
		SyncFail(isim.AUTS{7}).
		MACFail().
		Fail(boom)

	got, err := a.Identity(ctx)
	if err != nil || got.IMPI != "u@d" {
		t.Fatalf("Identity: %+v %v", got, err)
	}
	got.IMPUs[0] = "changed"
	if again, _ := a.Identity(ctx); again.IMPUs[0] != "sip:u@d" {
		t.Fatal("Identity shares its IMPU slice with the caller")
	}

	res, err := a.Authenticate(ctx, isim.RAND{1}, isim.AUTN{1})
	if err != nil || string(res.RES) != "\x01\x02\x03\x04" || res.CK[0] != 5 || res.IK[0] != 6 {
		t.Fatalf("1st: %+v %v", res, err)
	}
	var sf *isim.SyncFailure
	if _, err := a.Authenticate(ctx, isim.RAND{2}, isim.AUTN{2}); !errors.As(err, &sf) || sf.AUTS[0] != 7 {
		t.Fatalf("2nd: %v", err)
	}
	if _, err := a.Authenticate(ctx, isim.RAND{3}, isim.AUTN{3}); !errors.Is(err, isim.ErrMACFailure) {
		t.Fatalf("3rd: %v", err)
	}
	if _, err := a.Authenticate(ctx, isim.RAND{4}, isim.AUTN{4}); !errors.Is(err, boom) {
		t.Fatalf("4th: %v", err)
	}
	if _, err := a.Authenticate(ctx, isim.RAND{5}, isim.AUTN{5}); !errors.Is(err, ErrUnscripted) {
		t.Fatalf("5th (unscripted): %v", err)
	}
	if a.Pending() != 0 {
		t.Fatalf("Pending = %d", a.Pending())
	}
	calls := a.Calls()
	if len(calls) != 5 {
		t.Fatalf("%d calls recorded", len(calls))
	}
	for i, c := range calls {
		if c.RAND[0] != byte(i+1) || c.AUTN[0] != byte(i+1) {
			t.Fatalf("call %d recorded as %v", i, c)
		}
	}
}

func TestRespondAndContext(t *testing.T) {
	a := New(isim.Identity{})
	a.Respond = func(rand isim.RAND, _ isim.AUTN) (isim.Result, error) {
		return isim.Result{RES: rand[:4]}, nil
	}
	res, err := a.Authenticate(ctx, isim.RAND{9, 8, 7, 6}, isim.AUTN{})
	if err != nil || string(res.RES) != "\x09\x08\x07\x06" {
		t.Fatalf("Respond: %x %v", res.RES, err)
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.Authenticate(c, isim.RAND{}, isim.AUTN{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if len(a.Calls()) != 1 {
		t.Fatal("a call with a cancelled context was recorded")
	}
}

func TestCloseAndIdentityError(t *testing.T) {
	boom := errors.New("no ISIM")
	a := New(isim.Identity{}).FailIdentity(boom).Succeed(isim.Result{})
	if _, err := a.Identity(ctx); !errors.Is(err, boom) {
		t.Fatalf("Identity: %v", err)
	}
	if err := a.Close(); err != nil || !a.Closed() {
		t.Fatal("Close")
	}
	if _, err := a.Authenticate(ctx, isim.RAND{}, isim.AUTN{}); !errors.Is(err, isim.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if a.Pending() != 1 {
		t.Fatal("a call after Close consumed the script")
	}
}
