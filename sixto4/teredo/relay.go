package teredo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"gateway/internal/clock"
	"gateway/sixto4/teredo/wire"
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	Name   string         // the TUN device; empty: "teredo-relay"
	Bind   netip.AddrPort // the UDP socket; zero: 0.0.0.0:3544; port 0: 3544
	Logger *slog.Logger   // nil: discard
	Clock  clock.Clock    // nil: the real clock
}

// Validate reports every problem with c.
func (c RelayConfig) Validate() error {
	if c.Bind.IsValid() && !c.Bind.Addr().Is4() {
		return fmt.Errorf("teredo: relay bind address %v is not IPv4", c.Bind)
	}
	return nil
}

// RelayStats are the relay's counters.
type RelayStats struct {
	InPackets, InBytes   uint64 // from Teredo peers into the TUN device
	OutPackets, OutBytes uint64 // to Teredo peers (queued ones when flushed)
	Bubbles              uint64 // sent
	Peers                int
	Drops                map[string]uint64 // by Reason
}

// Relay is a Teredo relay (RFC 4380 section 5.4): IPv6 packets routed
// into its TUN device to 2001::/32 go to the Teredo peer their
// destination names, directly after the peer answered a bubble; Teredo
// packets from peers to native destinations go into the TUN device for
// the kernel to forward. It takes no Teredo address.
type Relay struct {
	datapath // its mu guards closed too
	cfg      RelayConfig
	rt       closer
	log      *slog.Logger

	closed bool
}

// closer is what the relay closes besides the device and socket (the
// rtnetlink socket on Linux).
type closer interface{ close() error }

func newRelay(cfg RelayConfig) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "teredo-relay"
	}
	if !cfg.Bind.IsValid() {
		cfg.Bind = netip.AddrPortFrom(netip.IPv4Unspecified(), wire.Port)
	} else if cfg.Bind.Port() == 0 {
		cfg.Bind = netip.AddrPortFrom(cfg.Bind.Addr(), wire.Port)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := newPeers(wire.Port)
	p.relay = true
	r := &Relay{cfg: cfg, log: cfg.Logger}
	r.name, r.clk, r.peers = cfg.Name, clock.Or(cfg.Clock), p
	return r, nil
}

// Peers lists the Teredo peers the relay knows.
func (r *Relay) Peers() []Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peers.snapshot()
}

// Stats returns the counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	n := len(r.peers.m)
	r.mu.Unlock()
	return RelayStats{
		InPackets: r.inPackets.Load(), InBytes: r.inBytes.Load(),
		OutPackets: r.outPackets.Load(), OutBytes: r.outBytes.Load(),
		Bubbles: r.bubbles.Load(), Peers: n, Drops: r.dropCounts(),
	}
}

// Close removes the device (and its route) and closes the socket.
func (r *Relay) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.closeIO()
	if r.rt != nil {
		err = errors.Join(err, r.rt.close())
	}
	return err
}

// Run moves packets until ctx is done or the device or socket fails; it
// closes the relay when it returns. Call it once.
func (r *Relay) Run(ctx context.Context) error {
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(inner, func() { r.Close() })
	defer stop()
	errc := make(chan error, 3)
	go func() { errc <- r.netToTun() }()
	go func() { errc <- r.tunToNet() }()
	go func() { errc <- r.ticker(inner) }()
	err := <-errc
	cancel()
	r.Close()
	<-errc
	<-errc
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// ticker resends due bubbles and gives up on silent peers.
func (r *Relay) ticker(ctx context.Context) error {
	for {
		if err := sleep(ctx, r.clk, BubbleInterval/4); err != nil {
			return err
		}
		r.tick()
	}
}
