//go:build !linux

package netwatch

import (
	"context"
	"errors"
)

// Watcher is Linux-only.
type Watcher struct{ hub }

// New returns a Watcher whose Run reports that it is unsupported.
func New(names ...string) *Watcher { return &Watcher{} }

// Run is unsupported here.
func (w *Watcher) Run(ctx context.Context) error { return errors.ErrUnsupported }
