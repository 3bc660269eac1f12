//go:build !linux

package nat44

import (
	"context"
	"errors"
)

// NFTables is the Linux datapath; elsewhere it is unsupported.
type NFTables struct{}

// NewNFTables reports that nftables exists only on Linux.
func NewNFTables(int) (*NFTables, error) { return nil, errors.ErrUnsupported }

func (*NFTables) Apply(*State) error                       { return errors.ErrUnsupported }
func (*NFTables) Drifted() (bool, error)                   { return false, errors.ErrUnsupported }
func (*NFTables) Close() error                             { return nil }
func (*NFTables) WatchDrift(context.Context, func()) error { return errors.ErrUnsupported }
