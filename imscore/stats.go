package imscore

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/imsue/imsue/ipsec"
)

// atomicCounter is a named uint64 counter.
type atomicCounter = atomic.Uint64

// Stats are counters since Start, for tests and the CLI.
type Stats struct {
	RegistersUnprotected uint64 // REGISTERs received on the unprotected port
	RegistersProtected   uint64 // REGISTERs received over an SA set (port_ps)
	Challenges           uint64 // 401s sent (a resent 401 counts once)
	Registered           uint64 // successful registrations and re-registrations
	Deregistered         uint64 // bindings ended by the UE (Expires: 0)
	AuthFailures         uint64 // 403s after a wrong response, MAC failure or bad AUTS
	SecAgreeFailures     uint64 // 494s and other sec-agree rejections
	SASetsInstalled      uint64
	SASetsRemoved        uint64
	Vectors              uint64 // authentication vectors the HSS generated
	Resyncs              uint64 // successful resynchronisations from AUTS
	Subscribes           uint64 // reg-event SUBSCRIBEs accepted
	Notifies             uint64 // NOTIFYs sent (retransmissions not counted)
	NotifyFailures       uint64 // NOTIFY transactions without a 2xx (error response, Timer F, no route)
	Discarded            uint64 // requests dropped as unprotected (not REGISTER on the unprotected port, or from no SA flow on port_ps)
	Retransmissions      uint64 // retransmitted requests absorbed by a server transaction
	Malformed            uint64 // datagrams or streams that did not parse
	FaultDrops           uint64 // requests dropped by Faults
	Restarts             uint64
}

type counters struct {
	regUnprot, regProt, challenges, registered, deregistered atomicCounter
	authFailures, secAgree, setsInstalled, setsRemoved       atomicCounter
	vectors, resyncs, subscribes, notifies, discarded        atomicCounter
	malformed, restarts, notifyFailures                      atomicCounter
}

// Stats returns a snapshot of the counters.
func (c *Core) Stats() Stats {
	c.cfg.Faults.mu.Lock()
	drops := c.cfg.Faults.dropped
	c.cfg.Faults.mu.Unlock()
	s := &c.stats
	return Stats{
		RegistersUnprotected: s.regUnprot.Load(),
		RegistersProtected:   s.regProt.Load(),
		Challenges:           s.challenges.Load(),
		Registered:           s.registered.Load(),
		Deregistered:         s.deregistered.Load(),
		AuthFailures:         s.authFailures.Load(),
		SecAgreeFailures:     s.secAgree.Load(),
		SASetsInstalled:      s.setsInstalled.Load(),
		SASetsRemoved:        s.setsRemoved.Load(),
		Vectors:              s.vectors.Load(),
		Resyncs:              s.resyncs.Load(),
		Subscribes:           s.subscribes.Load(),
		Notifies:             s.notifies.Load(),
		NotifyFailures:       s.notifyFailures.Load(),
		Discarded:            s.discarded.Load(),
		Retransmissions:      c.tp.Stats().Absorbed,
		Malformed:            s.malformed.Load() + c.tp.Stats().Malformed,
		FaultDrops:           drops,
		Restarts:             s.restarts.Load(),
	}
}

// Registration is a snapshot of one contact binding and its SA sets.
type Registration struct {
	IMPI      string
	IMPUs     []string // the implicit set, default first
	Contact   string   // the Contact URI
	State     string   // "pending" (challenged, never registered) or "registered"
	Transport string   // "UDP" or "TCP"
	UE        netip.AddrPort
	Expires   time.Time // zero while pending
	Event     string    // last reginfo contact event
	// Sets are the binding's SA sets: established first, then temporary,
	// then old. Empty for MD5 and CKIKInChallenge cores.
	Sets []SASetInfo
}

// SASetInfo describes one SA set without its keys.
type SASetInfo struct {
	ID     uint64
	State  string // "temporary", "established" or "old"
	Alg    ipsec.Auth
	EAlg   ipsec.Enc
	UE     netip.Addr
	PCSCF  netip.Addr
	SPIuc  uint32
	SPIus  uint32
	SPIpc  uint32
	SPIps  uint32
	PortUC uint16
	PortUS uint16
	PortPC uint16
	PortPS uint16
	// SecurityServer is the Security-Server value the P-CSCF sent for it.
	SecurityServer string
}

// Registrations returns a snapshot of every binding, sorted by IMPI and
// contact: the S-CSCF's registrar, with the SA sets the P-CSCF keeps for
// each contact (each role's lock taken in turn, never both).
func (c *Core) Registrations() []Registration {
	c.s.mu.Lock()
	out := make([]Registration, 0, len(c.s.bindings))
	keys := make([]string, 0, len(c.s.bindings))
	for _, b := range c.s.bindings {
		r := Registration{
			IMPI:      b.sub.IMPI,
			IMPUs:     slices.Clone(b.sub.IMPUs),
			State:     b.state.String(),
			Transport: b.transport,
			UE:        b.ue,
			Event:     b.event,
		}
		key := ""
		if b.contact != nil {
			r.Contact = b.contact.Address.String()
			key = contactKey(b.contact.Address)
		}
		if b.state == stateRegistered {
			r.Expires = b.expires
		}
		out = append(out, r)
		keys = append(keys, key)
	}
	c.s.mu.Unlock()

	c.p.mu.Lock()
	for i := range out {
		if u := c.p.ues[keys[i]]; u != nil {
			for _, s := range []*secSet{u.cur, u.next, u.old} {
				if s != nil {
					out[i].Sets = append(out[i].Sets, s.info())
				}
			}
		}
	}
	c.p.mu.Unlock()
	slices.SortFunc(out, func(a, b Registration) int {
		if n := strings.Compare(a.IMPI, b.IMPI); n != 0 {
			return n
		}
		return strings.Compare(a.Contact, b.Contact)
	})
	return out
}

func (s *secSet) info() SASetInfo {
	return SASetInfo{
		ID: s.id, State: s.state.String(),
		Alg: s.mech.Alg, EAlg: s.mech.EAlg,
		UE: s.ue, PCSCF: s.local,
		SPIuc: s.client.SPIc, SPIus: s.client.SPIs, SPIpc: s.server.SPIc, SPIps: s.server.SPIs,
		PortUC: s.client.PortC, PortUS: s.client.PortS, PortPC: s.server.PortC, PortPS: s.server.PortS,
		SecurityServer: formatSecurity(s.serverMechs),
	}
}
