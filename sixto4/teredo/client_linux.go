package teredo

import (
	"fmt"
	"net"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"

	"gateway/internal/tundev"
)

// New creates the TUN device and the UDP socket in the calling thread's
// network namespace; Run qualifies and moves the packets.
func New(cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.open(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) open() error {
	dev, rt, err := openDevice(c.cfg.Name)
	c.dev = dev
	if rt != nil {
		c.rt = rt
	}
	if err != nil {
		return err
	}
	bind := c.cfg.Bind
	if !bind.IsValid() {
		bind = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	if c.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(bind)); err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	if len(c.cfg.Servers) > 1 && c.cfg.HealthInterval >= 0 {
		// The standby servers' checks: a socket of their own, so they
		// neither disturb the tunnel's nor open its NAT mapping to them.
		if c.probe, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind.Addr(), 0))); err != nil {
			return fmt.Errorf("teredo: %w", err)
		}
	}
	c.sc = newServerConn(c.conn)
	c.hand = c.sc.hand
	return nil
}

// openDevice creates the TUN device name and an rtnetlink socket for its
// addresses and routes. What it made before an error is returned too, for
// the caller's Close.
func openDevice(name string) (tun.Device, *routes, error) {
	dev, err := tundev.Open(name, MTU)
	if err != nil {
		return nil, nil, fmt.Errorf("teredo: %w", err)
	}
	ifname, err := dev.Name()
	if err != nil {
		return dev, nil, fmt.Errorf("teredo: %w", err)
	}
	idx, err := tundev.Index(ifname)
	if err != nil {
		return dev, nil, fmt.Errorf("teredo: %w", err)
	}
	rt, err := dialRoutes(idx)
	if err != nil {
		return dev, nil, err
	}
	return dev, rt, nil
}
