package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

func message(iface string, p netip.Prefix) (*rtnetlink.AddressMessage, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("netconf: %w", err)
	}
	fam := uint8(unix.AF_INET6)
	if p.Addr().Is4() {
		fam = unix.AF_INET
	}
	ip := net.IP(p.Addr().AsSlice())
	m := &rtnetlink.AddressMessage{
		Family:       fam,
		PrefixLength: uint8(p.Bits()),
		Scope:        unix.RT_SCOPE_UNIVERSE,
		Index:        uint32(ifi.Index),
		Attributes:   &rtnetlink.AddressAttributes{Address: ip, Local: ip},
	}
	if p.Addr().Is6() {
		// The router's own address must be usable at once: nobody else
		// on the LAN takes ::1 of the router's prefix, and DAD would hold
		// it tentative for a second or more.
		m.Attributes.Local = nil
		m.Attributes.Flags = unix.IFA_F_NODAD
	}
	return m, nil
}

// AddAddr puts p (an address with its prefix length) on iface; an address
// already there is success.
func AddAddr(iface string, p netip.Prefix) error {
	return change(iface, p, "add", func(c *rtnetlink.Conn, m *rtnetlink.AddressMessage) error {
		if err := c.Address.New(m); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return nil
	})
}

// DelAddr removes p from iface; an address that is not there is success.
func DelAddr(iface string, p netip.Prefix) error {
	return change(iface, p, "remove", func(c *rtnetlink.Conn, m *rtnetlink.AddressMessage) error {
		if err := c.Address.Delete(m); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			return err
		}
		return nil
	})
}

// change runs one address change on a connection of its own.
func change(iface string, p netip.Prefix, what string, do func(*rtnetlink.Conn, *rtnetlink.AddressMessage) error) error {
	m, err := message(iface, p)
	if err != nil {
		return err
	}
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	defer c.Close()
	if err := do(c, m); err != nil {
		return fmt.Errorf("netconf: %s %v on %s: %w", what, p, iface, err)
	}
	return nil
}

// Addrs lists iface's addresses with their prefix lengths.
func Addrs(iface string) ([]netip.Prefix, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("netconf: %w", err)
	}
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("netconf: %w", err)
	}
	defer c.Close()
	msgs, err := c.Address.List()
	if err != nil {
		return nil, fmt.Errorf("netconf: %w", err)
	}
	var out []netip.Prefix
	for _, m := range msgs {
		if m.Index != uint32(ifi.Index) || m.Attributes == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(m.Attributes.Address)
		if !ok {
			continue
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), int(m.PrefixLength)))
	}
	return out, nil
}
