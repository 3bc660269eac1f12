package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// AddRoute routes IPv6 dst, for sources in src (zero: any source), out
// of iface; a route already there is replaced. A source-specific route
// (RTA_SRC, which jsimonetti/rtnetlink does not carry) needs a kernel with
// CONFIG_IPV6_SUBTREES.
func AddRoute(iface string, dst, src netip.Prefix) error { return route(true, iface, dst, src) }

// DelRoute removes what AddRoute added; a route that is not there is
// success.
func DelRoute(iface string, dst, src netip.Prefix) error { return route(false, iface, dst, src) }

func route(add bool, iface string, dst, src netip.Prefix) error {
	if !dst.Addr().Is6() || (src.IsValid() && !src.Addr().Is6()) {
		return fmt.Errorf("netconf: route %v from %v: IPv6 only", dst, src)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	body := make([]byte, 12) // struct rtmsg
	body[0] = unix.AF_INET6
	body[1] = byte(dst.Bits())
	if src.IsValid() {
		body[2] = byte(src.Bits())
	}
	body[4] = unix.RT_TABLE_MAIN
	body[5] = unix.RTPROT_STATIC
	body[6] = unix.RT_SCOPE_UNIVERSE
	body[7] = unix.RTN_UNICAST
	ae := netlink.NewAttributeEncoder()
	if dst.Bits() > 0 {
		d := dst.Masked().Addr().As16()
		ae.Bytes(unix.RTA_DST, d[:])
	}
	if src.IsValid() {
		s := src.Masked().Addr().As16()
		ae.Bytes(unix.RTA_SRC, s[:])
	}
	ae.Uint32(unix.RTA_OIF, uint32(ifi.Index))
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	typ, flags := netlink.HeaderType(unix.RTM_NEWROUTE), netlink.Create|netlink.Replace
	if !add {
		typ, flags = unix.RTM_DELROUTE, 0
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	defer c.Close()
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Acknowledge | flags},
		Data:   append(body, attrs...),
	})
	if err != nil && !add && errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		verb := "add"
		if !add {
			verb = "delete"
		}
		return fmt.Errorf("netconf: %s route %v from %v dev %s: %w", verb, dst, src, iface, err)
	}
	return nil
}
