package teredo

import (
	"fmt"
	"net"
	"net/netip"

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
	var err error
	if c.dev, err = tundev.Open(c.cfg.Name, MTU); err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	name, err := c.dev.Name()
	if err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	idx, err := tundev.Index(name)
	if err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	rt, err := dialRoutes(idx)
	if err != nil {
		return err
	}
	c.rt = rt
	bind := c.cfg.Bind
	if !bind.IsValid() {
		bind = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	if c.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(bind)); err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	c.sc = newServerConn(c.conn)
	return nil
}
