//go:build !linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

const workerArg = "-worker"

func workerMain([]string) {
	fmt.Fprintln(os.Stderr, "bench/flash: Linux only")
	os.Exit(1)
}

// run needs network namespaces, strace and dnsmasq: Linux only.
func run(context.Context, options) (string, error) {
	return "", errors.ErrUnsupported
}
