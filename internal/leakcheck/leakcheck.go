// Package leakcheck fails a test that leaves goroutines behind, as STYLE
// asks of every service test.
package leakcheck

import (
	"runtime"
	"testing"
	"time"
)

// Check fails t if, once its cleanups have run, more goroutines are left
// than when Check was called (retrying for 5 s, so that goroutines on their
// way out are not counted). Call it first, so that its cleanup runs last.
func Check(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
