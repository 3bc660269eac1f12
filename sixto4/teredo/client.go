package teredo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"gateway/internal/clock"
	"gateway/sixto4/teredo/wire"
)

// MTU is the Teredo interface's MTU (RFC 4380 section 5.2: 1280).
const MTU = 1280

// tunOffset is the headroom before each packet handed to the TUN device:
// wireguard's tun writes its virtio-net header there.
const tunOffset = 16

// Config configures a Client.
type Config struct {
	Name string // the TUN device; empty: "teredo"
	// Servers are the Teredo servers' primary IPv4 addresses, in order
	// of preference; required. The client qualifies with the first that
	// answers and fails over to the next healthy one when its server
	// stops answering refreshes.
	Servers []netip.Addr
	Bind    netip.AddrPort // the UDP socket's address; zero: 0.0.0.0, any port
	Logger  *slog.Logger   // nil: discard
	Clock   clock.Clock    // nil: the real clock
	// Qualifier's timers and server port; zero: the RFC's.
	Qualifier Qualifier
	// RefreshInterval is how often the mapping is refreshed; zero:
	// RefreshInterval (RFC 4380 section 5.2.7).
	RefreshInterval time.Duration
	// HealthInterval is how often the standby servers are checked; zero:
	// HealthInterval; negative: never (failover then tries them in
	// order).
	HealthInterval time.Duration
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("teredo: no server"))
	}
	for _, s := range c.Servers {
		if !s.Is4() {
			errs = append(errs, fmt.Errorf("teredo: server %v is not IPv4", s))
		}
	}
	if len(c.Qualifier.ClientID) > 255 {
		errs = append(errs, fmt.Errorf("teredo: client identifier of %d bytes (at most 255)", len(c.Qualifier.ClientID)))
	}
	if c.Qualifier.ClientID != nil && c.Qualifier.Secret == nil {
		errs = append(errs, errors.New("teredo: client identifier without a secret"))
	}
	if c.Bind.IsValid() && !c.Bind.Addr().Is4() {
		errs = append(errs, fmt.Errorf("teredo: bind address %v is not IPv4", c.Bind))
	}
	return errors.Join(errs...)
}

// State is what `gateway status` shows of the client.
type State struct {
	Qualified bool
	Addr      netip.Addr // our Teredo address
	Cone      bool
	Server    netip.Addr
	Mapped    netip.AddrPort
	Peers     []Peer
	Servers   []ServerState // every configured server, in order
}

// Stats are the client's counters.
type Stats struct {
	InPackets, InBytes   uint64 // decapsulated into the TUN device
	OutPackets, OutBytes uint64 // encapsulated to peers (queued ones when flushed)
	Bubbles              uint64 // sent
	Qualifications       uint64
	Drops                map[string]uint64 // by Reason
}

// routeTable sets the device's address (rtnetlink on Linux).
type routeTable interface {
	addAddress(p netip.Prefix) error
	delAddress(p netip.Prefix) error
	close() error
}

// Client is a Teredo client (RFC 4380 section 5.2): it qualifies with a
// server, keeps its NAT mapping, and carries IPv6 packets between its
// TUN device and Teredo peers, direct after bubbles.
type Client struct {
	datapath // its mu guards q and closed too
	cfg      Config
	rt       routeTable
	sc       *serverConn
	probe    *net.UDPConn // the standby servers' checks; nil: none
	log      *slog.Logger

	q       Qualification
	servers []ServerState
	closed  bool

	quals atomic.Uint64
}

// newWithDeps is New over the given device, socket and route table
// (fakes in unit tests).
func newWithDeps(cfg Config, dev tun.Device, conn *net.UDPConn, rt routeTable) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	c.dev, c.conn, c.rt, c.sc = dev, conn, rt, newServerConn(conn)
	c.hand = c.sc.hand
	return c, nil
}

func newClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "teredo"
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = RefreshInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: cfg.Logger}
	for _, s := range cfg.Servers {
		c.servers = append(c.servers, ServerState{Addr: s})
	}
	c.name, c.clk, c.peers = cfg.Name, clock.Or(cfg.Clock), newPeers(cfg.Qualifier.port())
	return c, nil
}

// Addr is our Teredo address; invalid until qualified.
func (c *Client) Addr() netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.q.Address
}

// State returns the qualification and the peers.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{Qualified: c.q.Address.IsValid(), Addr: c.q.Address, Cone: c.q.Cone, Server: c.q.Server, Mapped: c.q.Mapped,
		Peers: c.peers.snapshot(), Servers: append([]ServerState(nil), c.servers...)}
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	return Stats{
		InPackets: c.inPackets.Load(), InBytes: c.inBytes.Load(),
		OutPackets: c.outPackets.Load(), OutBytes: c.outBytes.Load(),
		Bubbles: c.bubbles.Load(), Qualifications: c.quals.Load(),
		Drops: c.dropCounts(),
	}
}

// Close removes the device and closes the socket.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	err := c.closeIO()
	if c.probe != nil {
		err = errors.Join(err, c.probe.Close())
	}
	if c.rt != nil {
		err = errors.Join(err, c.rt.close())
	}
	return err
}

// Run qualifies, refreshes and moves packets until ctx is done or the
// device or socket fails; it closes the client when it returns. Call it
// once.
func (c *Client) Run(ctx context.Context) error {
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(inner, func() { c.Close() })
	defer stop()
	errc := make(chan error, 4)
	go func() { errc <- c.netToTun() }()
	go func() { errc <- c.tunToNet() }()
	go func() { errc <- c.maintain(inner) }()
	var probe net.PacketConn
	if c.probe != nil {
		probe = c.probe
	}
	go func() { errc <- c.checkStandbys(inner, probe) }()
	err := <-errc
	cancel()
	c.Close() // stops the other loops
	<-errc
	<-errc
	<-errc
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// maintain qualifies (with the first healthy server, see pickServer),
// refreshes every RefreshInterval, qualifies again when the mapping
// changes, fails over to another server when its server stops
// answering (a refresh whose Attempts RSs, Timeout apart, all go
// unanswered), and ticks the peers' bubbles.
func (c *Client) maintain(ctx context.Context) error {
	qz := c.cfg.Qualifier
	var q Qualification
	var failed netip.Addr // the server that failed last; invalid: none
	for {
		if !q.Address.IsValid() {
			server, _ := c.pickServer(failed)
			c.mu.Lock()
			c.peers.server = server // its RAs go to the qualifier
			c.mu.Unlock()
			var err error
			q, err = qz.Qualify(ctx, c.sc, server)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				c.log.Warn("teredo qualification", slog.String("server", server.String()), slog.Any("err", err))
				c.noteServer(server, false, 0)
				q, failed = Qualification{}, server
				if _, healthy := c.pickServer(failed); !healthy {
					if err := sleep(ctx, c.clk, qz.timeout()); err != nil {
						return err
					}
				}
				continue
			}
			c.noteServer(server, true, 0)
			failed = netip.Addr{}
			if err := c.setQualification(q); err != nil {
				return err
			}
			c.log.Info("teredo qualified", slog.String("server", server.String()), slog.String("addr", q.Address.String()), slog.String("mapped", q.Mapped.String()), slog.Bool("cone", q.Cone))
		}
		refresh := c.clk.Now().Add(c.cfg.RefreshInterval)
		for c.clk.Now().Before(refresh) {
			if err := sleep(ctx, c.clk, BubbleInterval/4); err != nil {
				return err
			}
			c.tick()
		}
		start := c.clk.Now()
		r, err := qz.Refresh(ctx, c.sc, q)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, ErrMappingChanged):
			c.noteServer(q.Server, true, c.clk.Now().Sub(start))
			c.log.Info("teredo refresh: mapping changed, qualifying again", slog.Any("err", err))
			q = Qualification{}
		case err != nil:
			c.noteServer(q.Server, false, 0)
			c.log.Warn("teredo refresh: server silent, failing over", slog.String("server", q.Server.String()), slog.Any("err", err))
			q, failed = Qualification{}, q.Server
		default:
			c.noteServer(q.Server, true, c.clk.Now().Sub(start))
			q = r
		}
	}
}

func sleep(ctx context.Context, clk clock.Clock, d time.Duration) error {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// setQualification puts the new address on the device (2001::/32 with
// it: RFC 4380 section 5.2.1, the Teredo prefix is on-link through the
// interface) and forgets the peers of the old one.
func (c *Client) setQualification(q Qualification) error {
	c.mu.Lock()
	old := c.q
	c.mu.Unlock()
	if old.Address != q.Address {
		if err := c.rt.addAddress(netip.PrefixFrom(q.Address, wire.Prefix.Bits())); err != nil {
			return err
		}
		if old.Address.IsValid() {
			if err := c.rt.delAddress(netip.PrefixFrom(old.Address, wire.Prefix.Bits())); err != nil {
				c.log.Warn("teredo: old address", slog.Any("err", err))
			}
		}
	}
	c.mu.Lock()
	c.q = q
	dropped := c.peers.reset(q.Address, q.Server)
	c.mu.Unlock()
	c.drop(PeerUnreachable, dropped)
	c.quals.Add(1)
	return nil
}
