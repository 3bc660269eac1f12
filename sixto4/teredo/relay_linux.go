package teredo

import (
	"fmt"
	"net"
	"net/netip"

	"gateway/internal/netconf"
	"gateway/sixto4/teredo/wire"
)

// NewRelay creates the TUN device with the route for 2001::/32 into it
// and the UDP socket, in the calling thread's network namespace; Run
// moves the packets. The kernel must forward IPv6 for native hosts to
// reach Teredo ones through it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	r, err := newRelay(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.open(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Relay) open() error {
	dev, rt, err := openDevice(r.cfg.Name)
	r.dev = dev
	if rt != nil {
		r.rt = rt
	}
	if err != nil {
		return err
	}
	name, err := dev.Name()
	if err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	if err := netconf.AddRoute(name, wire.Prefix, netip.Prefix{}); err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	if r.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(r.cfg.Bind)); err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	return nil
}
