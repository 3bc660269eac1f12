// Package testenv decides what a test does when the machine lacks what it
// needs (a tool, a device, root): on a developer's machine it skips and
// says why; under CI=true, where everything must be there, it fails.
package testenv

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// CI reports whether the tests run in CI (the environment variable CI is
// "true"), where a missing prerequisite is a failure, not a skip.
func CI() bool { return os.Getenv("CI") == "true" }

// Skip skips t with the reason, or fails it under CI=true.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("testenv: CI=true, so this is a failure, not a skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Root skips (or, in CI, fails) t unless it runs as root on Linux. With
// -short it skips in any case: -short means "no integration tests".
func Root(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test, skipped with -short")
	}
	if runtime.GOOS != "linux" {
		Skip(t, "needs Linux network namespaces, not %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		Skip(t, "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}
}

// Tool returns the path of program name, or skips (fails in CI) t naming
// the Debian package that has it.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, "%s not installed (Debian package %s; `make test` installs it)", name, pkg)
	}
	return p
}

// Device skips (fails in CI) t when path does not exist.
func Device(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Skip(t, "needs %s: %v", path, err)
	}
}
