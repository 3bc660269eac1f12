//go:build !linux

package ra

import "errors"

func listen(string) (conn, error) { return nil, errors.ErrUnsupported }

func gone(error) bool { return false }
