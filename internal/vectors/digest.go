package vectors

import (
	"errors"
	"fmt"
)

// DigestVector is one HTTP Digest (RFC 2617) or Digest AKA (RFC 3310,
// RFC 4169) computation. The digest values (HA1, HA2, HEntityBody,
// Response) stay lowercase hex text, the form in which Digest hashes them
// and puts them on the wire; NC stays the 8 hex digits of the header.
type DigestVector struct {
	Name   string
	Status string // whether the expected response is external or derived by the project's own code
	Source string // "" for the derived vectors
	Note   string

	Algorithm string // "" for RFC 2617's plain MD5, else "AKAv1-MD5" or "AKAv2-MD5"
	Username  string
	Realm     string
	Method    string
	URI       string
	Nonce     string
	QOP       string // "", "auth" or "auth-int"
	NC        string // e.g. "00000001"
	CNonce    string
	Body      string // the entity body hashed for auth-int

	// Password is the digest password as octets: password_ascii as text
	// (plain MD5; AKAv2, where it is base64) or password_hex decoded
	// (AKAv1: RES; empty for the synchronisation-failure answer).
	Password []byte

	HA1         string
	HA2         string
	HEntityBody string // H(entity-body), "" unless the file gives it
	Response    string

	// AKA is the challenge behind the nonce; nil for plain MD5.
	AKA *DigestAKA
}

// DigestAKA is the AKA side of a Digest AKA vector: the challenge the nonce
// carries (base64 of RAND ‖ AUTN) and the ISIM's answer.
type DigestAKA struct {
	K    [16]byte
	OPc  [16]byte // MILENAGE vectors only (XOR is false)
	XOR  bool     // the TS 34.108 §8.1.2 XOR test algorithm instead of MILENAGE
	AK   [6]byte  // XOR vectors only
	RAND [16]byte
	AUTN [16]byte
	SQN  [6]byte
	AMF  [2]byte
	RES  []byte // 8 bytes from MILENAGE, 16 from the XOR algorithm
	CK   [16]byte
	IK   [16]byte

	// AKAv2Password is derived_AKAv2_password: the AKAv2 password
	// (base64 of HMAC-MD5(RES ‖ IK ‖ CK, "http-digest-akav2-password"))
	// that the file gives next to an AKAv1 vector, or "".
	AKAv2Password string
	// HMACKey and HMACMessage are that HMAC's key and message, given with
	// the AKAv2-MD5 vector; nil and "" otherwise.
	HMACKey     []byte
	HMACMessage string

	// Resync is the synchronisation-failure answer; nil for the others.
	Resync *DigestResync
}

// DigestResync is a synchronisation failure's answer (RFC 3310 §3.4): the
// auts parameter and the values behind it.
type DigestResync struct {
	SQNMS  [6]byte
	AKStar [6]byte
	MACS   [8]byte // MAC-S with AMF 0000
	AUTS   [14]byte
	Param  string // auts= parameter: base64 of AUTS
}

const digestFile = "digest_vectors.json"

// digestDoc is digest_vectors.json as it is written.
type digestDoc struct {
	Description string `json:"description"`
	Vectors     []struct {
		Name             string  `json:"name"`
		Status           string  `json:"status"`
		Source           string  `json:"source"`
		Note             string  `json:"note"`
		Algorithm        string  `json:"algorithm"`
		Username         string  `json:"username"`
		Realm            string  `json:"realm"`
		Method           string  `json:"method"`
		URI              string  `json:"uri"`
		Nonce            string  `json:"nonce"`
		QOP              string  `json:"qop"`
		NC               string  `json:"nc"`
		CNonce           string  `json:"cnonce"`
		Body             string  `json:"body"`
		PasswordASCII    *string `json:"password_ascii"`
		PasswordHex      *string `json:"password_hex"`
		HA1              string  `json:"HA1"`
		HA2              string  `json:"HA2"`
		HEntityBody      string  `json:"H_entity_body"`
		Response         string  `json:"response"`
		ExpectedResponse string  `json:"expected_response"`

		K             string  `json:"K"`
		OPc           *string `json:"OPc"`
		XORAlg        string  `json:"xor_alg"` // the XOR algorithm, as prose
		AK            *string `json:"AK"`
		RAND          *string `json:"RAND"`
		AUTN          string  `json:"AUTN"`
		SQN           string  `json:"SQN"`
		AMF           string  `json:"AMF"`
		RES           string  `json:"RES"`
		CK            string  `json:"CK"`
		IK            string  `json:"IK"`
		AKAv2Password string  `json:"derived_AKAv2_password"`
		HMACKey       *string `json:"hmac_key_hex"`
		HMACMessage   string  `json:"hmac_message_ascii"`

		AUTS      *string `json:"AUTS"`
		AUTSParam string  `json:"auts_param"`
		SQNMS     string  `json:"SQN_MS"`
		AKStar    string  `json:"AK_star"`
		MACS      string  `json:"MAC_S_amf0"`
	} `json:"vectors"`
}

func decodeDigest(data []byte) ([]DigestVector, error) {
	var doc digestDoc
	if err := unmarshalStrict(digestFile, data, &doc); err != nil {
		return nil, err
	}
	out := make([]DigestVector, 0, len(doc.Vectors))
	for i, r := range doc.Vectors {
		f := newFields(digestFile, "vectors", i, r.Name)
		v := DigestVector{
			Name: f.text("name", r.Name), Status: r.Status, Source: r.Source, Note: r.Note,
			Algorithm: r.Algorithm, Username: f.text("username", r.Username), Realm: f.text("realm", r.Realm),
			Method: f.text("method", r.Method), URI: f.text("uri", r.URI), Nonce: f.text("nonce", r.Nonce),
			QOP: r.QOP, NC: f.text("nc", r.NC), CNonce: r.CNonce, Body: r.Body,
			HA1: f.md5Hex("HA1", r.HA1), HA2: f.md5Hex("HA2", r.HA2),
			HEntityBody: f.md5Hex("H_entity_body", r.HEntityBody),
			Response:    f.text("response", f.md5Hex("response", r.Response)),
		}
		if len(r.NC) != 8 {
			f.fail("nc", fmt.Errorf("%d characters, want 8 hex digits", len(r.NC)))
		} else {
			var nc [4]byte
			f.fixed(nc[:], "nc", r.NC)
		}
		if r.ExpectedResponse != "" && r.ExpectedResponse != r.Response {
			f.fail("expected_response", errors.New("differs from response"))
		}
		switch {
		case (r.PasswordASCII == nil) == (r.PasswordHex == nil):
			f.fail("password_ascii/password_hex", errors.New("want exactly one"))
		case r.PasswordASCII != nil:
			v.Password = []byte(*r.PasswordASCII)
		default:
			v.Password = f.bytes("password_hex", *r.PasswordHex, 0)
		}

		if r.RAND != nil {
			a := &DigestAKA{AKAv2Password: r.AKAv2Password, HMACMessage: r.HMACMessage}
			f.fixed(a.K[:], "K", r.K)
			f.fixed(a.RAND[:], "RAND", *r.RAND)
			f.fixed(a.AUTN[:], "AUTN", r.AUTN)
			f.fixed(a.SQN[:], "SQN", r.SQN)
			f.fixed(a.AMF[:], "AMF", r.AMF)
			f.fixed(a.CK[:], "CK", r.CK)
			f.fixed(a.IK[:], "IK", r.IK)
			a.RES = f.bytes("RES", f.text("RES", r.RES), 4) // TS 33.102: RES is 32 to 128 bits
			a.XOR = r.XORAlg != ""
			if f.optFixed(a.OPc[:], "OPc", r.OPc) == a.XOR {
				f.fail("OPc", errors.New("want it for a MILENAGE vector and only then (xor_alg marks the others)"))
			}
			if f.optFixed(a.AK[:], "AK", r.AK) != a.XOR {
				f.fail("AK", errors.New("want it for an XOR vector and only then"))
			}
			if r.HMACKey != nil {
				a.HMACKey = f.bytes("hmac_key_hex", *r.HMACKey, 1)
			}
			if r.AUTS != nil {
				s := &DigestResync{Param: f.text("auts_param", r.AUTSParam)}
				f.fixed(s.AUTS[:], "AUTS", *r.AUTS)
				f.fixed(s.SQNMS[:], "SQN_MS", r.SQNMS)
				f.fixed(s.AKStar[:], "AK_star", r.AKStar)
				f.fixed(s.MACS[:], "MAC_S_amf0", r.MACS)
				a.Resync = s
			}
			v.AKA = a
		} else if r.Algorithm != "" || r.AUTN != "" || r.RES != "" || r.AUTS != nil {
			f.fail("RAND", fmt.Errorf("%w for an AKA vector", errMissing))
		}
		if f.err != nil {
			return nil, f.err
		}
		out = append(out, v)
	}
	return out, nil
}
