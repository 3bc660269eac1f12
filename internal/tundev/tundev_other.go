//go:build !linux

package tundev

import (
	"errors"

	"golang.zx2c4.com/wireguard/tun"
)

// Open is Linux-only.
func Open(name string, mtu int) (tun.Device, error) { return nil, errors.ErrUnsupported }

// Index is Linux-only.
func Index(name string) (int, error) { return 0, errors.ErrUnsupported }
