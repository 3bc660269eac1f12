//go:build !linux

package netconf

import "net/netip"

// AddAddr is only on Linux.
func AddAddr(iface string, p netip.Prefix) error { return ErrUnsupported }

// DelAddr is only on Linux.
func DelAddr(iface string, p netip.Prefix) error { return ErrUnsupported }

// Addrs is only on Linux.
func Addrs(iface string) ([]netip.Prefix, error) { return nil, ErrUnsupported }

// AddRoute is only on Linux.
func AddRoute(iface string, dst, src netip.Prefix) error { return ErrUnsupported }

// DelRoute is only on Linux.
func DelRoute(iface string, dst, src netip.Prefix) error { return ErrUnsupported }
