//go:build !linux

package upnp

import "syscall"

func reuseAddr(network, address string, c syscall.RawConn) error { return nil }

func freeBind(network, address string, c syscall.RawConn) error { return nil }
