package pmp

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen opens l's socket: bound to its interface (SO_BINDTODEVICE: only
// what arrives on the LAN is read, and multicast goes out there), with
// FREEBIND so that an IPv6 address still in duplicate address detection
// can be bound.
func listen(ctx context.Context, l Listen) (*net.UDPConn, error) {
	addr := l.Addr
	if addr.Port() == 0 && l.Iface != "" {
		addr = netipAddrPort(addr, Port)
	}
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if l.Iface != "" {
				if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, l.Iface); serr != nil {
					return
				}
			}
			if addr.Addr().Is4() {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	network := "udp4"
	if !addr.Addr().Is4() {
		network = "udp6"
	}
	pc, err := lc.ListenPacket(ctx, network, addr.String())
	if err != nil {
		return nil, fmt.Errorf("pmp: listen on %v (%s): %w", addr, l.Iface, err)
	}
	return pc.(*net.UDPConn), nil
}
