//go:build !linux

package teredo

import "errors"

// New is Linux only.
func New(cfg Config) (*Client, error) { return nil, errors.ErrUnsupported }
