//go:build !linux

package pmp

import (
	"context"
	"errors"
	"net"
)

func listen(ctx context.Context, l Listen) (*net.UDPConn, error) {
	if l.Iface != "" {
		return nil, errors.ErrUnsupported // binding to an interface is Linux's
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", l.Addr.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}
