package kamailio

import (
	"encoding/base64"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/imsue/imsue/digest"
)

// cfgSubst is the re.subst transformation pcscf.cfg.in applies to the 401's
// WWW-Authenticate to remove ck and ik before the UE sees it.
func cfgSubst(t *testing.T) (re *regexp.Regexp, repl string) {
	t.Helper()
	cfg, err := os.ReadFile("pcscf.cfg.in")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "{re.subst,/"
	i := strings.Index(string(cfg), marker)
	if i < 0 {
		t.Fatalf("pcscf.cfg.in has no %q", marker)
	}
	// /pattern/replacement/flags}
	parts := strings.SplitN(string(cfg[i+len(marker):]), "/", 3)
	if len(parts) != 3 {
		t.Fatal("pcscf.cfg.in: re.subst is not /pattern/replacement/flags")
	}
	flags, _, _ := strings.Cut(parts[2], "}")
	if flags != "gi" {
		t.Fatalf("re.subst flags %q; this test models gi", flags)
	}
	// Kamailio compiles with POSIX regcomp (REG_EXTENDED|REG_ICASE) and
	// matches leftmost-longest; \" is a literal quote in both syntaxes.
	re, err = regexp.Compile("(?i)" + parts[0])
	if err != nil {
		t.Fatalf("re.subst pattern %q: %v", parts[0], err)
	}
	re.Longest()
	return re, parts[1]
}

// TestCfgStripsCKIK: the configuration's substitution removes exactly ck
// and ik from the lab S-CSCF's challenge, whatever the nonce. The first
// version of the pattern made the comma optional and so could start inside
// the base64 nonce: a nonce ending in "ck=" or "ik=" (1 in 256 of them)
// lost its tail and the algorithm parameter, and the UE, seeing no
// algorithm, read an MD5 challenge (caught once in the UML interop run).
func TestCfgStripsCKIK(t *testing.T) {
	re, repl := cfgSubst(t)
	vector := make([]byte, 32) // RAND‖AUTN
	for i := range vector {
		vector[i] = byte(7 * i)
	}
	nonces := []string{
		base64.StdEncoding.EncodeToString(vector),
		strings.Repeat("A", 41) + "ck=",
		strings.Repeat("A", 41) + "ik=",
		strings.Repeat("Q", 41) + "Ik=",
	}
	for _, nonce := range nonces {
		t.Run(nonce[len(nonce)-4:], func(t *testing.T) {
			if _, err := base64.StdEncoding.Strict().DecodeString(nonce); err != nil {
				t.Fatalf("test nonce %q is not canonical base64: %v", nonce, err)
			}
			sent := digest.Challenge{Realm: "ims.mnc001.mcc001.3gppnetwork.org", Nonce: nonce, Algorithm: "AKAv1-MD5",
				CK: strings.Repeat("0a", 16), IK: strings.Repeat("b1", 16), QOP: []string{"auth"},
				Opaque: "b3BhcXVl", HasOpaque: true}
			header := sent.String()
			stripped := re.ReplaceAllString(header, repl)
			// The same substitution by glibc's POSIX engine, Kamailio's.
			sed := exec.Command("sed", "-E", "s/"+re.String()[len("(?i)"):]+"/"+repl+"/gI")
			sed.Stdin = strings.NewReader(header + "\n")
			out, err := sed.Output()
			if err != nil {
				t.Fatalf("sed: %v", err)
			}
			if glibc := strings.TrimSuffix(string(out), "\n"); glibc != stripped {
				t.Fatalf("glibc's regex gives\n%s\nGo's\n%s", glibc, stripped)
			}
			got, err := digest.ParseChallenge(stripped)
			if err != nil {
				t.Fatalf("%s\nbecame\n%s\n%v", header, stripped, err)
			}
			want := sent
			want.CK, want.IK = "", ""
			if got.Nonce != want.Nonce || got.Algorithm != want.Algorithm || got.CK != "" || got.IK != "" ||
				got.Realm != want.Realm || strings.Join(got.QOP, ",") != "auth" || got.Opaque != want.Opaque {
				t.Errorf("%s\nbecame\n%s\nparsed %+v", header, stripped, *got)
			}
		})
	}
}
