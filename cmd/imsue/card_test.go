package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
)

// cardSet is TS 35.208 set 1; the card tests take its values as the hex
// that flags, profiles and APDUs carry.
var (
	cardSet  = vectors.Milenage()[0]
	cardK    = hx(cardSet.K[:])
	cardOPc  = hx(cardSet.OPc[:])
	cardRAND = hx(cardSet.RAND[:])
	cardRES  = hx(cardSet.RES[:])
	cardCK   = hx(cardSet.CK[:])
	cardIK   = hx(cardSet.IK[:])
)

// cardProfile writes a profile into dir and returns its path.
func cardProfile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func cardKeysProfile(t *testing.T, dir, name string) string {
	return cardProfile(t, dir, name, "imsi: \"001010123456789\"\nmnc_length: 2\nk: "+cardK+"\nopc: "+cardOPc+"\n")
}

// cardAUTN is the network's AUTN for cardRAND with sequence number sqn.
func cardAUTN(t *testing.T, sqn uint64) string {
	t.Helper()
	var k, opc [16]byte
	var rnd [16]byte
	hex.Decode(k[:], []byte(cardK))
	hex.Decode(opc[:], []byte(cardOPc))
	hex.Decode(rnd[:], []byte(cardRAND))
	var s [6]byte
	for i := range s {
		s[i] = byte(sqn >> (8 * (5 - i)))
	}
	autn := milenage.New(k, opc).AUTN(rnd, s, [2]byte{0x80, 0})
	return hex.EncodeToString(autn[:])
}

func cardRun(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func cardJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value:\n%s", s)
	}
	return m
}

// TestCardEmulateVPCDProtocol plays vpcd against `imsue card emulate`: the
// card dials in, answers get-ATR and APDUs, and runs the profile's
// software ISIM.
func TestCardEmulateVPCDProtocol(t *testing.T) {
	dir := t.TempDir()
	prof := cardKeysProfile(t, dir, "emu.yaml")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errs := cardRun("card", "emulate", "--profile", prof, "--vpcd", l.Addr().String(), "--once", "--t0-61xx", "--json")
		done <- result{code, out, errs}
	}()
	_ = l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	send := func(b []byte) {
		if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() []byte {
		var h [2]byte
		if _, err := io.ReadFull(conn, h[:]); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(h[:]))
		if _, err := io.ReadFull(conn, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	xchg := func(cmd string) string {
		b, _ := hex.DecodeString(cmd)
		send(b)
		return hex.EncodeToString(recv())
	}
	send([]byte{0x04})
	atr := recv()
	if atr[0] != 0x3B || atr[3] != 0x80 { // TD1: T=0 with --t0-61xx
		t.Fatalf("ATR %x", atr)
	}
	send([]byte{0x01})
	if got := xchg("00a4040c07a0000000871004"); got != "9000" {
		t.Fatalf("SELECT ISIM → %s", got)
	}
	autn := cardAUTN(t, 0x20)
	if got := xchg("0088008122" + "10" + cardRAND + "10" + autn); got != "612c" {
		t.Fatalf("AUTHENTICATE (T=0) → %s, want 612c", got)
	}
	want := "db08" + cardRES + "10" + cardCK + "10" + cardIK + "9000"
	if got := xchg("00c000002c"); got != want {
		t.Fatalf("GET RESPONSE → %s, want %s", got, want)
	}
	conn.Close() // vpcd goes: with --once the card stops

	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	m := cardJSON(t, r.stdout)
	st, _ := m["stats"].(map[string]any)
	if m["result"] != "stopped" || m["atr"] != hex.EncodeToString(atr) || st["Authenticates"] != 1.0 || st["Sent61"] != 1.0 {
		t.Fatalf("JSON %v", m)
	}
	if !strings.Contains(r.stderr, "ISIM+USIM") || strings.Contains(r.stderr, cardK) {
		t.Fatalf("stderr %q", r.stderr)
	}
	// The accepted SQN is in the profile's state file: the ISIM is real.
	if _, err := os.Stat(filepath.Join(dir, "emu.sqn")); err != nil {
		t.Fatalf("SQN state: %v", err)
	}
}

func TestCardEmulateUsage(t *testing.T) {
	dir := t.TempDir()
	noIMSI := cardProfile(t, dir, "noimsi.yaml", "impi: a@b.c\nimpu: [sip:a@b.c]\ndomain: b.c\nk: "+cardK+"\nopc: "+cardOPc+"\n")
	noKeys := cardProfile(t, dir, "nokeys.yaml", "imsi: \"001010123456789\"\nmnc_length: 2\ncard: pcsc\n")
	good := cardKeysProfile(t, dir, "good.yaml")
	badPIN := cardProfile(t, dir, "pin", "12ab\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"card", "emulate"}, "--profile"},
		{[]string{"card", "emulate", "--profile", noIMSI}, "imsi"},
		{[]string{"card", "emulate", "--profile", noKeys}, "k"},
		{[]string{"card", "emulate", "--profile", good, "--pin-file", filepath.Join(dir, "missing")}, "--pin-file"},
		{[]string{"card", "emulate", "--profile", good, "--pin-file", badPIN}, "PIN"},
		{[]string{"card", "emulate", "--profile", good, "--pin-tries", "0"}, "--pin-tries"},
		{[]string{"card", "info", "--pin-file", "x", "--bogus"}, "bogus"},
	} {
		code, _, stderr := cardRun(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 naming %q", tc.args, code, stderr, tc.want)
		}
		if strings.Contains(stderr, "12ab") {
			t.Errorf("%v: the PIN is in the message: %q", tc.args, stderr)
		}
	}
}

// cardIdentity is the profile above as the card should report it.
var cardIdentity = isim.Identity{
	IMPI:   "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
	IMPUs:  []string{"sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org"},
	Domain: "ims.mnc001.mcc001.3gppnetwork.org",
	IMSI:   "001010123456789",
}
