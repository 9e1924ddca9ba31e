//go:build pcsc

package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imsue/imsue/cards/pcsctest"
	"github.com/imsue/imsue/cards/vcard"
	"github.com/imsue/imsue/internal/testenv"
	"github.com/imsue/imsue/isim"
)

// cardEnv starts pcscd with a virtual card whose ISIM is the software ISIM
// of a keys profile (its own SQN state), and writes a card profile naming
// the card's reader. It returns the env and the card profile's path.
func cardEnv(t *testing.T, cfg vcard.Config) (*pcsctest.Env, string) {
	t.Helper()
	dir := t.TempDir()
	env := pcsctest.StartProfile(t, cardKeysProfile(t, dir, "emu.yaml"), cfg)
	// The card profile carries the keys too, so that aka can open AUTS.
	card := cardProfile(t, dir, "card.yaml", "card: \"pcsc:"+env.Reader+"\"\nk: "+cardK+"\nopc: "+cardOPc+"\n")
	return env, card
}

func TestCardInfoPCSC(t *testing.T) {
	env, _ := cardEnv(t, vcard.Config{PCSCF: []string{"192.0.2.10"}})
	code, stdout, stderr := cardRun("card", "info", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m := cardJSON(t, stdout)
	id, _ := m["identity"].(map[string]any)
	readers, _ := m["readers"].([]any)
	if m["reader"] != env.Reader || m["atr"] != hex.EncodeToString(env.Card.ATR()) || m["protocol"] != "T=1" ||
		m["selected"] != "ISIM" || m["identity_source"] != "isim" || len(readers) != 2 ||
		id["impi"] != cardIdentity.IMPI || id["domain"] != cardIdentity.Domain ||
		!strings.Contains(stdout, `"impu":["`+cardIdentity.IMPUs[0]+`"]`) ||
		!strings.Contains(stdout, `"pin":{"state":"not_needed"}`) || !strings.Contains(stdout, `"pcscf":["192.0.2.10"]`) {
		t.Fatalf("card info:\n%s", stdout)
	}
	apps, _ := m["applications"].([]any)
	if len(apps) != 2 || !strings.Contains(stdout, `"kind":"ISIM","aid":"a0000000871004`) {
		t.Fatalf("applications %v", apps)
	}

	code, stdout, _ = cardRun("card", "info", "--reader", env.Reader)
	for _, want := range []string{"* " + env.Reader + "  (card)", "ISIM  a0000000871004ffffffff8907090000 ISim1  (used)",
		"IMPI:          " + cardIdentity.IMPI, "Identities:    ISIM files", "PIN1:          not needed"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestCardAKA: imsue aka through the card gives what the software ISIM
// gives for the same K/OPc; sync and MAC failures come back as such.
func TestCardAKA(t *testing.T) {
	for _, m := range []struct {
		name string
		cfg  vcard.Config
	}{
		{"T=1", vcard.Config{}},
		{"T=0 61xx", vcard.Config{T0GetResponse: true}},
		{"T=0 6Cxx", vcard.Config{T0WrongLe: true}},
		{"USIM only", vcard.Config{USIMOnly: true, T0GetResponse: true, T0WrongLe: true}},
	} {
		t.Run(m.name, func(t *testing.T) {
			env, card := cardEnv(t, m.cfg)
			soft := cardKeysProfile(t, t.TempDir(), "soft.yaml")
			autn := cardAUTN(t, 0x20)

			code, out, stderr := cardRun("aka", "--json", "--profile", card, "--rand", cardRAND, "--autn", autn)
			if code != 0 {
				t.Fatalf("card: exit %d %s", code, stderr)
			}
			viaCard := cardJSON(t, out)
			code, out, _ = cardRun("aka", "--json", "--profile", soft, "--rand", cardRAND, "--autn", autn)
			viaSoft := cardJSON(t, out)
			if code != 0 || viaCard["result"] != "success" || viaCard["res"] != viaSoft["res"] || viaCard["ck"] != viaSoft["ck"] ||
				viaCard["ik"] != viaSoft["ik"] || viaCard["res"] != cardRES || viaCard["ck"] != cardCK || viaCard["ik"] != cardIK {
				t.Fatalf("card %v\nsoftware %v", viaCard, viaSoft)
			}

			code, out, _ = cardRun("aka", "--json", "--profile", card, "--rand", cardRAND, "--autn", autn)
			if r := cardJSON(t, out); code != exitSync || r["result"] != "sync_failure" || r["sqn_ms"] != "000000000020" || len(r["auts"].(string)) != 28 {
				t.Fatalf("replay through the card: exit %d %v", code, r)
			}
			bad := []byte(autn)
			bad[20] ^= 1 // in the MAC
			code, out, _ = cardRun("aka", "--json", "--profile", card, "--rand", cardRAND, "--autn", string(bad))
			if r := cardJSON(t, out); code != exitMAC || r["result"] != "mac_failure" {
				t.Fatalf("tampered AUTN through the card: exit %d %v", code, r)
			}

			code, out, _ = cardRun("card", "info", "--json")
			info := cardJSON(t, out)
			wantSel, wantSrc := "ISIM", "isim"
			if m.cfg.USIMOnly {
				wantSel, wantSrc = "USIM", "imsi"
			}
			if code != 0 || info["selected"] != wantSel || info["identity_source"] != wantSrc ||
				info["identity"].(map[string]any)["impi"] != cardIdentity.IMPI {
				t.Fatalf("card info: %v", info)
			}
			st := env.Card.Stats()
			if (st.Sent61 > 0) != (m.cfg.T0GetResponse || m.cfg.T0WrongLe) || (st.Sent6C > 0) != m.cfg.T0WrongLe || st.Authenticates != 3 {
				t.Fatalf("card stats %+v", st)
			}
		})
	}
}

func TestCardPIN(t *testing.T) {
	_, card := cardEnv(t, vcard.Config{PIN: []byte("2468")})
	dir := t.TempDir()
	wrong := cardProfile(t, dir, "wrong.pin", "1357\n")
	right := cardProfile(t, dir, "right.pin", "2468\n")

	code, stdout, stderr := cardRun("card", "info", "--json", "--pin-file", wrong)
	if code != exitCard || !strings.Contains(stderr, "wrong PIN, 2 tries left") || cardJSON(t, stdout)["exit_code"] != 9.0 {
		t.Fatalf("wrong PIN: exit %d %q", code, stderr)
	}
	if strings.Contains(stderr+stdout, "1357") {
		t.Fatal("the PIN is in the output")
	}
	// Without a PIN, info still reports, with the state and what it could not read.
	code, stdout, _ = cardRun("card", "info", "--json")
	if m := cardJSON(t, stdout); code != 0 || !strings.Contains(stdout, `"pin":{"state":"needed","retries_left":2}`) ||
		!strings.Contains(m["identity_error"].(string), "6982") {
		t.Fatalf("info without PIN: exit %d\n%s", code, stdout)
	}

	// aka with a card PIN: from $IMSUE_PIN_FILE; without it and without a
	// terminal, a card error that says what to do.
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	saved := os.Stdin
	os.Stdin = devnull
	t.Cleanup(func() { os.Stdin = saved })
	autn := cardAUTN(t, 0x40)
	code, _, stderr = cardRun("aka", "--profile", card, "--rand", cardRAND, "--autn", autn)
	if code != exitCard || !strings.Contains(stderr, envPINFile) {
		t.Fatalf("aka without PIN: exit %d %q", code, stderr)
	}
	t.Setenv(envPINFile, wrong)
	code, _, stderr = cardRun("aka", "--profile", card, "--rand", cardRAND, "--autn", autn)
	if code != exitCard || !strings.Contains(stderr, "wrong PIN, 1 tries left") {
		t.Fatalf("aka with a wrong PIN: exit %d %q", code, stderr)
	}
	// One try left: neither aka nor info spends it unforced.
	code, _, stderr = cardRun("aka", "--profile", card, "--rand", cardRAND, "--autn", autn)
	if code != exitCard || !strings.Contains(stderr, "one PIN try left") {
		t.Fatalf("aka at the last try: exit %d %q", code, stderr)
	}
	code, _, stderr = cardRun("card", "info", "--pin-file", right)
	if code != exitCard || !strings.Contains(stderr, "--force-pin") {
		t.Fatalf("info at the last try: exit %d %q", code, stderr)
	}
	if code, _, stderr = cardRun("card", "info", "--pin-file", right, "--force-pin"); code != 0 {
		t.Fatalf("forced right PIN: exit %d %q", code, stderr)
	}
	t.Setenv(envPINFile, right)
	code, stdout, stderr = cardRun("aka", "--json", "--profile", card, "--rand", cardRAND, "--autn", autn)
	if code != 0 || cardJSON(t, stdout)["res"] != cardRES {
		t.Fatalf("aka with the right PIN: exit %d %q %s", code, stderr, stdout)
	}
}

func TestCardBlockedPIN(t *testing.T) {
	cardEnv(t, vcard.Config{PIN: []byte("2468"), PINTries: 1})
	wrong := cardProfile(t, t.TempDir(), "wrong.pin", "1111")
	if code, _, stderr := cardRun("card", "info", "--pin-file", wrong, "--force-pin"); code != exitCard || !strings.Contains(stderr, "PIN blocked") {
		t.Fatalf("forced wrong last try: exit %d %q", code, stderr)
	}
	code, stdout, _ := cardRun("card", "info", "--json")
	if code != 0 || !strings.Contains(stdout, `"pin":{"state":"blocked"}`) {
		t.Fatalf("info of a blocked card: %d %s", code, stdout)
	}
	if code, _, stderr := cardRun("card", "info", "--pin-file", wrong); code != exitCard || !strings.Contains(stderr, "PUK") {
		t.Fatalf("PIN on a blocked card: exit %d %q", code, stderr)
	}
}

func TestCardNoReader(t *testing.T) {
	t.Run("pcscd without readers", func(t *testing.T) {
		pcsctest.StartDaemon(t, pcsctest.Options{NoReaders: true})
		code, stdout, stderr := cardRun("card", "info", "--json")
		if code != exitCard || !strings.Contains(stderr, "no smart-card reader") || cardJSON(t, stdout)["exit_code"] != 9.0 {
			t.Fatalf("exit %d %q", code, stderr)
		}
	})
	t.Run("no pcscd", func(t *testing.T) {
		pcsctest.NoDaemon(t)
		code, _, stderr := cardRun("card", "info")
		if code != exitCard || !strings.Contains(stderr, "pcscd") {
			t.Fatalf("exit %d %q", code, stderr)
		}
	})
	t.Run("reader not there", func(t *testing.T) {
		d := pcsctest.StartDaemon(t, pcsctest.Options{})
		code, _, stderr := cardRun("card", "info", "--reader", "Gemalto")
		if code != exitCard || !strings.Contains(stderr, `no reader matches "Gemalto"`) || !strings.Contains(stderr, d.Reader(1)) {
			t.Fatalf("exit %d %q", code, stderr)
		}
		code, _, stderr = cardRun("card", "info", "--wait", "500ms")
		if code != exitCard || !strings.Contains(stderr, "no card") {
			t.Fatalf("no card: exit %d %q", code, stderr)
		}
	})
}

// TestCardEmulateBinary runs the built imsue as the virtual card and as the
// card reader, through pcscd: what a user of the two commands sees.
func TestCardEmulateBinary(t *testing.T) {
	bin := testenv.BuildBinary(t, ".", "pcsc")
	d := pcsctest.StartDaemon(t, pcsctest.Options{})
	dir := t.TempDir()
	prof := cardKeysProfile(t, dir, "emu.yaml")
	pin := cardProfile(t, dir, "pin", "4321\n")
	emu := exec.Command(bin, "card", "emulate", "--json", "--profile", prof, "--vpcd", d.VPCDAddr(1), "--usim-only", "--t0-6cxx",
		"--pin-file", pin)
	var emuOut, emuErr bytes.Buffer
	emu.Stdout, emu.Stderr = &emuOut, &emuErr
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	emuDone := make(chan struct{})
	var emuErr2 error
	go func() { emuErr2 = emu.Wait(); close(emuDone) }()
	t.Cleanup(func() {
		select {
		case <-emuDone:
		default:
			_ = emu.Process.Kill()
			<-emuDone
		}
	})

	info := exec.Command(bin, "card", "info", "--json", "--reader", d.Reader(1), "--wait", "10s", "--pin-file", pin)
	info.Env = append(os.Environ(), pcsctest.EnvSocket+"="+pcsctest.Socket())
	var infoOut, infoErr bytes.Buffer
	info.Stdout, info.Stderr = &infoOut, &infoErr
	if err := info.Run(); err != nil {
		t.Fatalf("card info: %v\n%s\nemulator: %s", err, infoErr.String(), emuErr.String())
	}
	m := cardJSON(t, infoOut.String())
	if m["selected"] != "USIM" || m["protocol"] != "T=0" || m["identity"].(map[string]any)["impi"] != cardIdentity.IMPI {
		t.Fatalf("card info: %s", infoOut.String())
	}

	_ = emu.Process.Signal(syscall.SIGTERM)
	select {
	case <-emuDone:
		if emuErr2 != nil {
			t.Fatalf("emulator: %v\n%s", emuErr2, emuErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulator ignored SIGTERM")
	}
	e := cardJSON(t, emuOut.String())
	st := e["stats"].(map[string]any)
	if e["result"] != "stopped" || e["atr"] != m["atr"] || st["Sent6C"].(float64) < 1 {
		t.Fatalf("emulator: %s", emuOut.String())
	}
}

// failingISIM is an ISIM that cannot answer: the card says 6F00.
type failingISIM struct{}

func (failingISIM) Identity(context.Context) (isim.Identity, error) { return cardIdentity, nil }
func (failingISIM) Authenticate(context.Context, isim.RAND, isim.AUTN) (isim.Result, error) {
	return isim.Result{}, errors.New("broken")
}
func (failingISIM) Close() error { return nil }

// TestCardAKAStatusWord: a status word imsue does not expect from
// AUTHENTICATE is a card failure (exit 9) that explains it.
func TestCardAKAStatusWord(t *testing.T) {
	env := pcsctest.Start(t, vcard.Config{Identity: cardIdentity, MNCLength: 2, Auth: failingISIM{}})
	card := cardProfile(t, t.TempDir(), "card.yaml", "card: \"pcsc:"+env.Reader+"\"\n")
	code, stdout, stderr := cardRun("aka", "--json", "--profile", card, "--rand", cardRAND, "--autn", cardAUTN(t, 0x20))
	if code != exitCard || !strings.Contains(stderr, "AUTHENTICATE: status 6f00 (technical problem") || cardJSON(t, stdout)["exit_code"] != 9.0 {
		t.Fatalf("exit %d %q", code, stderr)
	}
}
