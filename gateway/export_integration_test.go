//go:build linux && !nolab

package gateway

// DaemonBinary is the daemon binary that TestMain built, for the tests of
// package gateway_test.
func DaemonBinary() string { return binary }
