package imscore

import (
	"strings"
	"testing"

	"github.com/imsue/imsue/digest"
)

// TestCKIKInChallengeDeregister: behind an external P-CSCF (Kamailio) the
// bare S-CSCF answers a registered contact's de-REGISTER with 200 at once,
// as for integrity-protected="yes", while a de-REGISTER of a contact that
// is not registered is still challenged.
func TestCKIKInChallengeDeregister(t *testing.T) {
	c, _ := startCore(t, Config{CKIKInChallenge: true})
	u := newUE(t, c, "UDP")

	// Before any registration: a de-REGISTER is challenged.
	u.sendUnprotected(u.registerText(regMsg{expires: 0}))
	if _, resp := u.response(wait); resp.StatusCode != 401 {
		t.Fatalf("de-REGISTER of an unregistered contact: %s, want 401", resp.StartLine())
	}

	u.cseq++
	u.sendUnprotected(u.registerText(regMsg{expires: -1}))
	_, resp := u.response(wait)
	ch, err := digest.ParseChallenge(headerValues(resp, "WWW-Authenticate")[0])
	if err != nil {
		t.Fatal(err)
	}
	ch.CK, ch.IK = "", ""
	if got, _ := u.aka(ch); got != "ok" {
		t.Fatalf("AKA: %s", got)
	}
	authz := u.authorization("ok", nil)
	u.cseq++
	u.sendUnprotected(u.registerText(regMsg{expires: -1, auth: authz}))
	if _, resp := u.response(wait); resp.StatusCode != 200 {
		t.Fatalf("REGISTER: %s", resp.StartLine())
	}

	// Replaying the last Authorization (same nc) is refused as a replay
	// (RFC 2617 §3.2.2), as Kamailio's ims_auth does.
	u.cseq++
	u.sendUnprotected(u.registerText(regMsg{expires: 0, auth: authz}))
	if _, resp := u.response(wait); resp.StatusCode != 403 {
		t.Fatalf("replayed Authorization: %s, want 403", resp.StartLine())
	}
	// The de-REGISTER answers the last nonce with the next nc.
	u.cseq++
	u.sendUnprotected(u.registerText(regMsg{expires: 0, auth: u.authorization("ok", nil)}))
	_, resp = u.response(wait)
	if resp.StatusCode != 200 {
		t.Fatalf("de-REGISTER of the registered contact: %s, want 200 without a challenge", resp.StartLine())
	}
	// The 200 names the contact that went, with expires=0: Kamailio's
	// P-CSCF removes its contact and SAs only then.
	if ct := headerValues(resp, "Contact"); len(ct) != 1 || !strings.HasSuffix(ct[0], ";expires=0") {
		t.Errorf("de-REGISTER 200: Contact %q, want the contact with expires=0", ct)
	}
	if n := c.stats.deregistered.Load(); n != 1 {
		t.Errorf("%d de-registrations counted, want 1", n)
	}
	// Now it is gone: the next de-REGISTER is challenged again.
	u.cseq++
	u.sendUnprotected(u.registerText(regMsg{expires: 0, auth: authz}))
	if _, resp := u.response(wait); resp.StatusCode != 401 {
		t.Fatalf("second de-REGISTER: %s, want 401", resp.StartLine())
	}
}
