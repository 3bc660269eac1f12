// Package labtest gives integration tests a lab of their own.
package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"gateway/gateway/lab"
)

// New builds a lab with a unique name and its folder under t.TempDir(),
// and removes it when the test ends. It skips the test with -short, when
// not root, or when not on Linux.
func New(t testing.TB) *lab.Lab {
	t.Helper()
	Skip(t)
	b := make([]byte, 3)
	rand.Read(b)
	opt := lab.Options{
		Name: "t" + hex.EncodeToString(b),
		Dir:  filepath.Join(t.TempDir(), "lab"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, opt)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("labtest: %v", err)
		}
	})
	return l
}

// Skip skips the test, with the reason, if it cannot build a lab: with
// -short, when not root, or when not on Linux.
func Skip(t testing.TB) {
	t.Helper()
	switch {
	case testing.Short():
		t.Skip("labtest: integration test, skipped with -short")
	case runtime.GOOS != "linux":
		t.Skipf("labtest: needs Linux network namespaces, not %s", runtime.GOOS)
	case os.Geteuid() != 0:
		t.Skip("labtest: needs root to create network namespaces (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}
}
