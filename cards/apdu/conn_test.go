package apdu_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/imsue/imsue/cards/apdu"
	"github.com/imsue/imsue/cards/apdu/apdutest"
)

const (
	authCmd   = "00880081221023553cbe9637a89d218ae64dae47bf351055f328b43577b9b94a9ffac354dfafb300"
	authCmdT0 = "00880081221023553cbe9637a89d218ae64dae47bf351055f328b43577b9b94a9ffac354dfafb3"
	authRsp   = "db08a54211d5e3ba50bf10b40ba9a3c58b2a05bbf0d987b21bf8cb10f769bcd751044604127672711c6d3441"
)

func parse(t *testing.T, s string) apdu.Command {
	t.Helper()
	c, err := apdu.ParseCommand(apdutest.MustHex(s))
	if err != nil {
		t.Fatal(err)
	}
	c.Data = bytes.Clone(c.Data)
	return c
}

func TestConnTransmit(t *testing.T) {
	tests := []struct {
		name     string
		proto    apdu.Protocol
		cmd      string
		script   []string
		wantData string
		wantSW   apdu.SW
		wantErr  error
	}{
		{
			name: "T=1 passes case 4 unchanged", proto: apdu.T1, cmd: authCmd,
			script:   []string{authCmd, authRsp + "9000"},
			wantData: authRsp, wantSW: 0x9000,
		},
		{
			name: "T=0 drops Le of case 4 and fetches 61xx", proto: apdu.T0, cmd: authCmd,
			script:   []string{authCmdT0, "612b", "00c000002b", authRsp + "9000"},
			wantData: authRsp, wantSW: 0x9000,
		},
		{
			name: "61xx chain concatenates", proto: apdu.T1, cmd: authCmd,
			script: []string{authCmd, "6110", "00c0000010", authRsp[:32] + "611b",
				"00c000001b", authRsp[32:] + "9000"},
			wantData: authRsp, wantSW: 0x9000,
		},
		{
			name: "data returned with 61xx is kept", proto: apdu.T1, cmd: authCmd,
			script:   []string{authCmd, authRsp[:20] + "6121", "00c0000021", authRsp[20:] + "9000"},
			wantData: authRsp, wantSW: 0x9000,
		},
		{
			name: "6100 asks for 256 bytes", proto: apdu.T0, cmd: "00a4040c07a0000000871004",
			script:   []string{"00a4040c07a0000000871004", "6100", "00c0000000", "aa9000"},
			wantData: "aa", wantSW: 0x9000,
		},
		{
			name: "6Cxx resends with the card's Le", proto: apdu.T0, cmd: "00b2010400",
			script:   []string{"00b2010400", "6c03", "00b2010403", "800161" + "9000"},
			wantData: "800161", wantSW: 0x9000,
		},
		{
			name: "6Cxx on GET RESPONSE", proto: apdu.T0, cmd: authCmd,
			script:   []string{authCmdT0, "6122", "00c0000022", "6c21", "00c0000021", authRsp[:66] + "9000"},
			wantData: authRsp[:66], wantSW: 0x9000,
		},
		{
			name: "logical channel 1 kept on GET RESPONSE", proto: apdu.T0, cmd: "01880081221023553cbe9637a89d218ae64dae47bf351055f328b43577b9b94a9ffac354dfafb300",
			script:   []string{"01880081221023553cbe9637a89d218ae64dae47bf351055f328b43577b9b94a9ffac354dfafb3", "6102", "01c0000002", "dbff9000"},
			wantData: "dbff", wantSW: 0x9000,
		},
		{
			name: "further channel 5 kept on GET RESPONSE", proto: apdu.T1, cmd: "41b0000000",
			script:   []string{"41b0000000", "6101", "41c0000001", "009000"},
			wantData: "00", wantSW: 0x9000,
		},
		{
			name: "error SW is returned, not an error", proto: apdu.T1, cmd: authCmd,
			script: []string{authCmd, "9862"}, wantSW: 0x9862,
		},
		{
			name: "6Cxx twice is an error", proto: apdu.T0, cmd: "00b0000000",
			script:  []string{"00b0000000", "6c10", "00b0000010", "6c08"},
			wantErr: apdu.ErrRepeated6C,
		},
		{
			name: "truncated response", proto: apdu.T1, cmd: "00b0000000",
			script: []string{"00b0000000", "90"}, wantErr: apdu.ErrShort,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := apdutest.NewScript(tc.script...)
			c := apdu.NewConn(s, tc.proto)
			r, err := c.Transmit(parse(t, tc.cmd))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if s.Remaining() != 0 {
				t.Fatalf("%d scripted exchanges not sent; sent %x", s.Remaining(), s.Sent)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(r.Data, apdutest.MustHex(tc.wantData)) || r.SW != tc.wantSW {
				t.Fatalf("got %x %v, want %s %v", r.Data, r.SW, tc.wantData, tc.wantSW)
			}
		})
	}
}

func TestConnEndlessGetResponse(t *testing.T) {
	n := 0
	card := apdutest.Func(func(cmd []byte) ([]byte, error) {
		n++
		return []byte{0xAB, 0x61, 0x01}, nil
	})
	_, err := apdu.NewConn(card, apdu.T1).Transmit(apdu.Command{INS: 0xB0, Ne: 256})
	if !errors.Is(err, apdu.ErrTooManyGetResponse) {
		t.Fatalf("err %v", err)
	}
	if n > 64 {
		t.Fatalf("sent %d commands before giving up", n)
	}
}

func TestConnTransportError(t *testing.T) {
	boom := errors.New("reader unplugged")
	card := apdutest.Func(func([]byte) ([]byte, error) { return nil, boom })
	if _, err := apdu.NewConn(card, apdu.T0).Transmit(apdu.Command{INS: 0xB0, Ne: 1}); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

// FuzzConn lets a card answer anything: the Conn must end with a response or
// an error, never panic or loop.
func FuzzConn(f *testing.F) {
	f.Add([]byte{0x61, 0x10}, []byte{0x6C, 0x05}, []byte{0x90, 0x00})
	f.Add([]byte{0x61, 0x00}, []byte{0xDB, 0x61, 0x01}, []byte{0x6C})
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		rs := [][]byte{a, b, c}
		i := 0
		card := apdutest.Func(func([]byte) ([]byte, error) {
			r := rs[i%3]
			i++
			return r, nil
		})
		for _, p := range []apdu.Protocol{apdu.T0, apdu.T1} {
			_, _ = apdu.NewConn(card, p).Transmit(apdu.Command{INS: 0x88, P2: 0x81, Data: make([]byte, 34), Ne: 256})
		}
	})
}

func BenchmarkConnAuthenticateT0(b *testing.B) {
	rsp := apdutest.MustHex(authRsp + "9000")
	card := apdutest.Func(func(cmd []byte) ([]byte, error) {
		if cmd[1] == 0xC0 {
			return rsp, nil
		}
		return []byte{0x61, byte(len(rsp) - 2)}, nil
	})
	c := apdu.NewConn(card, apdu.T0)
	cmd := apdu.Command{INS: 0x88, P2: 0x81, Data: make([]byte, 34), Ne: 256}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Transmit(cmd); err != nil {
			b.Fatal(err)
		}
	}
}
