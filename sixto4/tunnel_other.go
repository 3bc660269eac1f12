//go:build !linux

package sixto4

import "errors"

// New is Linux-only.
func New(cfg Config) (*Tunnel, error) { return nil, errors.ErrUnsupported }
