package sixto4

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// routes sets the TUN device's address and routes over rtnetlink. It
// speaks the messages itself: jsimonetti/rtnetlink has no RTA_SRC, which
// the source-specific default route needs.
type routes struct {
	c     *netlink.Conn // opened in the Tunnel's network namespace
	index uint32
}

func dialRoutes(index int) (*routes, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("sixto4: rtnetlink: %w", err)
	}
	return &routes{c: c, index: uint32(index)}, nil
}

func (r *routes) close() error { return r.c.Close() }

func (r *routes) do(typ netlink.HeaderType, flags netlink.HeaderFlags, body []byte, attrs func(*netlink.AttributeEncoder)) error {
	ae := netlink.NewAttributeEncoder()
	attrs(ae)
	a, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Acknowledge | flags},
		Data:   append(body, a...),
	})
	return err
}

// addAddress puts p.Addr()/p.Bits() on the device, without duplicate
// address detection (the device is point-to-point, nothing to collide with).
func (r *routes) addAddress(p netip.Prefix) error {
	body := []byte{unix.AF_INET6, byte(p.Bits()), unix.IFA_F_NODAD, unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(body[4:], r.index)
	a := p.Addr().As16()
	err := r.do(unix.RTM_NEWADDR, netlink.Create|netlink.Replace, body, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(unix.IFA_ADDRESS, a[:])
		ae.Uint32(unix.IFA_FLAGS, unix.IFA_F_NODAD)
	})
	if err != nil {
		return fmt.Errorf("sixto4: add address %v: %w", p, err)
	}
	return nil
}

// route adds (or deletes) the route to dst from src (src zero: from
// anywhere) through the device. A source-specific route needs a kernel
// with CONFIG_IPV6_SUBTREES.
func (r *routes) route(add bool, dst, src netip.Prefix) error {
	body := make([]byte, 12)
	body[0] = unix.AF_INET6
	body[1] = byte(dst.Bits())
	if src.IsValid() {
		body[2] = byte(src.Bits())
	}
	body[4] = unix.RT_TABLE_MAIN
	body[5] = unix.RTPROT_STATIC
	body[6] = unix.RT_SCOPE_UNIVERSE
	body[7] = unix.RTN_UNICAST
	typ, flags := netlink.HeaderType(unix.RTM_NEWROUTE), netlink.Create|netlink.Replace
	if !add {
		typ, flags = unix.RTM_DELROUTE, 0
	}
	err := r.do(typ, flags, body, func(ae *netlink.AttributeEncoder) {
		if dst.Bits() > 0 {
			d := dst.Addr().As16()
			ae.Bytes(unix.RTA_DST, d[:])
		}
		if src.IsValid() {
			s := src.Addr().As16()
			ae.Bytes(unix.RTA_SRC, s[:])
		}
		ae.Uint32(unix.RTA_OIF, r.index)
	})
	if err != nil {
		verb := "add"
		if !add {
			verb = "delete"
		}
		return fmt.Errorf("sixto4: %s route %v from %v: %w", verb, dst, src, err)
	}
	return nil
}
