package teredo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"

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
	cfg  RelayConfig
	dev  tun.Device
	conn *net.UDPConn
	rt   closer
	log  *slog.Logger
	clk  clock.Clock

	mu     sync.Mutex // guards peers, closed
	peers  *peers
	closed bool

	inPackets, inBytes, outPackets, outBytes, bubbles atomic.Uint64
	drops                                             [numReasons]atomic.Uint64
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
	return &Relay{cfg: cfg, log: cfg.Logger, clk: clock.Or(cfg.Clock), peers: p}, nil
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
	s := RelayStats{
		InPackets: r.inPackets.Load(), InBytes: r.inBytes.Load(),
		OutPackets: r.outPackets.Load(), OutBytes: r.outBytes.Load(),
		Bubbles: r.bubbles.Load(), Peers: n, Drops: map[string]uint64{},
	}
	for x := Reason(1); x < numReasons; x++ {
		if v := r.drops[x].Load(); v > 0 {
			s.Drops[x.String()] = v
		}
	}
	return s
}

func (r *Relay) drop(x Reason, n int) { r.drops[x].Add(uint64(n)) }

// Close removes the device (and its route) and closes the socket.
func (r *Relay) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if r.conn != nil {
		if err := r.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if r.dev != nil {
		if err := r.dev.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if r.rt != nil {
		errs = append(errs, r.rt.close())
	}
	return errors.Join(errs...)
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
		r.mu.Lock()
		dropped, out := r.peers.tick(r.clk.Now(), nil)
		r.mu.Unlock()
		r.drop(PeerUnreachable, dropped)
		r.send(out)
	}
}

func (r *Relay) send(out []datagram) {
	for _, d := range out {
		if _, err := r.conn.WriteToUDPAddrPort(d.Payload, d.To); err != nil {
			r.drop(SendFailed, 1)
			continue
		}
		if len(d.Payload) == 40 && d.Payload[6] == wire.ProtoNone {
			r.bubbles.Add(1)
		} else {
			r.outPackets.Add(1)
			r.outBytes.Add(uint64(len(d.Payload)))
		}
	}
}

// tunToNet reads IPv6 packets to Teredo destinations from the TUN
// device and sends them to their peers, a batch per read.
func (r *Relay) tunToNet() error {
	n := r.dev.BatchSize()
	bufs := make([][]byte, n)
	for i := range bufs {
		size := tunOffset + MTU + 256
		if i == 0 {
			size = tunOffset + 65536
		}
		bufs[i] = make([]byte, size)
	}
	sizes := make([]int, n)
	out := make([]datagram, 0, 8)
	errRun := 0
	for {
		got, err := r.dev.Read(bufs, sizes, tunOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errRun >= 100 {
				return fmt.Errorf("teredo: read %s: %w", r.cfg.Name, err)
			}
			if !errors.Is(err, tun.ErrTooManySegments) {
				errRun++
			}
			r.drop(Malformed, 1)
			continue
		}
		errRun = 0
		for i := range got {
			pkt := bufs[i][tunOffset : tunOffset+sizes[i]]
			r.mu.Lock()
			to, x, o := r.peers.outbound(r.clk.Now(), pkt, out[:0])
			r.mu.Unlock()
			out = o
			r.send(out)
			if x != 0 {
				r.drop(x, 1)
				continue
			}
			if !to.IsValid() {
				continue // queued
			}
			if _, err := r.conn.WriteToUDPAddrPort(pkt, to); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return fmt.Errorf("teredo: send: %w", err)
				}
				r.drop(SendFailed, 1)
				continue
			}
			r.outPackets.Add(1)
			r.outBytes.Add(uint64(len(pkt)))
		}
	}
}

// netToTun reads Teredo packets from the socket, checks them (RFC 4380
// section 5.4.2) and writes the IPv6 packets to the TUN device.
func (r *Relay) netToTun() error {
	buf := make([]byte, tunOffset+65536)
	bufs := [][]byte{nil}
	out := make([]datagram, 0, 8)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf[tunOffset:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("teredo: receive: %w", err)
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		pkt := buf[tunOffset : tunOffset+n]
		r.mu.Lock()
		off, v, x, o := r.peers.inbound(r.clk.Now(), from, pkt, out[:0])
		r.mu.Unlock()
		out = o
		r.send(out)
		switch v {
		case drop:
			r.drop(x, 1)
		case deliver:
			ip := pkt[off:]
			ip = ip[:40+int(binary.BigEndian.Uint16(ip[4:6]))]
			bufs[0] = buf[off : off+tunOffset+len(ip)]
			if _, err := r.dev.Write(bufs, tunOffset); err != nil {
				if errors.Is(err, os.ErrClosed) {
					return fmt.Errorf("teredo: write %s: %w", r.cfg.Name, err)
				}
				r.drop(TunWriteFailed, 1)
				continue
			}
			r.inPackets.Add(1)
			r.inBytes.Add(uint64(len(ip)))
		}
	}
}
