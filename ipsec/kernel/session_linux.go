package kernel

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds every netlink request, so that a wedged kernel or a
// lost reply turns into an error instead of a hang. XFRM requests answer in
// microseconds on a host and in milliseconds under User-Mode Linux.
const netlinkTimeout = 10 * time.Second

// session is an XFRM netlink socket in one network namespace, with that
// namespace's identity and state records.
type session struct {
	ns    netns.NsHandle
	id    nsID
	h     *netlink.Handle
	store *store
}

// openSession checks CAP_NET_ADMIN, opens the namespace of cfg and an XFRM
// netlink socket in it.
func openSession(cfg Config) (*session, error) {
	ok, err := hasCapNetAdmin()
	if err != nil {
		return nil, &Error{Op: "check capabilities", Err: err}
	}
	if !ok {
		return nil, &Error{Op: "open", Err: &unsupportedError{errNoCapNetAdmin, unix.EPERM}}
	}
	path := cfg.netnsPath()
	var ns netns.NsHandle
	if path == "" {
		ns, err = netns.Get()
	} else {
		ns, err = netns.GetFromPath(path)
	}
	if err != nil {
		name := path
		if name == "" {
			name = "(current)"
		}
		return nil, &Error{Op: "open network namespace", Object: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		ns.Close()
		return nil, &Error{Op: "stat network namespace", Object: path, Err: err}
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_XFRM)
	if err != nil {
		ns.Close()
		return nil, &Error{Op: "open XFRM netlink socket", Object: path, Err: opError(err)}
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		ns.Close()
		return nil, &Error{Op: "set netlink timeout", Err: err}
	}
	id := nsID{Dev: uint64(st.Dev), Ino: st.Ino}
	return &session{
		ns:    ns,
		id:    id,
		h:     h,
		store: &store{dir: cfg.stateDir(), ns: id, nsPath: path},
	}, nil
}

func (s *session) close() {
	s.h.Close()
	s.ns.Close()
}

// hasCapNetAdmin reports whether the calling thread has CAP_NET_ADMIN in
// its effective set, which every XFRM netlink request needs.
func hasCapNetAdmin() (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, fmt.Errorf("capget: %w", err)
	}
	return data[unix.CAP_NET_ADMIN/32].Effective&(1<<(unix.CAP_NET_ADMIN%32)) != 0, nil
}

// dump returns all states and policies of the namespace. A dump the kernel
// reports as interrupted (the tables changed meanwhile) is repeated. The
// states' keys are wiped before dump returns: nothing here needs them.
func (s *session) dump() ([]netlink.XfrmState, []netlink.XfrmPolicy, error) {
	states, err := retryDump(func() ([]netlink.XfrmState, error) { return s.h.XfrmStateList(netlink.FAMILY_ALL) })
	for i := range states {
		wipeState(&states[i])
	}
	if err != nil {
		return nil, nil, &Error{Op: "dump SAs", Err: opError(err)}
	}
	pols, err := retryDump(func() ([]netlink.XfrmPolicy, error) { return s.h.XfrmPolicyList(netlink.FAMILY_ALL) })
	if err != nil {
		return nil, nil, &Error{Op: "dump policies", Err: opError(err)}
	}
	return states, pols, nil
}

func retryDump[T any](f func() ([]T, error)) ([]T, error) {
	var (
		v   []T
		err error
	)
	for try := 0; try < 5; try++ {
		if v, err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return v, err
}

func wipeState(st *netlink.XfrmState) {
	for _, a := range []*netlink.XfrmStateAlgo{st.Auth, st.Crypt, st.Aead} {
		if a != nil {
			clear(a.Key)
		}
	}
}

// policyReqID returns the reqid of the first template that carries one in
// imsue's range, or 0.
func policyReqID(p *netlink.XfrmPolicy) uint32 {
	for _, t := range p.Tmpls {
		if Owned(uint32(t.Reqid)) {
			return uint32(t.Reqid)
		}
	}
	return 0
}

// stateID keeps what identifies a state for XFRM_MSG_DELSA/GETSA.
func stateID(st *netlink.XfrmState) netlink.XfrmState {
	return netlink.XfrmState{Src: st.Src, Dst: st.Dst, Proto: st.Proto, Spi: st.Spi}
}

// policyByIndex keeps what identifies a dumped policy for XFRM_MSG_DELPOLICY.
func policyByIndex(p *netlink.XfrmPolicy) netlink.XfrmPolicy {
	return netlink.XfrmPolicy{Index: p.Index, Dir: p.Dir}
}
