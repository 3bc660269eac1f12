package pd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"gateway/dhcp/dhcp6"
)

const (
	clientPort = dhcp6.ClientPort
	serverPort = dhcp6.ServerPort
)

var allServers = dhcp6.AllServers

// openLinux opens UDP [::]:546 bound to iface (SO_BINDTODEVICE, so that a
// client per interface can coexist) and a netlink socket for iface's
// addresses, in the calling thread's network namespace.
func openLinux(iface string) (Conn, Link, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, nil, fmt.Errorf("pd: %w", err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			serr = errors.Join(
				unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface),
				unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index))
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", clientPort))
	if err != nil {
		return nil, nil, fmt.Errorf("pd: socket on %s: %w", iface, err)
	}
	nl, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("pd: netlink: %w", err)
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(allServers.WithZone(iface), serverPort))
	return &udpConn{pc: pc.(*net.UDPConn), dst: dst}, &nlLink{nl: nl, ifi: ifi}, nil
}

type udpConn struct {
	pc  *net.UDPConn
	dst *net.UDPAddr
}

func (u *udpConn) Send(b []byte) error {
	_, err := u.pc.WriteToUDP(b, u.dst)
	return err
}

func (u *udpConn) Recv(b []byte) (int, error) {
	n, _, err := u.pc.ReadFromUDP(b)
	return n, err
}

func (u *udpConn) Close() error { return u.pc.Close() }

// nlLink changes iface's addresses by rtnetlink, with lifetimes
// (IFA_CACHEINFO), which rtnetlink/v2's AddressAttributes cannot encode.
type nlLink struct {
	nl  *netlink.Conn
	ifi *net.Interface
}

func (l *nlLink) HardwareAddr() (net.HardwareAddr, error) { return l.ifi.HardwareAddr, nil }

func (l *nlLink) Close() error { return l.nl.Close() }

func (l *nlLink) SetAddr(addr netip.Prefix, preferred, valid time.Duration) error {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.IFA_ADDRESS, addr.Addr().AsSlice())
	ci := make([]byte, 16)
	binary.NativeEndian.PutUint32(ci[0:], secs(preferred))
	binary.NativeEndian.PutUint32(ci[4:], secs(valid))
	ae.Bytes(unix.IFA_CACHEINFO, ci)
	// No DAD: the server assigned it on this link; no prefix route:
	// on-link prefixes come from router advertisements, not IA_NA.
	ae.Uint32(unix.IFA_FLAGS, unix.IFA_F_NODAD|unix.IFA_F_NOPREFIXROUTE)
	return l.do(unix.RTM_NEWADDR, netlink.Create|netlink.Replace, addr, ae)
}

func (l *nlLink) DelAddr(addr netip.Prefix) error {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.IFA_ADDRESS, addr.Addr().AsSlice())
	err := l.do(unix.RTM_DELADDR, 0, addr, ae)
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return nil
	}
	return err
}

func (l *nlLink) do(typ netlink.HeaderType, flags netlink.HeaderFlags, addr netip.Prefix, ae *netlink.AttributeEncoder) error {
	attrs, err := ae.Encode()
	if err != nil {
		return fmt.Errorf("pd: %w", err)
	}
	// struct ifaddrmsg: family, prefixlen, flags, scope, index.
	hdr := make([]byte, 8)
	hdr[0] = unix.AF_INET6
	hdr[1] = byte(addr.Bits())
	binary.NativeEndian.PutUint32(hdr[4:], uint32(l.ifi.Index))
	_, err = l.nl.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Acknowledge | flags},
		Data:   append(hdr, attrs...),
	})
	if err != nil {
		return fmt.Errorf("pd: %s %s: %w", typName(typ), addr, err)
	}
	return nil
}

func typName(t netlink.HeaderType) string {
	if t == unix.RTM_DELADDR {
		return "deleting"
	}
	return "adding"
}

// secs converts a lifetime for IFA_CACHEINFO, where 0xffffffff is
// forever.
func secs(d time.Duration) uint32 {
	if d >= infinity {
		return 0xffffffff
	}
	if d < 0 {
		return 0
	}
	return uint32(d / time.Second)
}
