package kernel

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/ipsec"
)

// errNoCapNetAdmin explains EPERM from XFRM and the capability check in New.
const errNoCapNetAdmin = "this process lacks CAP_NET_ADMIN in the network namespace (run imsue as root or give it cap_net_admin)"

// notFound reports a delete or get of an object that is not there: ESRCH for
// states, ENOENT for policies.
func notFound(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}

// stateError explains a failed XFRM_MSG_NEWSA for sa.
func stateError(sa *ipsec.SA, v6 bool, err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return &unsupportedError{errNoCapNetAdmin, err}
	case errors.Is(err, unix.EPROTONOSUPPORT):
		// The kernel looks the algorithms up before the ESP type, so this
		// means the algorithms exist but ESP itself does not.
		if v6 {
			return &unsupportedError{"this kernel has no ESP for IPv6 (CONFIG_INET6_ESP, module esp6)", err}
		}
		return &unsupportedError{"this kernel has no ESP for IPv4 (CONFIG_INET_ESP, module esp4)", err}
	case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOENT):
		// ENOSYS: xfrm_user found no such algorithm; ENOENT: the crypto API
		// could not instantiate the authenc() template around it.
		what := fmt.Sprintf("this kernel's crypto API lacks %s or %s for %s/%s",
			kernelAuth[sa.Auth].name, kernelEnc[sa.Enc].name, sa.Auth, sa.Enc)
		if sa.Enc == ipsec.EncDES3EDECBC {
			what += " (3DES needs CONFIG_CRYPTO_DES, module des_generic; or offer another --ealg)"
		}
		return &unsupportedError{what, err}
	case errors.Is(err, unix.EAFNOSUPPORT) && v6:
		return &unsupportedError{"this kernel has no IPv6", err}
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("an SA with this destination and SPI already exists: %w", err)
	}
	return err
}

// policyError explains a failed XFRM_MSG_NEWPOLICY.
func policyError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return &unsupportedError{errNoCapNetAdmin, err}
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("a policy with this selector and direction already exists (another program's, or a set not removed): %w", err)
	}
	return err
}

// opError explains a failure of any other XFRM request (dump, delete) or of
// opening the netlink socket.
func opError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return &unsupportedError{errNoCapNetAdmin, err}
	case errors.Is(err, unix.EPROTONOSUPPORT):
		return &unsupportedError{"this kernel has no XFRM netlink interface (CONFIG_XFRM_USER, module xfrm_user)", err}
	}
	return err
}
