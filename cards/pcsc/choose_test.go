package pcsc

import (
	"errors"
	"strings"
	"testing"

	"github.com/imsue/imsue/cards"
)

func TestChoose(t *testing.T) {
	vpcd := []Reader{{Name: "Virtual PCD 00 00", CardPresent: true}, {Name: "Virtual PCD 00 01"}}
	two := []Reader{{Name: "Gemalto PC Twin Reader 00 00", CardPresent: true}, {Name: "Identiv uTrust 3700 F 01 00", CardPresent: true}}
	for _, tc := range []struct {
		name     string
		readers  []Reader
		want     string
		pick     string
		wait     bool
		err      error
		errParts []string
	}{
		{name: "no readers", err: cards.ErrNoReader},
		{name: "the only reader", readers: vpcd[:1], pick: "Virtual PCD 00 00"},
		{name: "the only reader, empty: wait", readers: vpcd[1:], pick: "Virtual PCD 00 01", wait: true},
		{name: "the only one with a card", readers: vpcd, pick: "Virtual PCD 00 00"},
		{name: "none with a card: wait for any", readers: []Reader{{Name: "a"}, {Name: "b"}}, wait: true},
		{name: "several with cards", readers: two, errParts: []string{"several readers hold a card", "Gemalto", "Identiv"}},
		{name: "substring, any case", readers: two, want: "identiv", pick: "Identiv uTrust 3700 F 01 00"},
		{name: "substring of an empty reader: wait", readers: vpcd, want: "00 01", pick: "Virtual PCD 00 01", wait: true},
		{name: "no match lists all", readers: two, want: "ACS", errParts: []string{`no reader matches "ACS"`, `"Gemalto PC Twin Reader 00 00"`, `"Identiv uTrust 3700 F 01 00"`}},
		{name: "ambiguous", readers: vpcd, want: "Virtual", errParts: []string{"several readers match", "00 00", "00 01"}},
		{name: "ambiguous but one exact", readers: []Reader{{Name: "X"}, {Name: "X 2", CardPresent: true}}, want: "x", pick: "X", wait: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, wait, err := choose(tc.readers, tc.want)
			if tc.err != nil || tc.errParts != nil {
				if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				for _, p := range tc.errParts {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("%q does not say %q", err, p)
					}
				}
				return
			}
			if err != nil || r.Name != tc.pick || wait != tc.wait {
				t.Fatalf("got %q wait=%v err=%v, want %q wait=%v", r.Name, wait, err, tc.pick, tc.wait)
			}
		})
	}
}
