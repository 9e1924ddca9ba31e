// Package locatetest serves DNS records from a table on a loopback DNS
// server, for tests of RFC 3263 discovery.
package locatetest

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// Zone starts a DNS server on 127.0.0.1 answering from records (zone-file
// lines, e.g. `_sip._udp.ims.example. 60 IN SRV 0 0 5060 p.ims.example.`)
// and returns its address; it stops when the test ends.
func Zone(t testing.TB, records ...string) string {
	t.Helper()
	byKey := map[[2]any][]dns.RR{}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		k := [2]any{dns.CanonicalName(rr.Header().Name), rr.Header().Rrtype}
		byKey[k] = append(byKey[k], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if len(q.Question) == 1 {
			m.Answer = byKey[[2]any{dns.CanonicalName(q.Question[0].Name), q.Question[0].Qtype}]
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}
