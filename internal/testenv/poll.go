package testenv

import (
	"testing"
	"time"
)

// pollInterval is how often Poll checks its condition: short against the
// waits of a test (a second and more), long enough not to busy the CPU.
const pollInterval = 10 * time.Millisecond

// Poll calls cond until it returns true or within has passed, and reports
// whether it returned true. It checks once at once and once more at the end
// of within, and never sleeps past it.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(pollInterval, left))
	}
}

// Eventually is Poll that marks t failed, saying what was awaited and for
// how long, when cond did not become true within the time. It returns
// whether cond became true, so that a test that cannot go on without it
// stops (if !testenv.Eventually(...) { t.FailNow() }).
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) bool {
	t.Helper()
	if Poll(within, cond) {
		return true
	}
	t.Errorf("not true after %v: %s", within, what)
	return false
}
