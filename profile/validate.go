package profile

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/imsue/imsue/isim"
	"github.com/imsue/imsue/isim/milenage"
)

// validate turns a decoded profile into a Profile, checking the fields in a
// fixed order so that the same file always gives the same first error.
func validate(r *raw, path string) (*Profile, error) {
	p := &Profile{Path: path, Name: name(path), MNCLength: r.mncLength}

	// Card first: it decides which other fields are required.
	switch {
	case r.card == CardNone, r.card == CardPCSC:
	case strings.HasPrefix(r.card, CardPCSC+":") && len(r.card) > len(CardPCSC)+1:
	default:
		return nil, fieldErr("card", `want "", "pcsc" or "pcsc:<reader name substring>", got %q`, r.card)
	}
	p.Card = r.card
	software := p.Card == CardNone

	if err := identities(r, p, software); err != nil {
		return nil, err
	}
	if err := keys(r, p, software); err != nil {
		return nil, err
	}

	state := r.sqnState
	if !r.present["sqn_state"] {
		state = p.Name + ".sqn"
	} else if state == "" {
		return nil, fieldErr("sqn_state", "empty path (leave the field out for the default %s.sqn)", p.Name)
	}
	if !filepath.IsAbs(state) {
		state = filepath.Join(filepath.Dir(path), state)
	}
	if filepath.Clean(state) == filepath.Clean(path) {
		return nil, fieldErr("sqn_state", "is the profile file itself")
	}
	p.SQNState = state
	p.Password = Secret(r.password)
	if r.present["imei"] {
		if err := checkIMEI(r.imei); err != nil {
			return nil, fieldErr("imei", "%v", err)
		}
		p.IMEI = r.imei
	}
	return p, nil
}

// checkIMEI accepts the 15-digit IMEI of TS 23.003 §6.2.1: TAC (8), SNR
// (6) and the Luhn check digit of Annex B.
func checkIMEI(s string) error {
	if len(s) != 15 {
		return fmt.Errorf("want 15 digits (TAC, SNR, check digit; TS 23.003 §6.2.1), got %d characters", len(s))
	}
	sum := 0
	for i := range 15 {
		c := s[i]
		if c < '0' || c > '9' {
			return errors.New("not all digits")
		}
		d := int(c - '0')
		if i%2 == 1 { // every second digit from the left, doubled (TS 23.003 Annex B)
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	if sum%10 != 0 {
		return errors.New("check digit wrong (TS 23.003 Annex B)")
	}
	return nil
}

// identities fills p.Identity: what the profile gives, each missing part
// derived from the IMSI (TS 23.003 §13). Derivation follows the spec to the
// letter: a derived IMPI uses the IMSI's home domain even when the profile
// names another domain (give impi explicitly in that case).
func identities(r *raw, p *Profile, software bool) error {
	id := isim.Identity{IMPI: r.impi, Domain: r.domain, IMPUs: r.impu, IMSI: r.imsi}
	if r.present["imsi"] {
		if err := isim.ValidateIMSI(r.imsi); err != nil {
			return fieldErr("imsi", "%v", err)
		}
	}
	if r.present["impi"] {
		if err := checkToken(r.impi); err != nil {
			return fieldErr("impi", "%v", err)
		}
		if !strings.Contains(r.impi, "@") {
			return fieldErr("impi", "want the NAI form user@realm (TS 23.228 §4.3.3.1)")
		}
	}
	for i, u := range r.impu {
		if err := checkIMPU(u); err != nil {
			return fieldErr("impu", "entry %d: %v", i+1, err)
		}
	}
	if r.present["domain"] {
		if err := checkDomain(r.domain); err != nil {
			return fieldErr("domain", "%v", err)
		}
	}

	missing := id.IMPI == "" || len(id.IMPUs) == 0 || id.Domain == ""
	switch {
	case !missing:
	case r.imsi != "":
		if r.mncLength == 0 {
			return fieldErr("mnc_length", "required (2 or 3) to derive the identities the profile leaves out from imsi")
		}
		derived, err := isim.IdentityFromIMSI(r.imsi, r.mncLength)
		if err != nil {
			return fieldErr("imsi", "%v", err)
		}
		if id.IMPI == "" {
			id.IMPI = derived.IMPI
		}
		if len(id.IMPUs) == 0 {
			id.IMPUs = derived.IMPUs
		}
		if id.Domain == "" {
			id.Domain = derived.Domain
		}
	case software:
		// Without IMSI and without a card nothing can fill the gap.
		for _, f := range []struct {
			name  string
			empty bool
		}{{"impi", id.IMPI == ""}, {"impu", len(id.IMPUs) == 0}, {"domain", id.Domain == ""}} {
			if f.empty {
				return fieldErr(f.name, "required when imsi is absent")
			}
		}
	}
	// With a card, identities the profile leaves out come from the card.
	p.Identity = id
	return nil
}

// keys parses K and OP/OPc. The software ISIM needs K and exactly one of
// OP/OPc; a card profile may carry them (for the virtual card, or to check
// AUTS in the lab) but then completely.
func keys(r *raw, p *Profile, software bool) error {
	hasK, hasOP, hasOPc := r.present["k"], r.present["op"], r.present["opc"]
	if hasOP && hasOPc {
		return fieldErr("op", "give op or opc, not both")
	}
	if hasK {
		k, err := isim.ParseKey(r.k)
		if err != nil {
			return fieldErr("k", "%v", err)
		}
		p.K = k
	}
	switch {
	case hasOP:
		op, err := isim.ParseKey(r.op)
		if err != nil {
			return fieldErr("op", "%v", err)
		}
		p.OPGiven = true
		if hasK {
			p.OPc = milenage.OPc(p.K, op)
		}
	case hasOPc:
		opc, err := isim.ParseKey(r.opc)
		if err != nil {
			return fieldErr("opc", "%v", err)
		}
		p.OPc = opc
	}
	switch {
	case hasK && (hasOP || hasOPc):
		p.HasKeys = true
	case hasK:
		return fieldErr("opc", "required with k: give opc (or op)")
	case hasOP || hasOPc:
		return fieldErr("k", "required with op/opc")
	case software:
		return fieldErr("k", `required for the software ISIM (or set card: "pcsc" to use a real card)`)
	}
	return nil
}

// checkToken refuses what cannot go into a SIP header parameter or a digest
// username="..." unescaped: whitespace, controls, quotes, angle brackets.
func checkToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i, c := range s {
		if c <= ' ' || c == 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' {
			return fmt.Errorf("character %d (%q) not allowed", i+1, c)
		}
	}
	return nil
}

func checkIMPU(u string) error {
	if err := checkToken(u); err != nil {
		return err
	}
	scheme, rest, ok := strings.Cut(u, ":")
	switch strings.ToLower(scheme) {
	case "sip", "sips", "tel":
	default:
		ok = false
	}
	if !ok || rest == "" {
		return errors.New("want a sip:, sips: or tel: URI")
	}
	return nil
}

// checkDomain accepts a DNS name or an IPv4 literal (lab cores use both).
func checkDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("want a DNS name of 1 to 253 characters, got %d", len(d))
	}
	for _, label := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty or over-long label")
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("character %q not allowed in a domain", c)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a label starts or ends with '-'")
		}
	}
	return nil
}
