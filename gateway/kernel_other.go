//go:build !linux

package gateway

import (
	"errors"
	"log/slog"
)

func prepareKernel(*Config, *slog.Logger) error { return errors.ErrUnsupported }

func conntrackTimeouts(*Config, *slog.Logger) {}
