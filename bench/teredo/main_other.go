//go:build !linux

package main

import (
	"context"
	"errors"
)

// run needs network namespaces and TUN devices: Linux only.
func run(context.Context, options) (string, error) { return "", errors.ErrUnsupported }
