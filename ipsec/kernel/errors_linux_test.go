package kernel

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/ipsec"
)

func TestErrorClassification(t *testing.T) {
	aes := &ipsec.SA{Auth: ipsec.AuthHMACSHA196, Enc: ipsec.EncAESCBC}
	des := &ipsec.SA{Auth: ipsec.AuthHMACMD596, Enc: ipsec.EncDES3EDECBC}
	// The netlink package reports the kernel's errno, sometimes annotated
	// with the extended ack message.
	acked := fmt.Errorf("%w: %s", unix.EPROTONOSUPPORT, "Requested type not found")
	tests := []struct {
		name        string
		err         error
		unsupported bool
		want        []string
	}{
		{"state no esp v4", stateError(aes, false, acked), true, []string{"no ESP for IPv4", "esp4", "--ipsec none", "Requested type not found"}},
		{"state no esp v6", stateError(aes, true, unix.EPROTONOSUPPORT), true, []string{"no ESP for IPv6", "esp6"}},
		{"state no des (ENOSYS)", stateError(des, false, unix.ENOSYS), true, []string{"cbc(des3_ede)", "des_generic", "--ipsec none"}},
		{"state no authenc (ENOENT)", stateError(aes, false, unix.ENOENT), true, []string{"hmac(sha1) or cbc(aes)"}},
		{"state eperm", stateError(aes, false, unix.EPERM), true, []string{"CAP_NET_ADMIN", "--ipsec none"}},
		{"state no ipv6", stateError(aes, true, unix.EAFNOSUPPORT), true, []string{"no IPv6"}},
		{"state exists", stateError(aes, false, unix.EEXIST), false, []string{"already exists"}},
		{"state einval", stateError(aes, false, unix.EINVAL), false, []string{"invalid argument"}},
		{"policy eperm", policyError(unix.EPERM), true, []string{"CAP_NET_ADMIN"}},
		{"policy exists", policyError(unix.EEXIST), false, []string{"selector and direction already exists"}},
		{"socket no xfrm", opError(unix.EPROTONOSUPPORT), true, []string{"xfrm_user"}},
		{"delete other", opError(unix.EBUSY), false, []string{"busy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wrapped := &Error{Op: "add SA", Object: "#1 out", Err: tt.err}
			if got := errors.Is(wrapped, ipsec.ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(ErrUnsupported) = %t, want %t (%v)", got, tt.unsupported, wrapped)
			}
			for _, w := range tt.want {
				if !strings.Contains(wrapped.Error(), w) {
					t.Errorf("%q lacks %q", wrapped.Error(), w)
				}
			}
			if !strings.HasPrefix(wrapped.Error(), "ipsec/kernel: add SA #1 out: ") {
				t.Errorf("%q does not name the operation and object", wrapped.Error())
			}
		})
	}
	// The cause stays reachable for callers that inspect errno.
	if !errors.Is(stateError(des, false, unix.ENOSYS), unix.ENOSYS) {
		t.Error("ENOSYS not reachable through errors.Is")
	}
}
