//go:build !linux

package pd_test

import (
	"testing"

	"gateway/gateway/lab"
)

type sniffer struct{}

func sniffWAN(t *testing.T, l *lab.Lab) *sniffer {
	t.Skip("packet sockets are Linux only")
	return nil
}

func (s *sniffer) messages() [][]byte { return nil }
