//go:build !linux

package main

import (
	"context"
	"errors"
)

// run needs network namespaces: Linux only.
func run(context.Context, options) (string, error) {
	return "", errors.ErrUnsupported
}
