package ra

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/ipv6"

	"gateway/ra/ndpwire"
)

// allRouters is the group Router Solicitations go to (RFC 4861 6.1.1).
var allRouters = netip.MustParseAddr("ff02::2")

// icmpConn is a raw ICMPv6 socket bound to the LAN interface's link-local
// address. The kernel computes and checks the ICMPv6 checksum of a raw
// ICMPv6 socket by itself (RFC 3542 3.1; Linux has no switch to turn it
// off), so messages go out and come in as ndpwire has them.
type icmpConn struct {
	pc   *ipv6.PacketConn
	addr netip.Addr // our link-local address, bound to
	mac  net.HardwareAddr
	zone string               // the interface's index: a name would be looked up in the writing thread's namespace
	cm   *ipv6.ControlMessage // on every write: hop limit 255, our source, the interface
}

// listen opens the ICMPv6 socket on iface's link-local address, joins
// all-routers (a raw socket bound to an address sees multicast only for
// groups it joined) and lets only Router Solicitations through. While the
// interface has no link-local address, or it is tentative (DAD), binding
// fails and Run tries again.
func listen(iface string) (conn, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("ra: %w", err)
	}
	ll, err := linkLocal(ifi)
	if err != nil {
		return nil, err
	}
	// Bound to a link-local address with its zone, the socket is bound
	// to the interface too: it sees nothing from other links.
	c, err := net.ListenPacket("ip6:ipv6-icmp", ll.WithZone(ifi.Name).String())
	if err != nil {
		return nil, fmt.Errorf("ra: listen on %s: %w", iface, err)
	}
	pc := ipv6.NewPacketConn(c)
	if err := setup(pc, ifi); err != nil {
		pc.Close()
		return nil, fmt.Errorf("ra: %s: %w", iface, err)
	}
	return &icmpConn{
		pc:   pc,
		addr: ll,
		mac:  ifi.HardwareAddr,
		zone: strconv.Itoa(ifi.Index),
		cm:   &ipv6.ControlMessage{HopLimit: ndpwire.HopLimit, Src: ll.AsSlice(), IfIndex: ifi.Index},
	}, nil
}

// setup sets what RFC 4861 asks of the socket: hop limit 255 out, the hop
// limit of each message in (6.1.1: a solicitation with another is
// dropped), only solicitations through the ICMPv6 filter, all-routers
// joined.
func setup(pc *ipv6.PacketConn, ifi *net.Interface) error {
	if err := pc.SetHopLimit(ndpwire.HopLimit); err != nil {
		return fmt.Errorf("hop limit: %w", err)
	}
	if err := pc.SetMulticastHopLimit(ndpwire.HopLimit); err != nil {
		return fmt.Errorf("multicast hop limit: %w", err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ndpwire.TypeRouterSolicitation)
	if err := pc.SetICMPFilter(&f); err != nil {
		return fmt.Errorf("ICMPv6 filter: %w", err)
	}
	if err := pc.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		return fmt.Errorf("hop limit control message: %w", err)
	}
	if err := pc.JoinGroup(ifi, &net.IPAddr{IP: allRouters.AsSlice()}); err != nil {
		return fmt.Errorf("join %v: %w", allRouters, err)
	}
	return nil
}

// linkLocal is ifi's first IPv6 link-local address (RFC 4861 6.1.2: RAs
// come from one).
func linkLocal(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ra: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if ok && ip.Is6() && !ip.Is4In6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("ra: %s has no IPv6 link-local address", ifi.Name)
}

func (c *icmpConn) ReadRS(b []byte) (int, int, netip.Addr, error) {
	n, cm, from, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, 0, netip.Addr{}, err
	}
	hop := -1 // no control message: fails the hop limit check
	if cm != nil {
		hop = cm.HopLimit
	}
	var src netip.Addr // not an IPv6 source: fails parseRS's check
	if ia, ok := from.(*net.IPAddr); ok {
		src, _ = netip.AddrFromSlice(ia.IP)
	}
	return n, hop, src, nil
}

func (c *icmpConn) WriteRA(b []byte, dst netip.Addr) error {
	_, err := c.pc.WriteTo(b, c.cm, &net.IPAddr{IP: dst.AsSlice(), Zone: c.zone})
	return err
}

func (c *icmpConn) HardwareAddr() net.HardwareAddr { return c.mac }
func (c *icmpConn) Close() error                   { return c.pc.Close() }

// gone reports whether err says the interface or its address is no more.
func gone(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EADDRNOTAVAIL)
}
