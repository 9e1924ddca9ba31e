package main

import (
	"context"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/ipsec/kernel"
)

// The kernel ESP backend for `imsue register --ipsec kernel`. A starting
// imsue first removes the SA sets that a killed imsue left in the namespace
// (their owner process is gone); sets of other live imsue processes and of
// other programs stay.
func init() {
	newKernelBackend = func(ctx context.Context, stateDir string) (ipsec.Backend, error) {
		cfg := kernel.Config{StateDir: stateDir}
		if _, err := kernel.Flush(ctx, cfg, kernel.FlushStale); err != nil {
			return nil, err
		}
		return kernel.New(cfg)
	}
}
