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
