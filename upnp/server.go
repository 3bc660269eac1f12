// Package upnp is the UPnP IGD v1 and v2 service of the gateway: SSDP
// discovery on the LAN, the device and service descriptions, SOAP
// control of WANIPConnection:1/:2, WANCommonInterfaceConfig:1 and
// WANIPv6FirewallControl:1 on the mapping service (nat44), and GENA
// eventing. Core holds the action logic and owns no socket; Server is
// the thin I/O around it.
package upnp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"gateway/internal/clock"
	"gateway/internal/httpsrv"
	"gateway/nat44"
	"gateway/upnp/ssdp"
)

// LAN is one LAN interface the service runs on.
type LAN struct {
	Name   string       // interface name
	Prefix netip.Prefix // its IPv4 address and subnet; requests must come from the subnet
	// IPv6 are its global (or unique local) IPv6 addresses and subnets:
	// HTTP listens on them too and SSDP runs over IPv6 on the interface.
	// Empty: IPv4 only.
	IPv6 []netip.Prefix
}

// onLink reports whether a is on one of l's subnets; an IPv6 link-local
// address is on-link when it came in on l (its zone, or the interface a
// datagram arrived on, which the caller checked).
func (l LAN) onLink(a netip.Addr, arrivedOnL bool) bool {
	a = a.Unmap()
	if a.Is4() {
		return l.Prefix.Masked().Contains(a)
	}
	if a.IsLinkLocalUnicast() {
		return arrivedOnL || a.Zone() == l.Name
	}
	a = a.WithZone("")
	return slices.ContainsFunc(l.IPv6, func(p netip.Prefix) bool { return p.Masked().Contains(a) })
}

// addr6 is the LAN's IPv6 address for description URLs; invalid when it
// has none.
func (l LAN) addr6() netip.Addr {
	if len(l.IPv6) == 0 {
		return netip.Addr{}
	}
	return l.IPv6[0].Addr()
}

// Config configures a Server. Zero values are documented per field.
type Config struct {
	LANs []LAN // required
	// Port is the HTTP port on each LAN address; zero is 5000.
	Port uint16
	// SSDPPort is the SSDP port; zero is 1900 (tests use another).
	SSDPPort uint16
	// StateDir holds the device UUID (file upnp-uuid); required.
	StateDir string
	NAT      Mapper   // required
	Firewall Firewall // nil: WANIPv6FirewallControl answers 501
	// Feed is the mapping service's change feed (nat44.NAT.Subscribe);
	// nil: no events but the initial one. A closed channel is
	// subscribed again (the daemon replaces a failed NAT service).
	Feed func() (<-chan nat44.Event, func())
	// Stats reads the WAN interface's counters; nil answers zeros.
	Stats func() (LinkStats, error)
	// LeaseCap bounds IGDv2 leases; zero is 604800 s.
	LeaseCap time.Duration
	// ThirdParty is secure mode off (nat44.Policy.AllowThirdParty).
	ThirdParty bool
	// NotifyInterval is how often a round of ssdp:alive goes out, less
	// a random quarter; zero is 10 min, a third of the 30 min max-age
	// (UDA 2.0 §1.2.2: refresh "at a randomly-distributed interval of
	// less than one-half of the advertisement expiration time").
	NotifyInterval time.Duration
	// MaxDelay caps the random delay of a search answer; zero is 1 s.
	MaxDelay time.Duration
	// MaxSubscriptions bounds GENA subscriptions, 8 per host at most;
	// zero is 64.
	MaxSubscriptions int
	Version          string // in SERVER and modelNumber; zero "dev"
	Clock            clock.Clock
	Logger           *slog.Logger
}

// Validate returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.LANs) == 0 {
		errs = append(errs, errors.New("upnp: no LAN"))
	}
	for _, l := range c.LANs {
		if l.Name == "" || !l.Prefix.IsValid() || !l.Prefix.Addr().Is4() {
			errs = append(errs, fmt.Errorf("upnp: LAN %q %v: want a name and an IPv4 address/prefix", l.Name, l.Prefix))
		}
		for _, p := range l.IPv6 {
			if a := p.Addr(); !p.IsValid() || !a.Is6() || a.Is4In6() || a.Zone() != "" || !a.IsGlobalUnicast() {
				errs = append(errs, fmt.Errorf("upnp: LAN %q: %v is not a global IPv6 address/prefix", l.Name, p))
			}
		}
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("upnp: no state directory"))
	}
	if c.NAT == nil {
		errs = append(errs, errors.New("upnp: no mapping service"))
	}
	if c.LeaseCap < 0 || c.MaxDelay < 0 || c.NotifyInterval < 0 || c.MaxSubscriptions < 0 {
		errs = append(errs, errors.New("upnp: negative duration or limit"))
	}
	return errors.Join(errs...)
}

// Server is the UPnP IGD service.
type Server struct {
	cfg   Config
	core  *Core
	clock clock.Clock
	log   *slog.Logger
	uuid  uuids
	boot  uint32
	descs map[string][]byte

	mu       sync.Mutex // guards counters
	counters map[string]uint64
	gena     *gena
}

const maxAge = 30 * time.Minute

// New checks cfg and allocates; it opens nothing.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		cfg.Port = 5000
	}
	if cfg.SSDPPort == 0 {
		cfg.SSDPPort = ssdp.Port
	}
	if cfg.NotifyInterval == 0 {
		cfg.NotifyInterval = maxAge / 3
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = time.Second
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = 64
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &Server{cfg: cfg, clock: clock.Or(cfg.Clock), log: cfg.Logger, counters: map[string]uint64{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.core = &Core{NAT: cfg.NAT, Firewall: cfg.Firewall, Now: s.clock.Now, Started: s.clock.Now(), LeaseCap: cfg.LeaseCap, ThirdParty: cfg.ThirdParty, Stats: cfg.Stats}
	s.gena = newGena(s)
	return s, nil
}

// Core is the server's action logic (for tests and benchmarks).
func (s *Server) Core() *Core { return s.core }

// Counters returns the counts of requests, drops and refusals, by reason.
func (s *Server) Counters() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := maps.Clone(s.counters)
	c["subscriptions"] = uint64(s.gena.len())
	return c
}

func (s *Server) count(reason string) {
	s.mu.Lock()
	s.counters[reason]++
	s.mu.Unlock()
}

// loadUUID reads the device UUID from the state directory, making one on
// the first run: a stable UUID across restarts.
func loadUUID(dir string) ([16]byte, error) {
	var u [16]byte
	path := filepath.Join(dir, "upnp-uuid")
	if b, err := os.ReadFile(path); err == nil {
		if n, err := hex.Decode(u[:], []byte(strings.TrimSpace(string(b)))); err == nil && n == 16 {
			return u, nil
		}
	}
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return u, err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return u, err
	}
	fmt.Fprintf(f, "%x\n", u)
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return u, err
	}
	return u, os.Rename(tmp, path)
}

// Run serves until ctx is done, then says ssdp:byebye.
func (s *Server) Run(ctx context.Context) error {
	u, err := loadUUID(s.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("upnp: device uuid: %w", err)
	}
	s.uuid = deviceUUIDs(u)
	s.boot = uint32(s.clock.Now().Unix())
	model := s.cfg.Version
	s.descs = map[string][]byte{
		PathIGD1: rootDesc(1, s.uuid, model), PathIGD2: rootDesc(2, s.uuid, model),
		pathSCPDIP1: scpd(ipConnActions, ipConnVars, 1), pathSCPDIP2: scpd(ipConnActions, ipConnVars, 2),
		pathSCPDCmn: scpd(commonActions, commonVars, 1), pathSCPDFC: scpd(fcActions, fcVars, 1),
	}

	var lns []net.Listener
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
	}
	// IPv6 addresses may still be tentative (duplicate address
	// detection) when the daemon sees them: bind them anyway.
	lc := net.ListenConfig{Control: freeBind}
	for _, l := range s.cfg.LANs {
		addrs := []netip.Addr{l.Prefix.Addr()}
		for _, p := range l.IPv6 {
			addrs = append(addrs, p.Addr())
		}
		for _, a := range addrs {
			ln, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(a, s.cfg.Port).String())
			if err != nil {
				closeAll()
				return fmt.Errorf("upnp: http: %w", err)
			}
			lns = append(lns, ln)
		}
	}
	sds, err := s.openSSDP()
	if err != nil {
		closeAll()
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	errc := make(chan error, len(lns)+len(sds))
	for _, ln := range lns {
		wg.Go(func() {
			limits := httpsrv.Limits{MaxConns: 16, ReadHeaderTimeout: 3 * time.Second, ReadTimeout: 5 * time.Second}
			if err := httpsrv.Serve(ctx, ln, http.HandlerFunc(s.serveHTTP), limits, s.log); err != nil {
				errc <- fmt.Errorf("upnp: http: %w", err)
				cancel()
			}
		})
	}
	for _, sd := range sds {
		wg.Go(func() { sd.sendLoop(ctx) })
		wg.Go(func() {
			if err := sd.readLoop(ctx); err != nil {
				errc <- err
				cancel()
			}
		})
	}
	wg.Go(func() { s.gena.run(ctx) })
	wg.Go(func() { s.feedLoop(ctx) })
	s.log.Info("upnp running", slog.Int("port", int(s.cfg.Port)), slog.String("uuid", s.uuid[0]), slog.Bool("ipv6", len(sds) > 1))
	<-ctx.Done()
	// ssdp:byebye before the sockets close (UDA 2.0 §1.2.3), twice as
	// every SSDP message goes out more than once (§1.2.2).
	for _, sd := range sds {
		sd.bye()
		sd.bye()
		sd.sock.Close()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// feedLoop follows the mapping service's changes: the cached list and
// the evented variables.
func (s *Server) feedLoop(ctx context.Context) {
	if s.cfg.Feed == nil {
		return
	}
	for ctx.Err() == nil {
		events, cancel := s.cfg.Feed()
		s.core.Invalidate()
		s.gena.changed(pathEvtIP)
	read:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case e, ok := <-events:
				if !ok {
					break read
				}
				switch e.Kind {
				case nat44.MappingAdded, nat44.MappingRemoved, nat44.WANChanged, nat44.Overflow, nat44.MappingRenewed:
					s.core.Invalidate()
					if e.Kind != nat44.MappingRenewed {
						s.gena.changed(pathEvtIP)
					}
				}
			}
		}
		cancel()
		t := s.clock.NewTimer(time.Second) // the NAT service is restarting
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// lanOf returns the LAN whose subnet holds a (an IPv6 link-local a
// by its zone).
func (s *Server) lanOf(a netip.Addr) (LAN, bool) {
	for _, l := range s.cfg.LANs {
		if l.onLink(a, false) {
			return l, true
		}
	}
	return LAN{}, false
}

// ourHost reports whether an HTTP Host header names one of our LAN
// addresses: "192.168.1.1:5000", "[2001:db8:1:1::1]:5000", with or
// without the port.
func (s *Server) ourHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return false
	}
	a = a.Unmap()
	return slices.ContainsFunc(s.cfg.LANs, func(l LAN) bool {
		return l.Prefix.Addr() == a || slices.ContainsFunc(l.IPv6, func(p netip.Prefix) bool { return p.Addr() == a })
	})
}

// isMicrosoft is miniupnpd's rule: Windows, Xbox and PlayStation ignore
// IGD:2 devices, and say "Microsoft" or "FDSSDP" in their user agent.
func isMicrosoft(ua string) bool {
	ua = strings.ToLower(ua)
	return strings.Contains(ua, "microsoft") || strings.Contains(ua, "fdssdp")
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if _, ok := s.lanOf(remote.Addr()); err != nil || !ok {
		s.count("http_not_lan")
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	// DNS rebinding: the Host must be one of our LAN addresses.
	if !s.ourHost(r.Host) {
		s.count("http_bad_host")
		http.Error(w, "bad host", http.StatusForbidden)
		return
	}
	client := remote.Addr().Unmap().WithZone("")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		path := r.URL.Path
		if path == PathRootDesc {
			path = PathIGD2
			if isMicrosoft(r.UserAgent()) {
				path = PathIGD1
			}
		}
		b, ok := s.descs[path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		s.count("http_get")
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	case http.MethodPost:
		s.serveSOAP(w, r, client)
	case "SUBSCRIBE", "UNSUBSCRIBE":
		s.gena.serve(w, r, client)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (s *Server) server() string {
	return "Linux UPnP/2.0 gateway/" + s.cfg.Version
}

// ssdpSock is an SSDP socket of one address family, with the interface
// a datagram came in on and goes out of.
type ssdpSock interface {
	read(b []byte) (n, ifi int, from netip.AddrPort, err error)
	write(b []byte, ifi int, to netip.AddrPort) error
	Close() error
}

type sock4 struct{ c *ipv4.PacketConn }

func (s sock4) read(b []byte) (int, int, netip.AddrPort, error) {
	n, cm, from, err := s.c.ReadFrom(b)
	if err != nil {
		return 0, 0, netip.AddrPort{}, err
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok || cm == nil {
		return n, 0, netip.AddrPort{}, nil // interface 0: no LAN's
	}
	ap := ua.AddrPort()
	return n, cm.IfIndex, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (s sock4) write(b []byte, ifi int, to netip.AddrPort) error {
	_, err := s.c.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifi}, net.UDPAddrFromAddrPort(to))
	return err
}

func (s sock4) Close() error { return s.c.Close() }

type sock6 struct{ c *ipv6.PacketConn }

func (s sock6) read(b []byte) (int, int, netip.AddrPort, error) {
	n, cm, from, err := s.c.ReadFrom(b)
	if err != nil {
		return 0, 0, netip.AddrPort{}, err
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok || cm == nil {
		return n, 0, netip.AddrPort{}, nil
	}
	return n, cm.IfIndex, ua.AddrPort(), nil
}

func (s sock6) write(b []byte, ifi int, to netip.AddrPort) error {
	_, err := s.c.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifi}, net.UDPAddrFromAddrPort(to))
	return err
}

func (s sock6) Close() error { return s.c.Close() }

// ssdpConn is one SSDP socket (IPv4 or IPv6) and its send queue.
type ssdpConn struct {
	s      *Server
	sock   ssdpSock
	v6     bool
	groups []netip.AddrPort // where NOTIFYs go
	index  map[int]LAN      // interface index → LAN

	mu      sync.Mutex // guards pending
	pending []pendingReply
	wake    chan struct{}
}

type pendingReply struct {
	at  time.Time
	to  netip.AddrPort
	ifi int
	msg []byte
}

const maxPending = 256

var (
	group4 = netip.AddrPortFrom(netip.MustParseAddr(ssdp.Group), ssdp.Port)
	// UDA 2.0 Annex A.1: link-local and site-local scope on a LAN.
	groups6 = []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr(ssdp.GroupLinkLocal6), ssdp.Port),
		netip.AddrPortFrom(netip.MustParseAddr(ssdp.GroupSiteLocal6), ssdp.Port),
	}
)

// openSSDP opens the IPv4 SSDP socket and, when a LAN has IPv6, the
// IPv6 one.
func (s *Server) openSSDP() ([]*ssdpConn, error) {
	c4, err := s.openSSDP4()
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(s.cfg.LANs, func(l LAN) bool { return len(l.IPv6) > 0 }) {
		return []*ssdpConn{c4}, nil
	}
	c6, err := s.openSSDP6()
	if err != nil {
		c4.sock.Close()
		return nil, err
	}
	return []*ssdpConn{c4, c6}, nil
}

func (s *Server) openSSDP4() (*ssdpConn, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	raw, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", s.cfg.SSDPPort))
	if err != nil {
		return nil, fmt.Errorf("upnp: ssdp: %w", err)
	}
	pc := ipv4.NewPacketConn(raw)
	c := &ssdpConn{s: s, sock: sock4{pc}, groups: []netip.AddrPort{group4}, index: map[int]LAN{}, wake: make(chan struct{}, 1)}
	group := &net.UDPAddr{IP: net.ParseIP(ssdp.Group)}
	for _, l := range s.cfg.LANs {
		ifi, err := net.InterfaceByName(l.Name)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("upnp: ssdp: %w", err)
		}
		if err := pc.JoinGroup(ifi, group); err != nil {
			raw.Close()
			return nil, fmt.Errorf("upnp: ssdp: join %s on %s: %w", ssdp.Group, l.Name, err)
		}
		c.index[ifi.Index] = l
	}
	if err := pc.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		raw.Close()
		return nil, fmt.Errorf("upnp: ssdp: %w", err)
	}
	pc.SetMulticastLoopback(false)
	pc.SetMulticastTTL(2) // UDA 2.0 §1.1.2: TTL 2 by default
	return c, nil
}

func (s *Server) openSSDP6() (*ssdpConn, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	raw, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", s.cfg.SSDPPort))
	if err != nil {
		return nil, fmt.Errorf("upnp: ssdp: %w", err)
	}
	pc := ipv6.NewPacketConn(raw)
	c := &ssdpConn{s: s, sock: sock6{pc}, v6: true, groups: groups6, index: map[int]LAN{}, wake: make(chan struct{}, 1)}
	for _, l := range s.cfg.LANs {
		if len(l.IPv6) == 0 {
			continue
		}
		ifi, err := net.InterfaceByName(l.Name)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("upnp: ssdp: %w", err)
		}
		for _, g := range groups6 {
			if err := pc.JoinGroup(ifi, &net.UDPAddr{IP: g.Addr().AsSlice()}); err != nil {
				raw.Close()
				return nil, fmt.Errorf("upnp: ssdp: join %v on %s: %w", g.Addr(), l.Name, err)
			}
		}
		c.index[ifi.Index] = l
	}
	if err := pc.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true); err != nil {
		raw.Close()
		return nil, fmt.Errorf("upnp: ssdp: %w", err)
	}
	pc.SetMulticastLoopback(false)
	pc.SetMulticastHopLimit(2)
	return c, nil
}

func (c *ssdpConn) readLoop(ctx context.Context) error {
	buf := make([]byte, ssdp.MaxSize+1)
	for {
		n, ifi, src, err := c.sock.read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("upnp: ssdp read: %w", err)
		}
		lan, ok := c.index[ifi]
		if !ok || !lan.onLink(src.Addr(), true) {
			c.s.count("ssdp_drop_not_lan")
			continue
		}
		c.handle(buf[:n], src, lan, ifi)
	}
}

// location is our address on lan in this socket's family.
func (c *ssdpConn) location(lan LAN) netip.Addr {
	if c.v6 {
		return lan.addr6()
	}
	return lan.Prefix.Addr()
}

func (c *ssdpConn) handle(b []byte, from netip.AddrPort, lan LAN, ifi int) {
	m, err := ssdp.Parse(b)
	if err != nil {
		c.s.count("ssdp_drop_malformed")
		return
	}
	if m.Method != "M-SEARCH" {
		return // NOTIFYs of other devices
	}
	q, err := ssdp.SearchOf(m)
	if err != nil {
		c.s.count("ssdp_drop_malformed")
		return
	}
	c.s.count("ssdp_search")
	answers := c.s.answers(q.ST, c.location(lan))
	if len(answers) == 0 {
		return
	}
	delay := time.Duration(0)
	if q.MX > 0 {
		delay = time.Duration(mrand.Int64N(int64(min(q.MX, c.s.cfg.MaxDelay)) + 1))
	}
	now := c.s.clock.Now()
	c.mu.Lock()
	for _, a := range answers {
		if len(c.pending) >= maxPending {
			c.s.count("ssdp_drop_queue_full")
			break
		}
		msg, err := a.Response().Append(nil)
		if err != nil {
			continue
		}
		c.pending = append(c.pending, pendingReply{at: now.Add(delay), to: from, ifi: ifi, msg: msg})
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ssdp:alive schedule (UDA 2.0 §1.2.2): every message goes out more
// than once, as UDP may lose it: the first set aliveFirst times, later
// ones aliveCopies times, aliveSpacing apart; a round every
// NotifyInterval (less a random quarter) from the last copy of the one
// before; the first after a random delay of up to 100 ms ("devices
// should wait a random interval (e.g. between 0 and 100 milliseconds)
// before sending an initial set of advertisements").
const (
	aliveFirst   = 3
	aliveCopies  = 2
	aliveSpacing = time.Second
	aliveJitter0 = 100 * time.Millisecond
)

// aliveWait is the wait after the sent-th set of ssdp:alive (1 for the
// first) before the next; round says it is the wait between rounds,
// which the caller shortens by a random part.
func aliveWait(sent int, interval time.Duration) (wait time.Duration, round bool) {
	if sent < aliveFirst {
		return aliveSpacing, false
	}
	if (sent-aliveFirst)%aliveCopies == 0 {
		return interval, true
	}
	return aliveSpacing, false
}

// sendLoop sends the delayed search answers and the ssdp:alive NOTIFYs.
func (c *ssdpConn) sendLoop(ctx context.Context) {
	nextAlive := c.s.clock.Now().Add(time.Duration(mrand.Int64N(int64(aliveJitter0))))
	sent := 0
	for {
		now := c.s.clock.Now()
		if !now.Before(nextAlive) {
			c.alive()
			sent++
			wait, round := aliveWait(sent, c.s.cfg.NotifyInterval)
			if round {
				wait -= time.Duration(mrand.Int64N(int64(wait/4) + 1))
			}
			nextAlive = now.Add(wait)
		}
		c.mu.Lock()
		next := nextAlive
		keep := c.pending[:0]
		var due []pendingReply
		for _, p := range c.pending {
			if !p.at.After(now) {
				due = append(due, p)
			} else {
				keep = append(keep, p)
				if p.at.Before(next) {
					next = p.at
				}
			}
		}
		c.pending = keep
		c.mu.Unlock()
		for _, p := range due {
			c.sock.write(p.msg, p.ifi, p.to)
		}
		t := c.s.clock.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// multicast sends a NOTIFY of sub for every target to every group on
// every LAN of the socket.
func (c *ssdpConn) multicast(sub string) {
	for ifi, lan := range c.index {
		loc := c.location(lan)
		if !loc.IsValid() {
			continue
		}
		for _, g := range c.groups {
			for _, t := range c.s.targets() {
				a := c.s.announce(t, loc)
				if c.v6 {
					a.Host = "[" + strings.ToUpper(g.Addr().String()) + "]:" + strconv.Itoa(int(g.Port()))
				}
				if msg, err := a.Notify(sub).Append(nil); err == nil {
					c.sock.write(msg, ifi, g)
				}
			}
		}
	}
	c.s.count("ssdp_notify")
}

func (c *ssdpConn) alive() { c.multicast("ssdp:alive") }
func (c *ssdpConn) bye()   { c.multicast("ssdp:byebye") }

// target is one discovery target: its NT/ST, USN and description.
type target struct{ nt, usn, path string }

// targets are what the device announces: IGD:2 and its parts under the
// root description, and the :1 types under the IGD:1 description, so
// that a v1-only control point finds WANIPConnection:1.
func (s *Server) targets() []target {
	u := s.uuid
	t := []target{
		{"upnp:rootdevice", u[0] + "::upnp:rootdevice", PathRootDesc},
		{u[0], u[0], PathRootDesc}, {u[1], u[1], PathRootDesc}, {u[2], u[2], PathRootDesc},
		{TypeIGD2, u[0] + "::" + TypeIGD2, PathIGD2},
		{TypeWANDevice2, u[1] + "::" + TypeWANDevice2, PathIGD2},
		{TypeWANConnDev2, u[2] + "::" + TypeWANConnDev2, PathIGD2},
		{TypeWANCommon1, u[1] + "::" + TypeWANCommon1, PathRootDesc},
		{TypeWANIPConn2, u[2] + "::" + TypeWANIPConn2, PathIGD2},
		{TypeIPv6FC1, u[2] + "::" + TypeIPv6FC1, PathIGD2},
		{TypeIGD1, u[0] + "::" + TypeIGD1, PathIGD1},
		{TypeWANDevice1, u[1] + "::" + TypeWANDevice1, PathIGD1},
		{TypeWANConnDev1, u[2] + "::" + TypeWANConnDev1, PathIGD1},
		{TypeWANIPConn1, u[2] + "::" + TypeWANIPConn1, PathIGD1},
	}
	return t
}

// announce is t with its description on our address loc.
func (s *Server) announce(t target, loc netip.Addr) ssdp.Announce {
	return ssdp.Announce{
		Target: t.nt, USN: t.usn, MaxAge: maxAge, Server: s.server(), BootID: s.boot, ConfigID: 1,
		Location: fmt.Sprintf("http://%s%s", netip.AddrPortFrom(loc, s.cfg.Port), t.path),
	}
}

// answers are the search answers for st, with descriptions on our
// address loc; none when loc is invalid (a LAN without IPv6 asked over
// IPv6).
func (s *Server) answers(st string, loc netip.Addr) []ssdp.Announce {
	if !loc.IsValid() {
		return nil
	}
	var out []ssdp.Announce
	for _, t := range s.targets() {
		if st == "ssdp:all" || st == t.nt {
			out = append(out, s.announce(t, loc))
		}
	}
	return out
}
