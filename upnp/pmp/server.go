package pmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"gateway/internal/clock"
	"gateway/nat44"
)

// Feed is the mapping service's change feed (nat44.NAT.Subscribe): a WAN
// change or an epoch reset starts the announcements again.
type Feed interface {
	Subscribe() (<-chan nat44.Event, func())
}

// Listen is one LAN address to serve on.
type Listen struct {
	// Addr is the address and port; port 0 means 5351 unless Iface is
	// empty (tests: 127.0.0.1:0 picks a free port).
	Addr netip.AddrPort
	// Iface is the LAN interface the socket is bound to (SO_BINDTODEVICE),
	// so that only what arrives on the LAN is read and announcements go
	// out on it; empty: not bound (tests).
	Iface string
}

// Config is the server's configuration.
type Config struct {
	// NAT is the mapping service; required.
	NAT NAT
	// Feed restarts the announcements on WAN changes and epoch resets;
	// nil: announcements only at start.
	Feed Feed
	// Listen are the LAN addresses to serve on; at least one.
	Listen []Listen
	// LANs are the LAN subnets: requests from elsewhere are ignored.
	// Zero: only link-local IPv6 sources are served.
	LANs []netip.Prefix
	// Core says which protocols are served and whether THIRD_PARTY is
	// allowed; zero: NAT-PMP and PCP, no THIRD_PARTY.
	Core CoreConfig
	// Announce4 and Announce6 are where the unsolicited announcements go
	// (RFC 6886 §3.2.1, RFC 6887 §14.1.3): zero means 224.0.0.1:5350 and
	// [ff02::1]:5350 on each listening socket's interface. NoAnnounce
	// turns them off.
	Announce4, Announce6 netip.AddrPort
	NoAnnounce           bool
	Clock                clock.Clock  // nil is the real clock
	Logger               *slog.Logger // nil discards
}

// Validate returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.NAT == nil {
		errs = append(errs, errors.New("pmp: no mapping service"))
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("pmp: no address to listen on"))
	}
	for _, l := range c.Listen {
		if !l.Addr.Addr().IsValid() {
			errs = append(errs, fmt.Errorf("pmp: listen address %v", l.Addr))
		}
	}
	if a := c.Announce4; a.IsValid() && !a.Addr().Is4() {
		errs = append(errs, fmt.Errorf("pmp: IPv4 announcement address %v", a))
	}
	if a := c.Announce6; a.IsValid() && !a.Addr().Is6() {
		errs = append(errs, fmt.Errorf("pmp: IPv6 announcement address %v", a))
	}
	return errors.Join(errs...)
}

// Default destinations of the announcements.
var (
	AllHosts4 = netip.MustParseAddrPort("224.0.0.1:5350")
	AllNodes6 = netip.MustParseAddrPort("[ff02::1]:5350")
)

// Server serves NAT-PMP and PCP on the LAN addresses.
type Server struct {
	cfg   Config
	core  *Core
	clock clock.Clock
	log   *slog.Logger

	mu    sync.Mutex // guards conns
	conns []*net.UDPConn
}

// New validates cfg and allocates the server; Run opens the sockets.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Announce4.IsValid() {
		cfg.Announce4 = AllHosts4
	}
	if !cfg.Announce6.IsValid() {
		cfg.Announce6 = AllNodes6
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	core := NewCore(cfg.NAT, cfg.Core)
	core.SetLANs(cfg.LANs)
	return &Server{cfg: cfg, core: core, clock: clock.Or(cfg.Clock), log: log}, nil
}

// Counters returns the counters by reason (Core.Counters).
func (s *Server) Counters() map[string]uint64 { return s.core.Counters() }

// Addrs returns the addresses the server listens on, once Run has opened
// them.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.AddrPort
	for _, c := range s.conns {
		out = append(out, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return out
}

// Run serves until ctx is done: one reader goroutine per socket, and one
// that sends the announcements. It returns when they have all ended; a
// socket that fails ends Run with an error.
func (s *Server) Run(ctx context.Context) error {
	var conns []*net.UDPConn
	for _, l := range s.cfg.Listen {
		c, err := listen(ctx, l)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		conns = append(conns, c)
	}
	s.mu.Lock()
	s.conns = conns
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.Close()
		}
	})
	defer stop()
	s.log.Info("NAT-PMP and PCP serving", slog.Any("listen", s.Addrs()))

	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Go(func() {
			errs[i] = s.serve(ctx, c)
			cancel() // one socket failed: stop, the supervisor restarts us
		})
	}
	if !s.cfg.NoAnnounce {
		wg.Go(func() { s.announce(ctx, conns) })
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	return errors.Join(errs...)
}

// serve reads c until it is closed, answering each request in place.
func (s *Server) serve(ctx context.Context, c *net.UDPConn) error {
	buf := make([]byte, 1500)
	var lastLog time.Time
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pmp: read %v: %w", c.LocalAddr(), err)
		}
		reply := s.core.Handle(buf[:n], from)
		if reply == nil {
			if now := s.clock.Now(); now.Sub(lastLog) > time.Second {
				lastLog = now
				s.log.Debug("request dropped", slog.String("from", from.String()), slog.Int("bytes", n))
			}
			continue
		}
		if _, err := c.WriteToUDPAddrPort(reply, from); err != nil {
			s.core.count("drop_send_failed")
		}
	}
}

// announceTimes is RFC 6886 §3.2.1's schedule, which RFC 6887 §14.1.3
// follows for ANNOUNCE: ten times, 250 ms between the first two, the
// interval doubling each time.
const (
	announceCount = 10
	announceFirst = 250 * time.Millisecond
)

// announce sends the announcements at start and again whenever the feed
// reports a WAN change or an epoch reset.
func (s *Server) announce(ctx context.Context, conns []*net.UDPConn) {
	var events <-chan nat44.Event
	unsub := func() {}
	defer func() { unsub() }()
	subscribe := func() {
		if s.cfg.Feed != nil {
			events, unsub = s.cfg.Feed.Subscribe()
		}
	}
	subscribe()
	sent, interval := 0, announceFirst
	t := s.clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok { // the mapping service restarted: follow the new one
				unsub()
				events = nil
				if !sleep(ctx, s.clock, time.Second) {
					return
				}
				subscribe()
				sent, interval = 0, announceFirst
				t.Reset(0)
				continue
			}
			if e.Kind == nat44.WANChanged || e.Kind == nat44.EpochReset {
				sent, interval = 0, announceFirst
				t.Reset(0)
			}
		case <-t.C:
			s.sendAnnouncements(conns)
			sent++
			if sent < announceCount {
				t.Reset(interval)
				interval *= 2
			}
		}
	}
}

func sleep(ctx context.Context, c clock.Clock, d time.Duration) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sendAnnouncements sends one round: on IPv4 sockets the NAT-PMP address
// announcement (while the WAN has an address) and PCP's ANNOUNCE, on
// IPv6 ones ANNOUNCE.
func (s *Server) sendAnnouncements(conns []*net.UDPConn) {
	natpmp, pcp := s.core.NATPMPAnnouncement(), s.core.PCPAnnouncement()
	for i, c := range conns {
		l := s.cfg.Listen[i]
		var msgs [][]byte
		dst := s.cfg.Announce4
		if l.Addr.Addr().Unmap().Is4() {
			if natpmp != nil && !s.cfg.Core.NoNATPMP {
				msgs = append(msgs, natpmp)
			}
		} else {
			dst = s.cfg.Announce6
			if l.Iface != "" && dst.Addr().IsMulticast() {
				dst = netip.AddrPortFrom(dst.Addr().WithZone(l.Iface), dst.Port())
			}
		}
		if !s.cfg.Core.NoPCP {
			msgs = append(msgs, pcp)
		}
		for _, m := range msgs {
			if _, err := c.WriteToUDPAddrPort(m, dst); err != nil {
				s.core.count("announce_failed")
				s.log.Debug("announcement not sent", slog.String("to", dst.String()), slog.Any("err", err))
				continue
			}
			s.core.count("announcements")
		}
	}
}

func netipAddrPort(a netip.AddrPort, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr(), port)
}

// Port is the server's UDP port, NAT-PMP's and PCP's (RFC 6887 §19.1).
const Port = 5351
