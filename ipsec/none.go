package ipsec

import (
	"context"
	"time"
)

// None is the Backend that installs nothing: the SA set is planned and
// reported, and protected-port traffic flows in clear. It is for lab cores
// without IPsec and for tests on kernels without ESP.
type None struct{}

func (None) Name() string                                    { return "none" }
func (None) Install(context.Context, *SASet) error           { return nil }
func (None) Remove(context.Context, *SASet) error            { return nil }
func (None) Extend(context.Context, *SASet, time.Time) error { return nil }
func (None) Close() error                                    { return nil }
