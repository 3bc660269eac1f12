// Package labtest gives integration tests a lab of their own.
package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/internal/testenv"
)

// New builds a lab with a unique name and its folder under t.TempDir(),
// and removes it when the test ends. It skips the test as Skip does.
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
// -short, or when not root, not on Linux or without ip(8) and unshare(1).
// Under CI=true only -short skips; anything missing fails the test.
func Skip(t testing.TB) {
	t.Helper()
	testenv.Root(t)
	testenv.Tool(t, "ip", "iproute2")
	testenv.Tool(t, "unshare", "util-linux")
}
