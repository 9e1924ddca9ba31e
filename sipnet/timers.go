package sipnet

import "time"

// Timers are one Transport's SIP timers (RFC 3261 §17, Table 4). They are
// per Transport, never process-global, so that a UE with TS 24.229's values
// and a lab core with fast ones can share one process.
type Timers struct {
	T1 time.Duration // RTT estimate: first UDP retransmission interval
	T2 time.Duration // cap of the non-INVITE retransmission interval
	T4 time.Duration // how long a message may stay in the network
}

// RFC3261Timers are RFC 3261's defaults (Table 4).
var RFC3261Timers = Timers{T1: 500 * time.Millisecond, T2: 4 * time.Second, T4: 5 * time.Second}

// UETimers are TS 24.229 Table 7.7.1's values for a UE.
var UETimers = Timers{T1: 2 * time.Second, T2: 16 * time.Second, T4: 17 * time.Second}

// withDefaults fills unset timers from RFC3261Timers, keeping T2 ≥ T1.
func (t Timers) withDefaults() Timers {
	if t.T1 <= 0 {
		t.T1 = RFC3261Timers.T1
	}
	if t.T2 <= 0 {
		t.T2 = max(RFC3261Timers.T2, t.T1)
	}
	if t.T4 <= 0 {
		t.T4 = RFC3261Timers.T4
	}
	return t
}

// F is Timer F, the non-INVITE client transaction timeout: 64·T1.
func (t Timers) F() time.Duration { return 64 * t.T1 }

// J is Timer J, how long a non-INVITE server transaction absorbs
// retransmissions over UDP: 64·T1 (RFC 3261 §17.2.2).
func (t Timers) J() time.Duration { return 64 * t.T1 }

// K is Timer K, how long a completed non-INVITE client transaction absorbs
// retransmitted responses over UDP: T4 (RFC 3261 §17.1.2.2).
func (t Timers) K() time.Duration { return t.T4 }

// next is the retransmission interval after cur: doubled up to T2, or T2
// at once when a provisional response arrived (RFC 3261 §17.1.2.2).
func (t Timers) next(cur time.Duration, proceeding bool) time.Duration {
	if proceeding {
		return max(t.T2, t.T1)
	}
	return min(2*cur, max(t.T2, t.T1))
}
