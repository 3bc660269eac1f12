//go:build !linux

package gateway

import "syscall"

// freeBind does nothing where there is no IP_FREEBIND.
func freeBind(network, address string, c syscall.RawConn) error { return nil }
