package ra

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

type ndpConn struct {
	c   *ndp.Conn
	mac net.HardwareAddr
}

// listen opens the ICMPv6 socket on iface's link-local address, joins
// all-routers (a raw socket bound to an address sees multicast only for
// groups it joined) and lets only Router Solicitations through.
func listen(iface string) (conn, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("ra: %w", err)
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("ra: listen on %s: %w", iface, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, fmt.Errorf("ra: ICMPv6 filter: %w", err)
	}
	if err := c.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("ra: hop limit control message: %w", err)
	}
	if err := c.JoinGroup(netip.MustParseAddr("ff02::2")); err != nil {
		c.Close()
		return nil, fmt.Errorf("ra: join ff02::2 on %s: %w", iface, err)
	}
	return &ndpConn{c: c, mac: ifi.HardwareAddr}, nil
}

func (n *ndpConn) ReadRS(b []byte) (int, int, netip.Addr, error) {
	l, cm, src, err := n.c.ReadRaw(b)
	if err != nil {
		return 0, 0, netip.Addr{}, err
	}
	hop := -1 // no control message: fails the hop limit check
	if cm != nil {
		hop = cm.HopLimit
	}
	return l, hop, src.WithZone(""), nil
}

func (n *ndpConn) WriteRA(m ndp.Message, dst netip.Addr) error {
	return n.c.WriteTo(m, nil, dst)
}

func (n *ndpConn) HardwareAddr() net.HardwareAddr { return n.mac }
func (n *ndpConn) Close() error                   { return n.c.Close() }

// gone reports whether err says the interface or its address is no more.
func gone(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EADDRNOTAVAIL)
}
