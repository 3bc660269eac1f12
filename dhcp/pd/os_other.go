//go:build !linux

package pd

import (
	"errors"
	"fmt"
)

func openLinux(iface string) (Conn, Link, error) {
	return nil, nil, fmt.Errorf("pd: %w", errors.ErrUnsupported)
}
