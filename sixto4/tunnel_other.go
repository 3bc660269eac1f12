//go:build !linux

package sixto4

import (
	"context"
	"errors"
	"net/netip"
)

// Tunnel is Linux-only.
type Tunnel struct{}

// New is Linux-only.
func New(cfg Config) (*Tunnel, error) { return nil, errors.ErrUnsupported }

func (t *Tunnel) Run(ctx context.Context) error { return errors.ErrUnsupported }
func (t *Tunnel) Prefix() netip.Prefix          { return netip.Prefix{} }
func (t *Tunnel) Stats() Stats                  { return Stats{} }
func (t *Tunnel) SetDefault(on bool) error      { return errors.ErrUnsupported }
func (t *Tunnel) Close() error                  { return nil }
