package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imsue/imsue/locate/locatetest"
)

// Without --pcscf, the P-CSCF comes from the home domain's DNS (RFC 3263:
// NAPTR, SRV, A), here a zone on a loopback DNS server.
func TestRegisterDiscoversPCSCFInDNS(t *testing.T) {
	core := regCore(t, nil)
	dns := locatetest.Zone(t,
		fmt.Sprintf(`%s. 60 IN NAPTR 10 10 "s" "SIP+D2U" "" _sip._udp.%s.`, regDomain, regDomain),
		fmt.Sprintf(`_sip._udp.%s. 60 IN SRV 0 0 %d pcscf.%s.`, regDomain, core.Addr().Port(), regDomain),
		fmt.Sprintf(`pcscf.%s. 60 IN A 127.0.0.1`, regDomain),
	)
	code, stdout, stderr := regRun("register", "--profile", regProfile(t), "--dns", dns,
		"--local-port", "0", "--ipsec", "none", "--t1", "10ms", "--dereg-timeout", "500ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr, stdout)
	}
	if m := regJSON(t, stdout); m["result"] != "registered" {
		t.Errorf("result %v", m["result"])
	}
	want := fmt.Sprintf("P-CSCF %s, from the DNS of %s", core.Addr(), regDomain)
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q does not say %q", stderr, want)
	}
}

// Nothing in the DNS: exit 2, naming what was tried.
func TestRegisterNoPCSCFFound(t *testing.T) {
	dns := locatetest.Zone(t)
	code, _, stderr := regRun("register", "--profile", regProfile(t), "--dns", dns, "--local-port", "0", "--ipsec", "none")
	if code != exitUsage || !strings.Contains(stderr, "no P-CSCF found") || !strings.Contains(stderr, regDomain) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
