package teredo

import (
	"fmt"
	"net"

	"gateway/internal/tundev"
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
	var err error
	if r.dev, err = tundev.Open(r.cfg.Name, MTU); err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	name, err := r.dev.Name()
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
	r.rt = rt
	if err := rt.addRoute(wire.Prefix); err != nil {
		return err
	}
	if r.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(r.cfg.Bind)); err != nil {
		return fmt.Errorf("teredo: %w", err)
	}
	return nil
}
