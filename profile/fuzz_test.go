package profile

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: the decoder never panics; an error is always a *Error; a
// profile it accepts is complete for its kind (a software profile has keys
// and an IMPI, IMPU and domain) and its String never holds the key.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"lab-ue1.yaml", "lab-ue2-op.yaml", "card-ue.yaml"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("imsi: 001010123456789\nmnc_length: 2\nk: " + goodK + "\nop: " + goodOPc + "\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("impu: {x: y}\n"))
	f.Add([]byte("--- \n...\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4<<10 {
			// Real profiles are a few hundred bytes; huge inputs only make
			// the fuzzer spend its time minimising (Load caps size anyway).
			t.Skip()
		}
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *profile.Error: %v", err)
			}
			return
		}
		if p.Card == CardNone {
			if !p.HasKeys || p.Identity.IMPI == "" || len(p.Identity.IMPUs) == 0 || p.Identity.Domain == "" {
				t.Fatalf("accepted an incomplete software profile: %s", p)
			}
		}
		if p.HasKeys && strings.Contains(p.String(), p.K.Hex()) {
			t.Fatalf("String() holds K")
		}
		if p.SQNState == "" {
			t.Fatal("no SQN state path")
		}
	})
}
