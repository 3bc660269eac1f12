//go:build !linux

package teredo

import "errors"

// NewRelay is Linux only.
func NewRelay(cfg RelayConfig) (*Relay, error) { return nil, errors.ErrUnsupported }
