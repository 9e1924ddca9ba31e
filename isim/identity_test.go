package isim

import (
	"slices"
	"strings"
	"testing"

	"github.com/imsue/imsue/internal/vectors"
)

// TestIdentityVectors uses the TS 23.003 §13 examples of uicc_vectors.json.
func TestIdentityVectors(t *testing.T) {
	v := vectors.UICC()
	if len(v.Identities) < 4 {
		t.Fatalf("found %d identity vectors, want at least 4", len(v.Identities))
	}
	for _, tt := range v.Identities {
		id, err := IdentityFromIMSI(tt.IMSI, tt.MNCLength)
		if err != nil {
			t.Errorf("%s: %v", tt.IMSI, err)
			continue
		}
		want := Identity{IMPI: tt.IMPI, IMPUs: []string{tt.TempIMPU}, Domain: tt.Domain, IMSI: tt.IMSI}
		if id.IMPI != want.IMPI || id.Domain != want.Domain || id.IMSI != want.IMSI || !slices.Equal(id.IMPUs, want.IMPUs) {
			t.Errorf("%s (MNC length %d):\n got %+v\nwant %+v", tt.IMSI, tt.MNCLength, id, want)
		}
	}
}

func TestIdentityFourteenDigitIMSI(t *testing.T) {
	// A 14-digit IMSI with a 3-digit MNC: MSIN of 8 digits.
	id, err := IdentityFromIMSI("31041012345678", 3)
	if err != nil {
		t.Fatal(err)
	}
	if id.IMPI != "31041012345678@ims.mnc410.mcc310.3gppnetwork.org" {
		t.Fatalf("IMPI %q", id.IMPI)
	}
}

func TestIdentityBadInput(t *testing.T) {
	tests := []struct {
		imsi string
		mnc  int
		want string
	}{
		{"0010101234567", 2, "want 14 or 15 digits, got 13"},
		{"0010101234567890", 2, "want 14 or 15 digits, got 16"},
		{"", 2, "got 0"},
		{"00101012345678x", 2, "not a digit at position 15"},
		{"001010 23456789", 2, "position 7"},
		{"001010123456789", 1, "MNC length: want 2 or 3, got 1"},
		{"001010123456789", 4, "MNC length"},
	}
	for _, tt := range tests {
		_, err := IdentityFromIMSI(tt.imsi, tt.mnc)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("IdentityFromIMSI(%q, %d) = %v, want an error containing %q", tt.imsi, tt.mnc, err, tt.want)
		}
	}
}
