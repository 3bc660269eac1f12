package teredo

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// routes sets the TUN device's address over rtnetlink.
type routes struct {
	c     *netlink.Conn // opened in the Client's network namespace
	index uint32
}

func dialRoutes(index int) (*routes, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("teredo: rtnetlink: %w", err)
	}
	return &routes{c: c, index: uint32(index)}, nil
}

func (r *routes) close() error { return r.c.Close() }

func (r *routes) addAddress(p netip.Prefix) error { return r.address(true, p) }
func (r *routes) delAddress(p netip.Prefix) error { return r.address(false, p) }

// address adds or deletes p.Addr()/p.Bits() on the device, without
// duplicate address detection (point-to-point: nothing to collide
// with); the kernel adds the prefix route with it.
func (r *routes) address(add bool, p netip.Prefix) error {
	body := []byte{unix.AF_INET6, byte(p.Bits()), unix.IFA_F_NODAD, unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(body[4:], r.index)
	typ, flags := netlink.HeaderType(unix.RTM_NEWADDR), netlink.Create|netlink.Replace
	if !add {
		typ, flags = unix.RTM_DELADDR, 0
	}
	ae := netlink.NewAttributeEncoder()
	a := p.Addr().As16()
	ae.Bytes(unix.IFA_LOCAL, a[:])
	ae.Bytes(unix.IFA_ADDRESS, a[:])
	ae.Uint32(unix.IFA_FLAGS, unix.IFA_F_NODAD)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	if _, err := r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Acknowledge | flags},
		Data:   append(body, attrs...),
	}); err != nil {
		return fmt.Errorf("teredo: address %v (add %v): %w", p, add, err)
	}
	return nil
}
