//go:build !linux

package kernel

import (
	"context"
	"errors"
	"time"

	"github.com/imsue/imsue/ipsec"
)

// errNotLinux is returned on systems without XFRM.
var errNotLinux = &unsupportedError{"kernel ESP is implemented for Linux XFRM only", errors.ErrUnsupported}

// Backend is the kernel backend; on this system it cannot be opened.
type Backend struct{}

// New fails: XFRM exists on Linux only.
func New(Config) (*Backend, error) { return nil, &Error{Op: "open", Err: errNotLinux} }

func (*Backend) Name() string { return "kernel" }
func (*Backend) Install(context.Context, *ipsec.SASet) error {
	return &Error{Op: "install", Err: errNotLinux}
}
func (*Backend) Remove(context.Context, *ipsec.SASet) error { return nil }
func (*Backend) Extend(context.Context, *ipsec.SASet, time.Time) error {
	return &Error{Op: "extend", Err: errNotLinux}
}
func (*Backend) Close() error { return nil }

// List fails: XFRM exists on Linux only.
func List(context.Context, Config) ([]Set, error) { return nil, &Error{Op: "list", Err: errNotLinux} }

// Flush fails: XFRM exists on Linux only.
func Flush(context.Context, Config, FlushMode) (Flushed, error) {
	return Flushed{}, &Error{Op: "flush", Err: errNotLinux}
}
