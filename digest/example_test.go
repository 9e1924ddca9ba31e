package digest_test

import (
	"encoding/hex"
	"fmt"
	"log"

	"github.com/imsue/imsue/digest"
)

// The UE side of an AKAv1-MD5 challenge, with the values of the derived
// MILENAGE test set 19 vector of digest_vectors.json (internal/vectors).
func Example() {
	ch, err := digest.ParseChallenge(`Digest realm="ims.mnc001.mcc001.3gppnetwork.org", ` +
		`nonce="gekrbA7g4S6866jZKpnfpbtS6Rx0esOrKlwj0V7jUdU=", algorithm=AKAv1-MD5, qop="auth,auth-int"`)
	if err != nil {
		log.Fatal(err)
	}
	rand, autn, _ := digest.AKANonce(ch.Nonce)
	fmt.Printf("RAND %x\nAUTN %x\n", rand, autn)

	// The ISIM answers RAND/AUTN with RES (and CK, IK); for AKAv1 the
	// password is RES itself.
	res, _ := hex.DecodeString("28d7b0f2a2ec3de5")
	qop, _ := ch.SelectQOP(digest.QOPAuth)
	a, err := ch.Answer(digest.Credentials{
		Username: "001010000000001@ims.mnc001.mcc001.3gppnetwork.org",
		Password: res,
		Method:   "REGISTER",
		URI:      "sip:ims.mnc001.mcc001.3gppnetwork.org",
		QOP:      qop,
		NC:       1,
		CNonce:   "0a4f113b", // digest.NewCNonce() in real use
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Response)
	// Output:
	// RAND 81e92b6c0ee0e12ebceba8d92a99dfa5
	// AUTN bb52e91c747ac3ab2a5c23d15ee351d5
	// c2c6dd76738697b5475f891daa89115b
}

// The first REGISTER of IMS AKA carries an Authorization with an empty nonce
// and response so that the S-CSCF learns the IMPI (TS 24.229 §5.1.1.2.2).
func ExampleAuthorization_String_initialRegister() {
	a := digest.Authorization{
		Username: "001010000000001@ims.mnc001.mcc001.3gppnetwork.org",
		Realm:    "ims.mnc001.mcc001.3gppnetwork.org",
		URI:      "sip:ims.mnc001.mcc001.3gppnetwork.org",
	}
	fmt.Println(a.String())
	// Output:
	// Digest username="001010000000001@ims.mnc001.mcc001.3gppnetwork.org", realm="ims.mnc001.mcc001.3gppnetwork.org", nonce="", uri="sip:ims.mnc001.mcc001.3gppnetwork.org", response=""
}
