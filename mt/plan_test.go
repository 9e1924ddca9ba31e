package mt

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imsue/imsue/ipsec"
)

type wantSA struct {
	src, dst string
	spi      uint32
	dir      ipsec.Direction
}

func TestPlan(t *testing.T) {
	ck, ik := loadCKIK(t, "DERIVED AKAv1-MD5 qop=auth from MILENAGE test set 19")
	ue := Params{SPIc: 1111, SPIs: 2222, PortC: 61001, PortS: 61002}  // spi_uc, spi_us, port_uc, port_us
	pcscf := Params{SPIc: 4096, SPIs: 4097, PortC: 7100, PortS: 7200} // spi_pc, spi_ps, port_pc, port_ps
	m := mustParse(t, kamailioAESCBC)[0]
	tests := []struct {
		name    string
		ep      Endpoints
		atPCSCF bool
		want    [4]wantSA
	}{
		{"UE IPv4", Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")}, false, [4]wantSA{
			{"10.0.0.2:61001", "10.0.0.1:7200", 4097, ipsec.Out}, // #1 port_uc → port_ps, spi_ps
			{"10.0.0.1:7200", "10.0.0.2:61001", 1111, ipsec.In},  // #2 port_ps → port_uc, spi_uc
			{"10.0.0.1:7100", "10.0.0.2:61002", 2222, ipsec.In},  // #3 port_pc → port_us, spi_us
			{"10.0.0.2:61002", "10.0.0.1:7100", 4096, ipsec.Out}, // #4 port_us → port_pc, spi_pc
		}},
		{"P-CSCF IPv4", Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")}, true, [4]wantSA{
			{"10.0.0.2:61001", "10.0.0.1:7200", 4097, ipsec.In},
			{"10.0.0.1:7200", "10.0.0.2:61001", 1111, ipsec.Out},
			{"10.0.0.1:7100", "10.0.0.2:61002", 2222, ipsec.Out},
			{"10.0.0.2:61002", "10.0.0.1:7100", 4096, ipsec.In},
		}},
		{"UE IPv6", Endpoints{netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1")}, false, [4]wantSA{
			{"[2001:db8::2]:61001", "[2001:db8::1]:7200", 4097, ipsec.Out},
			{"[2001:db8::1]:7200", "[2001:db8::2]:61001", 1111, ipsec.In},
			{"[2001:db8::1]:7100", "[2001:db8::2]:61002", 2222, ipsec.In},
			{"[2001:db8::2]:61002", "[2001:db8::1]:7100", 4096, ipsec.Out},
		}},
		{"UE IPv4-mapped P-CSCF is IPv4", Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("::ffff:10.0.0.1")}, false, [4]wantSA{
			{"10.0.0.2:61001", "10.0.0.1:7200", 4097, ipsec.Out},
			{"10.0.0.1:7200", "10.0.0.2:61001", 1111, ipsec.In},
			{"10.0.0.1:7100", "10.0.0.2:61002", 2222, ipsec.In},
			{"10.0.0.2:61002", "10.0.0.1:7100", 4096, ipsec.Out},
		}},
		{"P-CSCF on the same host (lab)", Endpoints{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1")}, true, [4]wantSA{
			{"127.0.0.1:61001", "127.0.0.1:7200", 4097, ipsec.In},
			{"127.0.0.1:7200", "127.0.0.1:61001", 1111, ipsec.Out},
			{"127.0.0.1:7100", "127.0.0.1:61002", 2222, ipsec.Out},
			{"127.0.0.1:61002", "127.0.0.1:7100", 4096, ipsec.In},
		}},
	}
	wantAuth := "9744871ad32bf9bbd1dd5ce54e3e2e5a00000000" // IK || 00000000
	wantEnc := "5349fbe098649f948f5d2e973a81c00f"          // CK
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			planFn := PlanUE
			if tt.atPCSCF {
				planFn = PlanPCSCF
			}
			set, err := planFn(tt.ep, ue, pcscf, m, ck, ik, TemporaryLifetime)
			if err != nil {
				t.Fatal(err)
			}
			if set.ID == 0 {
				t.Error("set ID is 0")
			}
			for i, sa := range set.SAs {
				w := tt.want[i]
				if sa.Src.String() != w.src || sa.Dst.String() != w.dst || sa.SPI != w.spi || sa.Dir != w.dir {
					t.Errorf("SA #%d = %s, want %s %s→%s spi=%d", i+1, &sa, w.dir, w.src, w.dst, w.spi)
				}
				if sa.Auth != ipsec.AuthHMACSHA196 || sa.Enc != ipsec.EncAESCBC {
					t.Errorf("SA #%d algorithms %s/%s", i+1, sa.Auth, sa.Enc)
				}
				if hexs(sa.AuthKey) != wantAuth || hexs(sa.EncKey) != wantEnc {
					t.Errorf("SA #%d keys wrong", i+1)
				}
				if sa.Replay != 32 || sa.Lifetime != 4*time.Minute {
					t.Errorf("SA #%d replay %d lifetime %v", i+1, sa.Replay, sa.Lifetime)
				}
			}
			// Each SA owns its keys.
			set.SAs[0].AuthKey[0] ^= 0xff
			set.SAs[0].EncKey[0] ^= 0xff
			for i := 1; i < 4; i++ {
				if hexs(set.SAs[i].AuthKey) != wantAuth || hexs(set.SAs[i].EncKey) != wantEnc {
					t.Fatalf("SA #%d shares key memory with SA #1", i+1)
				}
			}
			local, remote, ok := SetParams(set)
			wantLocal, wantRemote := ue, pcscf
			if tt.atPCSCF {
				wantLocal, wantRemote = pcscf, ue
			}
			if !ok || local != wantLocal || remote != wantRemote {
				t.Errorf("SetParams = %+v, %+v, %v; want %+v, %+v", local, remote, ok, wantLocal, wantRemote)
			}
		})
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestPlanNullAndLifetime(t *testing.T) {
	var ck, ik [16]byte
	ik[0] = 1
	ep := Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")}
	m := mustParse(t, "ipsec-3gpp;alg=hmac-md5-96")[0]
	ue := Params{SPIc: 1111, SPIs: 2222, PortC: 61001, PortS: 61002}
	pcscf := Params{SPIc: 4096, SPIs: 4097, PortC: 7100, PortS: 7200}
	set, err := PlanUE(ep, ue, pcscf, m, ck, ik, 200*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i, sa := range set.SAs {
		if sa.Enc != ipsec.EncNull || sa.EncKey != nil || !bytes.Equal(sa.AuthKey, ik[:]) {
			t.Errorf("SA #%d: %s/%s enc key %v", i+1, sa.Auth, sa.Enc, sa.EncKey)
		}
		if sa.Lifetime != 4294967295*time.Second {
			t.Errorf("SA #%d lifetime %v not capped at 2^32-1 s", i+1, sa.Lifetime)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	var ck, ik [16]byte
	v4 := Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")}
	ue := Params{SPIc: 1111, SPIs: 2222, PortC: 61001, PortS: 61002}
	pcscf := Params{SPIc: 4096, SPIs: 4097, PortC: 7100, PortS: 7200}
	good := mustParse(t, kamailioServer)[0]
	with := func(s string) Mechanism { return mustParse(t, s)[0] }
	tests := []struct {
		name      string
		atPCSCF   bool
		ep        Endpoints
		ue, pcscf Params
		m         Mechanism
		lifetime  time.Duration
		wantErr   error
		want      string
	}{
		{"mixed families", false, Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8::1")}, ue, pcscf, good, 0, nil, "different families"},
		{"no UE address", false, Endpoints{PCSCF: netip.MustParseAddr("10.0.0.1")}, ue, pcscf, good, 0, nil, "UE address"},
		{"unspecified P-CSCF", false, Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("0.0.0.0")}, ue, pcscf, good, 0, nil, "P-CSCF address"},
		{"P-CSCF spi_ps reserved", false, v4, ue, Params{SPIc: 4096, SPIs: 7, PortC: 7100, PortS: 7200}, good, 0, ErrBadSecurityHeader, "P-CSCF spi_ps 7"},
		{"P-CSCF port_ps absent", false, v4, ue, Params{SPIc: 4096, SPIs: 4097, PortC: 7100}, good, 0, ErrBadSecurityHeader, "port_ps is absent"},
		{"P-CSCF ports equal", false, v4, ue, Params{SPIc: 4096, SPIs: 4097, PortC: 7100, PortS: 7100}, good, 0, ErrBadSecurityHeader, "both 7100"},
		{"P-CSCF SPIs equal", false, v4, ue, Params{SPIc: 4096, SPIs: 4096, PortC: 7100, PortS: 7200}, good, 0, ErrBadSecurityHeader, "both 4096"},
		{"UE spi_uc 0 (local: no header error)", false, v4, Params{SPIs: 2222, PortC: 1, PortS: 2}, pcscf, good, 0, nil, "UE spi_uc 0"},
		{"UE values wrong at the P-CSCF", true, v4, Params{SPIc: 1111, SPIs: 2222, PortS: 2}, pcscf, good, 0, ErrBadSecurityHeader, "UE port_uc is absent"},
		{"SPI clash on one host", false, Endpoints{netip.MustParseAddr("::1"), netip.MustParseAddr("::1")}, Params{SPIc: 4097, SPIs: 2222, PortC: 61001, PortS: 61002}, pcscf, good, 0, ErrBadSecurityHeader, "SPI 4097"},
		{"tunnel mode", false, v4, ue, pcscf, with("ipsec-3gpp;alg=hmac-md5-96;mod=tun"), 0, ErrNoAcceptableMechanism, "mod=tun"},
		{"not ipsec-3gpp", false, v4, ue, pcscf, with("digest"), 0, ErrNoAcceptableMechanism, "digest"},
		{"aes-gcm", false, v4, ue, pcscf, with("ipsec-3gpp;alg=hmac-md5-96;ealg=aes-gcm"), 0, ErrUnsupportedAlgorithm, "aes-gcm"},
		{"negative lifetime", false, v4, ue, pcscf, good, -time.Second, nil, "negative lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			planFn := PlanUE
			if tt.atPCSCF {
				planFn = PlanPCSCF
			}
			set, err := planFn(tt.ep, tt.ue, tt.pcscf, tt.m, ck, ik, tt.lifetime)
			if err == nil {
				t.Fatalf("no error, set %v", set)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && errors.Is(err, ErrBadSecurityHeader) {
				t.Errorf("error %v blames the peer's header", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestPlanIDsUnique(t *testing.T) {
	var ck, ik [16]byte
	ep := Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")}
	ue := Params{SPIc: 1111, SPIs: 2222, PortC: 61001, PortS: 61002}
	pcscf := Params{SPIc: 4096, SPIs: 4097, PortC: 7100, PortS: 7200}
	m := mustParse(t, kamailioServer)[0]
	const n = 8
	var (
		mu  sync.Mutex
		ids = map[uint64]bool{}
		wg  sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			for range 50 {
				set, err := PlanUE(ep, ue, pcscf, m, ck, ik, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if ids[set.ID] {
					t.Errorf("set ID %d given twice", set.ID)
				}
				ids[set.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ids) != n*50 {
		t.Errorf("%d distinct IDs, want %d", len(ids), n*50)
	}
}

func TestSetParamsRejectsOtherShapes(t *testing.T) {
	if _, _, ok := SetParams(nil); ok {
		t.Error("nil set accepted")
	}
	var ck, ik [16]byte
	set, err := PlanUE(Endpoints{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")},
		Params{SPIc: 1111, SPIs: 2222, PortC: 61001, PortS: 61002}, Params{SPIc: 4096, SPIs: 4097, PortC: 7100, PortS: 7200},
		mustParse(t, kamailioServer)[0], ck, ik, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	bad := *set
	bad.SAs[2].Dir = ipsec.Out
	if _, _, ok := SetParams(&bad); ok {
		t.Error("set with a wrong direction accepted")
	}
	bad = *set
	bad.SAs[1].Src = netip.MustParseAddrPort("10.0.0.1:9")
	if _, _, ok := SetParams(&bad); ok {
		t.Error("set whose SA #2 does not mirror SA #1 accepted")
	}
}
