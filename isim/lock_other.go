//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package isim

import (
	"context"
	"fmt"
	"runtime"
)

// lockFile is not available here: without a file lock two processes could
// accept the same SQN, so the file store refuses to work at all.
func lockFile(context.Context, string) (func(), error) {
	return nil, fmt.Errorf("file locking is not supported on %s", runtime.GOOS)
}
