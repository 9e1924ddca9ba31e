package isim

import (
	"fmt"
)

// ValidateIMSI checks that imsi is 14 or 15 decimal digits: a 3-digit MCC,
// a 2- or 3-digit MNC and an MSIN of up to 10 digits (TS 23.003 §2.2). The
// lower bound is this project's: shorter IMSIs exist in theory but no IMS
// core derives identities from them.
func ValidateIMSI(imsi string) error {
	if n := len(imsi); n < 14 || n > 15 {
		return fmt.Errorf("want 14 or 15 digits, got %d characters", n)
	}
	for i := 0; i < len(imsi); i++ {
		if imsi[i] < '0' || imsi[i] > '9' {
			return fmt.Errorf("not a digit at position %d", i+1)
		}
	}
	return nil
}

// HomeDomain returns the home network domain derived from the IMSI (TS
// 23.003 §13.2): ims.mnc<MNC>.mcc<MCC>.3gppnetwork.org, the MNC always
// written with 3 digits (a 2-digit MNC gets a leading zero). mncLength is
// the MNC length the card's EF.AD gives (2 or 3): the IMSI alone does not
// tell where the MNC ends.
func HomeDomain(imsi string, mncLength int) (string, error) {
	if err := ValidateIMSI(imsi); err != nil {
		return "", fmt.Errorf("IMSI: %w", err)
	}
	if mncLength != 2 && mncLength != 3 {
		return "", fmt.Errorf("MNC length: want 2 or 3, got %d", mncLength)
	}
	mcc, mnc := imsi[:3], imsi[3:3+mncLength]
	if mncLength == 2 {
		mnc = "0" + mnc
	}
	return "ims.mnc" + mnc + ".mcc" + mcc + ".3gppnetwork.org", nil
}

// IdentityFromIMSI derives the identities a UE without an ISIM uses (TS
// 23.003 §13.3 and §13.4B): the private identity <IMSI>@<home domain> and the
// temporary public identity sip:<IMSI>@<home domain>. The temporary IMPU is
// for REGISTER only: the network returns the real IMPUs in P-Associated-URI.
func IdentityFromIMSI(imsi string, mncLength int) (Identity, error) {
	domain, err := HomeDomain(imsi, mncLength)
	if err != nil {
		return Identity{}, err
	}
	return Identity{
		IMPI:   imsi + "@" + domain,
		IMPUs:  []string{"sip:" + imsi + "@" + domain},
		Domain: domain,
		IMSI:   imsi,
	}, nil
}
