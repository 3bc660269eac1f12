//go:build !linux

package lab

import "errors"

// Do runs fn in host's network namespace; only on Linux.
func (l *Lab) Do(host string, fn func() error) error {
	return errors.ErrUnsupported
}
