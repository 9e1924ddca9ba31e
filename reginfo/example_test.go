package reginfo_test

import (
	"fmt"
	"log"

	"github.com/imsue/imsue/reginfo"
)

// A UE's NOTIFY handler: the S-CSCF shortened the registration to ask for
// re-authentication (TS 24.229 §5.4.1.6 on the network side).
func ExampleReginfo_Decide() {
	body := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1" state="partial">
  <registration aor="sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org" id="reg1" state="active">
    <contact id="c1" state="active" event="shortened" expires="60">
      <uri>sip:001010000000001@127.0.0.1:45061;transport=udp</uri>
    </contact>
  </registration>
</reginfo>`)
	r, err := reginfo.Parse(body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Freshness(0, true))
	d := r.Decide("sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org", "sip:001010000000001@127.0.0.1:45061")
	fmt.Println(d.Action, d.Event, d.Initial, d.Expires)
	// Output:
	// fresh
	// reregister shortened false 1m0s
}
