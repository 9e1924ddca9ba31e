package main

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/isimtest"
	"github.com/imsue/imsue/isim/milenage"
	"github.com/imsue/imsue/mt"
	"github.com/imsue/imsue/sipclient"
	"github.com/imsue/imsue/sipnet"
)

func TestNewResult(t *testing.T) {
	reg := &sipclient.Registration{
		IMPI: "u@d", IMPU: "sip:u@d", AssociatedURIs: []string{"sip:u@d", "tel:+1"}, ServiceRoute: []string{"<sip:s;lr>"},
		Expires:  3600 * time.Second,
		Security: &sipclient.Security{Alg: ipsec.AuthHMACMD596, SPIuc: 1, SPIus: 2, SPIpc: 3, SPIps: 4, PortUC: 5, PortUS: 6, PortPC: 7, PortPS: 8},
		Timings:  sipclient.Timings{Total: 12345 * time.Microsecond, Challenge: 2 * time.Millisecond, AKA: time.Millisecond, SAInstall: 3 * time.Millisecond, Protected: 4 * time.Millisecond},
	}
	r := NewResult(reg, nil)
	var b bytes.Buffer
	if err := (&app{stdout: &b, json: true}).emit(r, nil); err != nil {
		t.Fatal(err)
	}
	// An empty ealg and mode are reported as what they mean: null, trans.
	want := `{"result":"registered","impi":"u@d","impu":"sip:u@d","associated_uris":["sip:u@d","tel:+1"],"service_route":["<sip:s;lr>"],"expires":3600,` +
		`"security":{"alg":"hmac-md5-96","ealg":"null","mode":"trans","spi_uc":1,"spi_us":2,"spi_pc":3,"spi_ps":4,"port_uc":5,"port_us":6,"port_pc":7,"port_ps":8},` +
		`"timings_ms":{"aka":1,"challenge":2,"protected_register":4,"register":12.345,"sa_install":3}}` + "\n"
	if b.String() != want {
		t.Errorf("NewResult JSON\n got %s\nwant %s", b.String(), want)
	}

	// No challenge (plain Digest without SAs): only the total.
	r = NewResult(&sipclient.Registration{Timings: sipclient.Timings{Total: time.Millisecond}}, nil)
	if len(r.TimingsMS) != 1 || r.TimingsMS["register"] != 1 || r.Security != nil {
		t.Errorf("timings %v security %v", r.TimingsMS, r.Security)
	}

	// A rejection: its status and reason, the error text, no registration.
	err := &sipclient.RejectedError{Method: "REGISTER", Status: 403, Reason: "Forbidden"}
	r = NewResult(nil, err)
	if r.Result != "rejected" || r.Status != 403 || r.Reason != "Forbidden" || r.Error != err.Error() || r.Expires != nil || r.TimingsMS != nil {
		t.Errorf("NewResult(nil, 403) = %+v", r)
	}
}

// The errors sipclient returns from real procedures against the lab core
// get the outcome and exit code of their class (the outcome assertions
// lived in sipclient's tests while Outcome was there).
func TestOutcomeOfRegistrationErrors(t *testing.T) {
	id, err := isim.IdentityFromIMSI(regIMSI, 2)
	if err != nil {
		t.Fatal(err)
	}
	// An ISIM that refuses every SQN: its AUTS is valid (SQN_MS far ahead),
	// the HSS resynchronises, and the next challenge is refused again.
	refuseSQN := func() isim.Authenticator {
		a := isimtest.New(id)
		a.Respond = func(r isim.RAND, _ isim.AUTN) (isim.Result, error) {
			return isim.Result{}, &isim.SyncFailure{AUTS: milenage.New(regK, regOPc).AUTS(r, [6]byte{0, 0, 0, 1, 0, 0})}
		}
		return a
	}
	secServer := func(v string) func(*imscore.Faults) { return func(f *imscore.Faults) { f.SecurityServer(v) } }
	type scenario struct {
		name    string
		fault   func(*imscore.Faults)
		ue      func(*sipclient.Config)
		run     bool  // register, then Run until the core rejects the IMPU
		want    error // nil: a *sipclient.RejectedError with this status
		status  int
		outcome string
		code    int
	}
	tests := []scenario{
		{name: "AKAv2 refuses a downgrade", ue: func(c *sipclient.Config) { c.AKAv2 = true },
			want: sipclient.ErrAlgorithmDowngrade, outcome: "sec_agree_failure", code: exitSecAgree},
		{name: "resync does not converge", ue: func(c *sipclient.Config) { c.Auth = refuseSQN() },
			want: sipclient.ErrResyncFailed, outcome: "sync_failure", code: exitSync},
		{name: "Security-Server with nothing offered",
			fault: secServer("ipsec-3gpp;alg=hmac-md5-96;ealg=des-ede3-cbc;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=7200"),
			want:  mt.ErrNoAcceptableMechanism, outcome: "sec_agree_failure", code: exitSecAgree},
		{name: "no Security-Server", fault: (*imscore.Faults).OmitSecurityServer, want: sipclient.ErrNoSecurityServer, outcome: "sec_agree_failure", code: exitSecAgree},
		{name: "malformed Security-Server", fault: (*imscore.Faults).MalformedSecurityServer, want: mt.ErrBadSecurityHeader, outcome: "sec_agree_failure", code: exitSecAgree},
		{name: "Kamailio in a bad state: port-s=0",
			fault: secServer("ipsec-3gpp;prot=esp;mod=trans;spi-c=4096;spi-s=4097;port-c=7100;port-s=0;alg=hmac-sha-1-96;ealg=aes-cbc"),
			want:  mt.ErrBadSecurityHeader, outcome: "sec_agree_failure", code: exitSecAgree},
		{name: "malformed WWW-Authenticate", fault: (*imscore.Faults).MalformedWWWAuthenticate, want: sipclient.ErrBadChallenge, outcome: "bad_challenge", code: exitRejected},
		{name: "no answer", fault: func(f *imscore.Faults) { f.Silent(true) }, want: sipclient.ErrNoAnswer, outcome: "no_answer", code: exitNoAnswer},
		{name: "MAC failure", fault: (*imscore.Faults).BadMAC, want: isim.ErrMACFailure, outcome: "mac_failure", code: exitMAC},
		{name: "IPsec install failure", ue: func(c *sipclient.Config) { c.Backend.(*ipsec.Recorder).FailNext = ipsec.ErrUnsupported },
			want: ipsec.ErrUnsupported, outcome: "ipsec_failure", code: exitIPsec},
		{name: "registration rejected by the network", run: true, want: sipclient.ErrTerminated, outcome: "terminated", code: exitRejected},
	}
	for _, code := range []int{403, 404, 500, 503, 604} {
		tests = append(tests, scenario{name: "initial REGISTER answered " + strconv.Itoa(code),
			fault: func(f *imscore.Faults) { f.Reject(code) }, status: code, outcome: "rejected", code: exitRejected})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := &imscore.Faults{}
			core := regCore(t, func(c *imscore.Config) { c.Faults = faults })
			if tt.fault != nil {
				tt.fault(faults)
			}
			soft, err := isim.NewSoftware(isim.Config{Identity: id, K: regK, OPc: regOPc, Store: isim.NewMemoryStore(isim.SQNState{})})
			if err != nil {
				t.Fatal(err)
			}
			defer soft.Close()
			cfg := sipclient.Config{Auth: soft, PCSCF: core.Addr(), Backend: &ipsec.Recorder{},
				Algs: []ipsec.Auth{ipsec.AuthHMACSHA196}, EAlgs: []ipsec.Enc{ipsec.EncAESCBC, ipsec.EncNull},
				Timers: sipnet.Timers{T1: 10 * time.Millisecond}, DeregTimeout: 500 * time.Millisecond}
			if tt.ue != nil {
				tt.ue(&cfg)
			}
			c, err := sipclient.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err = c.Register(ctx)
			if tt.run {
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- c.Run(ctx) }()
				for core.Stats().Subscribes == 0 && ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond)
				}
				if err := core.Reject(id.IMPUs[0]); err != nil {
					t.Fatal(err)
				}
				err = <-done
			}
			var rej *sipclient.RejectedError
			switch {
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("error %v, want %v", err, tt.want)
			case tt.want == nil && (!errors.As(err, &rej) || rej.Status != tt.status):
				t.Fatalf("error %v, want a %d", err, tt.status)
			}
			if got := Outcome(err); got != tt.outcome {
				t.Errorf("Outcome(%v) = %q, want %q", err, got, tt.outcome)
			}
			if got := exitCode(err); got != tt.code {
				t.Errorf("exitCode(%v) = %d, want %d", err, got, tt.code)
			}
		})
	}
}
