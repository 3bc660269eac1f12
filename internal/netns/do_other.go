//go:build !linux

package netns

import "errors"

// Do is only on Linux.
func Do(name string, fn func() error) error {
	return errors.New("netns: network namespaces are Linux only")
}
