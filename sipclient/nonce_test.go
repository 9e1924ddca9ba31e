package sipclient

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imsue/imsue/digest"
	"github.com/imsue/imsue/sipnet"
)

// A nonce is never answered twice with the same nc (RFC 2617 §3.2.2: a
// repeated nc is a replay, which a strict S-CSCF answers with 403): the
// refreshes and the de-registration over the SAs answer the last nonce
// with nc 2, 3, … and a fresh cnonce each (TS 24.229 §5.1.1.4.1). Against
// the lab core verifying every REGISTER (its default, as Kamailio's
// ims_auth), the registration, three refreshes and the de-registration
// cost one AKA run, and the de-REGISTER gets its 200 without a challenge.
func TestNonceReuseCountsNC(t *testing.T) {
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			core := startCore(t, nil)
			auth := &countingAuth{Authenticator: softISIM(t, 1)}
			c, _, trace := ue(t, core, func(c *Config) { c.Transport = tr; c.Auth = auth })
			ctx := testCtx(t)
			if _, err := c.Register(ctx); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				c.op.Lock()
				_, err := c.doRegister(ctx, c.expires)
				c.op.Unlock()
				if err != nil {
					t.Fatal(err)
				}
			}
			if ok, err := c.Deregister(ctx); !ok {
				t.Fatalf("Deregister: %v", err)
			}
			msgs, err := sipnet.ReadTrace(strings.NewReader(trace.String()))
			if err != nil {
				t.Fatal(err)
			}
			used := map[string]uint32{}    // nonce and nc → the CSeq that sent them
			cnonces := map[string]uint32{} // cnonce → the CSeq that sent it
			reused := 0
			for _, m := range msgs {
				if !m.Sent || m.Method() != "REGISTER" {
					continue
				}
				a, err := digest.ParseAuthorization(m.Header("Authorization"))
				if err != nil || a.Nonce == "" {
					continue
				}
				cseq, _ := m.CSeq()
				key := fmt.Sprintf("%s nc=%08x", a.Nonce, a.NC)
				if prev, ok := used[key]; ok && prev != cseq {
					t.Errorf("REGISTERs CSeq %d and %d both answer %s", prev, cseq, key)
				}
				used[key] = cseq
				if a.NC > 1 {
					reused++
				}
				if prev, ok := cnonces[a.CNonce]; ok && prev != cseq {
					t.Errorf("cnonce %s sent in CSeq %d and %d", a.CNonce, prev, cseq)
				}
				cnonces[a.CNonce] = cseq
			}
			// Three refreshes and the de-registration answered the nonce again.
			if reused != 4 {
				t.Errorf("%d REGISTERs answered a nonce again with nc > 1; want 4", reused)
			}
			if st := core.Stats(); auth.n.Load() != 1 || st.Vectors != 1 || st.Challenges != 1 || st.Deregistered != 1 || st.AuthFailures != 0 {
				t.Errorf("%d AKA runs, core stats %+v: want one AKA run, one challenge, one de-registration", auth.n.Load(), st)
			}
		})
	}
}
