package sipclient

import (
	"context"
	"testing"
	"time"

	"github.com/imsue/imsue/imscore"
	"github.com/imsue/imsue/ipsec"
)

// BenchmarkRegister measures one full initial registration against the
// in-process lab core on loopback: a new Client (its sockets), REGISTER,
// 401, AKA (software ISIM, SQN state in memory), SA set planned and
// "installed" (ipsec.None), protected REGISTER, 200 OK, and Close. The
// de-registration that keeps the core's state small is not timed.
func BenchmarkRegister(b *testing.B) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"udp", func(c *Config) { c.MaxUDPSize = -1 }}, // four offers, all over UDP
		{"udp-size-rule", nil},                         // the protected REGISTER (> 1300 bytes) over TCP
		{"tcp", func(c *Config) { c.Transport = "tcp" }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			core := startCore(b, func(c *imscore.Config) { c.Logger = nil })
			auth := softISIM(b, 1)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				cfg := Config{
					Auth: auth, PCSCF: core.Addr(),
					Backend: ipsec.None{}, DeregTimeout: time.Second,
				}
				if tc.mod != nil {
					tc.mod(&cfg)
				}
				c, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Register(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if ok, err := c.Deregister(ctx); !ok {
					b.Fatalf("Deregister: %v", err)
				}
				b.StartTimer()
				c.Close()
			}
		})
	}
}

// BenchmarkRefresh measures one re-registration over the SAs against the
// lab core, which accepts the last nonce answered again with the next nc
// (its default, as ims_auth): no AKA run, no new SA set. aka/op reports
// the AKA runs per refresh, which must stay 0.
func BenchmarkRefresh(b *testing.B) {
	core := startCore(b, func(c *imscore.Config) { c.Logger = nil })
	auth := &countingAuth{Authenticator: softISIM(b, 1)}
	c, err := New(Config{Auth: auth, PCSCF: core.Addr(), Backend: ipsec.None{}, DeregTimeout: time.Second, MaxUDPSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Register(ctx); err != nil {
		b.Fatal(err)
	}
	before := auth.n.Load()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		c.op.Lock()
		_, err := c.doRegister(ctx, c.expires)
		c.op.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(auth.n.Load()-before)/float64(n), "aka/op")
}
