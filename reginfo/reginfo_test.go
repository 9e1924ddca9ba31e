package reginfo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	ueAOR     = "sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org"
	ueContact = "sip:001010000000001@127.0.0.1:45061"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Reginfo
	}{{
		file: "rfc3680-full-two-contacts.xml",
		want: Reginfo{Version: 0, State: StateFull, Registrations: []Registration{{
			AOR: "sip:user@example.com", ID: "as9", State: RegActive,
			Contacts: []Contact{
				{ID: "76", State: ContactActive, Event: EventRegistered, URI: "sip:user@pc887.example.com", DurationRegistered: 7322, Q: "0.8"},
				{ID: "77", State: ContactTerminated, Event: EventExpired, URI: "sip:user@university.edu", DurationRegistered: 3600, Q: "0.5"},
			},
		}}},
	}, {
		file: "rfc3680-init.xml",
		want: Reginfo{State: StateFull, Registrations: []Registration{{AOR: "sip:joe@example.com", ID: "a7", State: RegInit}}},
	}, {
		file: "rfc3680-registered.xml",
		want: Reginfo{Version: 1, State: StatePartial, Registrations: []Registration{{
			AOR: "sip:joe@example.com", ID: "a7", State: RegActive,
			Contacts: []Contact{{ID: "76", State: ContactActive, Event: EventRegistered, URI: "sip:joe@pc34.example.com"}},
		}}},
	}, {
		file: "rfc3680-expired.xml",
		want: Reginfo{Version: 2, State: StatePartial, Registrations: []Registration{{
			AOR: "sip:joe@example.com", ID: "a7", State: RegTerminated,
			Contacts: []Contact{{ID: "76", State: ContactTerminated, Event: EventExpired, URI: "sip:joe@pc34.example.com", DurationRegistered: 3600}},
		}}},
	}, {
		file: "rfc3680-display-name.xml",
		want: Reginfo{Version: 4, State: StatePartial, Registrations: []Registration{{
			AOR: "sip:user@example.com", ID: "as9", State: RegActive,
			Contacts: []Contact{{
				ID: "78", State: ContactActive, Event: EventCreated, URI: "sip:user@pc887.example.com;transport=tcp",
				Expires: 3600, HasExpires: true, CallID: "9987@pc887.example.com", CSeq: 5, Q: "1.0",
				DisplayName: "Joe Smith",
				UnknownParams: []Param{
					{Name: "audio"},
					{Name: "+sip.instance", Value: `"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"`},
				},
			}},
		}}},
	}, {
		file: "ims-full.xml",
		want: Reginfo{Version: 0, State: StateFull, Registrations: []Registration{{
			AOR: ueAOR, ID: "reg1", State: RegActive,
			Contacts: []Contact{{
				ID: "c1", State: ContactActive, Event: EventRegistered, URI: ueContact, Expires: 3600, HasExpires: true,
				UnknownParams: []Param{
					{Name: "+sip.instance", Value: `"<urn:gsma:imei:35123456-789012-0>"`},
					{Name: "+g.3gpp.icsi-ref", Value: `"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`},
				},
				PubGRUU:  "sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org;gr=urn:gsma:imei:35123456-789012-0",
				TempGRUU: "sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@ims.mnc001.mcc001.3gppnetwork.org;gr", TempGRUUFirstCSeq: 2,
			}},
		}, {
			AOR: "tel:+15551230001", ID: "reg2", State: RegActive,
			Contacts: []Contact{{ID: "c2", State: ContactActive, Event: EventRegistered, URI: ueContact, Expires: 3600, HasExpires: true}},
		}, {
			AOR: "sip:+15551230001@ims.mnc001.mcc001.3gppnetwork.org", ID: "reg3", State: RegActive,
			Contacts: []Contact{{ID: "c3", State: ContactActive, Event: EventRegistered, URI: ueContact, Expires: 3600, HasExpires: true}},
		}}},
	}, {
		file: "ims-probation.xml",
		want: Reginfo{Version: 3, State: StatePartial, Registrations: []Registration{{
			AOR: ueAOR, ID: "reg1", State: RegTerminated,
			Contacts: []Contact{{ID: "c1", State: ContactTerminated, Event: EventProbation, URI: ueContact, RetryAfter: 30, HasRetryAfter: true}},
		}}},
	}, {
		file: "kamailio-style.xml",
		want: Reginfo{State: StateFull, Registrations: []Registration{{
			AOR: ueAOR, ID: "0x7f3a1c02e8a0", State: RegActive,
			Contacts: []Contact{{ID: "0x7f3a1c02f1b8", State: ContactActive, Event: EventRegistered,
				URI: "sip:001010000000001@10.45.0.2:5060;alias=10.45.0.2~5060~1", Expires: 3599, HasExpires: true}},
		}}},
	}} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Parse(readTestdata(t, tc.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.want.Registrations == nil {
				tc.want.Registrations = []Registration{}
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("Parse\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const head = `<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1" state="full">`
	reg := func(attrs, inner string) string {
		return head + `<registration ` + attrs + `>` + inner + `</registration></reginfo>`
	}
	const okReg = `aor="sip:a@b" id="r" state="active"`
	contact := func(attrs, inner string) string {
		return reg(okReg, `<contact `+attrs+`>`+inner+`</contact>`)
	}
	const okContact = `id="c" state="active" event="registered"`
	const uri = `<uri>sip:a@h</uri>`
	for _, tc := range []struct {
		name, body string
		mention    string
	}{
		{"empty", ``, "EOF"},
		{"not XML", `reginfo`, "EOF"},
		{"other root", `<presence xmlns="urn:ietf:params:xml:ns:pidf"/>`, "reginfo"},
		{"other namespace", `<reginfo xmlns="urn:example" version="0" state="full"/>`, "namespace"},
		{"unclosed", head, "EOF"},
		{"missing version", `<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" state="full"/>`, `"version"`},
		{"negative version", `<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="-1" state="full"/>`, `"version"`},
		{"huge version", `<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="18446744073709551616" state="full"/>`, `"version"`},
		{"missing state", `<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0"/>`, `"state"`},
		{"bad state", `<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="complete"/>`, `"complete"`},
		{"registration without aor", reg(`id="r" state="active"`, ``), `"aor"`},
		{"registration empty aor", reg(`aor="" id="r" state="active"`, ``), "aor"},
		{"registration without id", reg(`aor="sip:a@b" state="active"`, ``), `"id"`},
		{"registration bad state", reg(`aor="sip:a@b" id="r" state="registered"`, ``), `"registered"`},
		{"contact without id", contact(`state="active" event="registered"`, uri), `"id"`},
		{"contact without state", contact(`id="c" event="registered"`, uri), `"state"`},
		{"contact bad state", contact(`id="c" state="init" event="registered"`, uri), `"init"`},
		{"contact without event", contact(`id="c" state="active"`, uri), `"event"`},
		{"contact empty event", contact(`id="c" state="active" event=""`, uri), "event"},
		{"contact without uri", contact(okContact, ``), "uri"},
		{"contact empty uri", contact(okContact, `<uri> </uri>`), "uri"},
		{"contact two uris", contact(okContact, uri+uri), "uri"},
		{"bad expires", contact(okContact+` expires="soon"`, uri), `"expires"`},
		{"negative expires", contact(okContact+` expires="-5"`, uri), `"expires"`},
		{"bad retry-after", contact(okContact+` retry-after="1.5"`, uri), `"retry-after"`},
		{"bad duration-registered", contact(okContact+` duration-registered="x"`, uri), `"duration-registered"`},
		{"bad cseq", contact(okContact+` cseq="one"`, uri), `"cseq"`},
		{"unknown-param without name", contact(okContact, uri+`<unknown-param>x</unknown-param>`), "unknown-param"},
		{"temp-gruu bad first-cseq", contact(okContact, uri+`<temp-gruu xmlns="urn:ietf:params:xml:ns:gruuinfo" uri="sip:t@h;gr" first-cseq="x"/>`), "first-cseq"},
		{"pub-gruu without uri", contact(okContact, uri+`<pub-gruu xmlns="urn:ietf:params:xml:ns:gruuinfo"/>`), "pub-gruu"},
		{"trailing element", head + `</reginfo><reginfo/>`, "after"},
		{"trailing text", head + `</reginfo>junk`, "after"},
		{"undefined entity", contact(okContact, `<uri>&xxe;</uri>`), "entity"},
		{"non-UTF-8 charset", `<?xml version="1.0" encoding="ISO-8859-1"?>` + head + `</reginfo>`, "ISO-8859-1"},
		{"mismatched tags", head + `</registration>`, "registration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.body))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) = %+v, %v; want ErrMalformed", tc.body, r, err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %s", err, tc.mention)
			}
		})
	}
}

func TestParseTolerates(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		version    uint64
	}{
		{"no namespace", `<reginfo version="3" state="full"/>`, 3},
		{"prefixed namespace", `<r:reginfo xmlns:r="urn:ietf:params:xml:ns:reginfo" version="4" state="full"/>`, 4},
		{"whitespace in attributes", `<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version=" 7 " state=" full "/>`, 7},
		{"plus sign", `<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="+8" state="full"/>`, 8},
		{"comments and PIs after root", "<reginfo version=\"9\" state=\"full\"/>\n<!-- trailer -->\n<?pi x?>\n", 9},
		{"DOCTYPE before root", `<!DOCTYPE reginfo><reginfo version="10" state="full"/>`, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.body))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.body, err)
			}
			if r.Version != tc.version || r.State != StateFull {
				t.Errorf("Parse(%q) = version %d state %q, want %d full", tc.body, r.Version, r.State, tc.version)
			}
		})
	}
	r, err := Parse([]byte(`<reginfo version="7" state="full"><registration aor="sip:a@b" id="r" state="active">` +
		`<contact id="c" state="active" event="migrated"><uri>sip:a@h</uri></contact></registration></reginfo>`))
	if err != nil || r.Registrations[0].Contacts[0].Event != "migrated" || r.Registrations[0].Contacts[0].Event.Known() {
		t.Errorf("unknown event: %+v, %v", r, err)
	}
	if !EventShortened.Known() {
		t.Error("shortened is not Known")
	}
}

func TestParseSizeLimit(t *testing.T) {
	pad := bytes.Repeat([]byte(" "), MaxBodySize)
	body := append([]byte(`<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full"/>`), pad...)
	if _, err := Parse(body); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse of %d bytes = %v, want ErrTooLarge", len(body), err)
	}
	if _, err := Parse(body[:MaxBodySize]); err != nil {
		t.Errorf("Parse of exactly MaxBodySize bytes: %v", err)
	}
}

func TestParseDeepNesting(t *testing.T) {
	// Unknown elements nested as deep as the size limit allows must fail or
	// parse, never exhaust the stack.
	n := (MaxBodySize - 200) / 7
	body := `<reginfo version="0" state="full">` + strings.Repeat("<x>", n) + strings.Repeat("</x>", n) + `</reginfo>`
	_, _ = Parse([]byte(body))
}

func TestMarshalRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) < 8 {
		t.Fatalf("testdata: %v, %d files", err, len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := Parse(readTestdata(t, filepath.Base(f)))
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) ||
				!bytes.Contains(b, []byte(`<reginfo xmlns="urn:ietf:params:xml:ns:reginfo"`)) {
				t.Errorf("Marshal lacks the declaration or namespace:\n%s", b)
			}
			back, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(Marshal): %v\n%s", err, b)
			}
			// duration-registered="0" and cseq="0" are written only when non-zero,
			// which parses back to the same zero.
			if !reflect.DeepEqual(back, r) {
				t.Errorf("round trip\n got %+v\nwant %+v\n%s", back, r, b)
			}
		})
	}
}

// TestMarshalExact pins the layout the lab core sends, so a change is seen.
func TestMarshalExact(t *testing.T) {
	r := Reginfo{Version: 3, State: StatePartial, Registrations: []Registration{{
		AOR: ueAOR, ID: "reg1", State: RegActive,
		Contacts: []Contact{{ID: "c1", State: ContactActive, Event: EventShortened, URI: ueContact + ";transport=udp", Expires: 60, HasExpires: true}},
	}}}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="3" state="partial">
  <registration aor="sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org" id="reg1" state="active">
    <contact id="c1" state="active" event="shortened" expires="60">
      <uri>sip:001010000000001@127.0.0.1:45061;transport=udp</uri>
    </contact>
  </registration>
</reginfo>
`
	if string(b) != want {
		t.Errorf("Marshal\n got %s\nwant %s", b, want)
	}
}

func TestMarshalEscapes(t *testing.T) {
	r := Reginfo{State: StateFull, Registrations: []Registration{{
		AOR: `sip:a&b@"x"`, ID: "<r>", State: RegActive,
		Contacts: []Contact{{ID: "c", State: ContactActive, Event: EventRegistered, URI: "sip:a@h?x=<y>&z",
			DisplayName: "A & B </display-name>", UnknownParams: []Param{{Name: `"q"`, Value: "<v>"}}}},
	}}}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal): %v\n%s", err, b)
	}
	if !reflect.DeepEqual(*back, r) {
		t.Errorf("round trip\n got %+v\nwant %+v\n%s", *back, r, b)
	}
}

func TestMarshalErrors(t *testing.T) {
	ok := func() Reginfo {
		return Reginfo{State: StateFull, Registrations: []Registration{{AOR: "sip:a@b", ID: "r", State: RegActive,
			Contacts: []Contact{{ID: "c", State: ContactActive, Event: EventRegistered, URI: "sip:a@h"}}}}}
	}
	if _, err := (&Reginfo{State: StateFull}).Marshal(); err != nil {
		t.Errorf("empty full document: %v", err)
	}
	for name, mod := range map[string]func(*Reginfo){
		"no state":         func(r *Reginfo) { r.State = "" },
		"empty aor":        func(r *Reginfo) { r.Registrations[0].AOR = "" },
		"bad reg state":    func(r *Reginfo) { r.Registrations[0].State = "gone" },
		"bad contact":      func(r *Reginfo) { r.Registrations[0].Contacts[0].State = "" },
		"no event":         func(r *Reginfo) { r.Registrations[0].Contacts[0].Event = "" },
		"no uri":           func(r *Reginfo) { r.Registrations[0].Contacts[0].URI = " " },
		"nameless unknown": func(r *Reginfo) { r.Registrations[0].Contacts[0].UnknownParams = []Param{{Value: "v"}} },
	} {
		r := ok()
		mod(&r)
		if _, err := r.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Marshal = %v, want ErrMalformed", name, err)
		}
	}
}
