package kernel

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/imsue/imsue/ipsec"
)

// The reqid range reserved for imsue. Every state imsue installs has its
// set's reqid, and every policy's template carries it; nothing outside the
// range is ever listed, flushed or removed.
const (
	ReqIDMin uint32 = 0x494d0001
	ReqIDMax uint32 = 0x494dffff
)

// Owned reports whether reqid lies in imsue's reserved range.
func Owned(reqid uint32) bool { return reqid >= ReqIDMin && reqid <= ReqIDMax }

// PolicyPriority is the priority of every policy imsue installs. XFRM picks
// the matching policy with the lowest value, not the one with the most
// specific selector, so this is below the priorities strongSwan computes
// (six-digit values) and Kamailio's 2080: an imsue flow is not captured by a
// broader policy that another program installed.
const PolicyPriority = 1024

// DefaultStateDir holds the state records when Config.StateDir is empty.
const DefaultStateDir = "/run/imsue"

// Config says where the backend works.
type Config struct {
	// NetNS is the network namespace: empty for the calling thread's
	// namespace, a name as `ip netns` uses it (looked up in /run/netns), or a
	// path to a namespace file such as /proc/PID/ns/net.
	NetNS string
	// StateDir holds the state records (see the package documentation);
	// empty means DefaultStateDir. Tests give their own.
	StateDir string
}

func (c Config) stateDir() string {
	if c.StateDir == "" {
		return DefaultStateDir
	}
	return c.StateDir
}

func (c Config) netnsPath() string {
	switch {
	case c.NetNS == "":
		return ""
	case strings.Contains(c.NetNS, "/"):
		return c.NetNS
	default:
		return "/run/netns/" + c.NetNS
	}
}

// Set is what List finds of one imsue SA set in a namespace: the kernel
// objects carrying its reqid and, when there is one, its state record.
type Set struct {
	ReqID    uint32
	Owner    *Owner // nil when no state record names this reqid
	States   []State
	Policies []Policy
}

// Owner is the process that installed a set, from its state record.
type Owner struct {
	PID     int
	Alive   bool // the process still runs (same PID and start time)
	Created time.Time
}

// State is one XFRM state as List reports it. It never holds keys.
type State struct {
	Src, Dst netip.Addr
	// SrcPort and DstPort come from the state's selector (0: any).
	SrcPort, DstPort uint16
	SPI              uint32
	// Auth and Enc are the TS 33.203 names when the kernel algorithm is one
	// imsue uses, otherwise the kernel's algorithm name.
	Auth         ipsec.Auth
	Enc          ipsec.Enc
	ReplayWindow uint8
	HardLifetime time.Duration // 0: none
	Bytes        uint64
	Packets      uint64
}

// Policy is one XFRM policy as List reports it.
type Policy struct {
	Dir      ipsec.Direction
	Src, Dst netip.AddrPort // selector: address (/32 or /128) and port
	SPI      uint32         // of the template
	Priority uint32
	Index    uint32
}

// FlushMode chooses which imsue sets Flush removes.
type FlushMode int

const (
	// FlushAll removes every imsue set in the namespace (imsue sa flush).
	FlushAll FlushMode = iota
	// FlushStale removes the sets whose owner has exited, and tagged
	// objects no record explains: what a starting imsue calls to clean up
	// after a run that was killed.
	FlushStale
)

func (m FlushMode) String() string {
	switch m {
	case FlushAll:
		return "all"
	case FlushStale:
		return "stale"
	}
	return fmt.Sprintf("FlushMode(%d)", int(m))
}

// Flushed counts what Flush removed.
type Flushed struct {
	Sets, States, Policies int
}

// Error is every error of this package: the operation, the object it was
// applied to (an SA as ipsec.SA.String prints it, a policy, a path; never a
// key) and the cause. Causes that mean the host cannot do kernel ESP wrap
// ipsec.ErrUnsupported.
type Error struct {
	Op     string // e.g. "add SA", "add policy", "delete SA", "open netns"
	Object string
	Err    error
}

func (e *Error) Error() string {
	if e.Object == "" {
		return "ipsec/kernel: " + e.Op + ": " + e.Err.Error()
	}
	return "ipsec/kernel: " + e.Op + " " + e.Object + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// unsupportedError says what the host lacks. It wraps both
// ipsec.ErrUnsupported and the system error behind it.
type unsupportedError struct {
	what string
	err  error
}

func (e *unsupportedError) Error() string {
	return e.what + " (" + e.err.Error() + "); use --ipsec none to run without ESP"
}

func (e *unsupportedError) Unwrap() []error { return []error{ipsec.ErrUnsupported, e.err} }
