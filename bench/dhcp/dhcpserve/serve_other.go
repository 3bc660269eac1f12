//go:build !linux

package main

import "errors"

// serve needs the Linux sockets of package dhcp.
func serve(options) error { return errors.ErrUnsupported }
