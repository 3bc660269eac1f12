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

	"gateway/internal/clock"
	"gateway/internal/httpsrv"
	"gateway/nat44"
	"gateway/upnp/ssdp"
)

// LAN is one LAN interface the service runs on.
type LAN struct {
	Name   string       // interface name
	Prefix netip.Prefix // its IPv4 address and subnet; requests must come from the subnet
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
	// NotifyInterval is how often ssdp:alive goes out; zero is 15 min
	// (half the 30 min max-age: UDA 2.0 §1.2.2 "should be sent ... more
	// than once per max-age").
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
		cfg.NotifyInterval = maxAge / 2
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
	for _, l := range s.cfg.LANs {
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(l.Prefix.Addr(), s.cfg.Port).String())
		if err != nil {
			closeAll()
			return fmt.Errorf("upnp: http: %w", err)
		}
		lns = append(lns, ln)
	}
	sd, err := s.openSSDP()
	if err != nil {
		closeAll()
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { sd.bye(); sd.conn.Close() })
	defer stop()

	errc := make(chan error, len(lns)+1)
	for _, ln := range lns {
		wg.Go(func() {
			limits := httpsrv.Limits{MaxConns: 16, ReadHeaderTimeout: 3 * time.Second, ReadTimeout: 5 * time.Second}
			if err := httpsrv.Serve(ctx, ln, http.HandlerFunc(s.serveHTTP), limits, s.log); err != nil {
				errc <- fmt.Errorf("upnp: http: %w", err)
				cancel()
			}
		})
	}
	wg.Go(func() { sd.sendLoop(ctx) })
	wg.Go(func() { s.gena.run(ctx) })
	wg.Go(func() { s.feedLoop(ctx) })
	wg.Go(func() {
		if err := sd.readLoop(ctx); err != nil {
			errc <- err
			cancel()
		}
	})
	s.log.Info("upnp running", slog.Int("port", int(s.cfg.Port)), slog.String("uuid", s.uuid[0]))
	<-ctx.Done()
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

// lanOf returns the LAN whose subnet holds a.
func (s *Server) lanOf(a netip.Addr) (LAN, bool) {
	a = a.Unmap()
	for _, l := range s.cfg.LANs {
		if l.Prefix.Masked().Contains(a) {
			return l, true
		}
	}
	return LAN{}, false
}

// isMicrosoft is miniupnpd's rule: Windows, Xbox and PlayStation ignore
// IGD:2 devices, and say "Microsoft" or "FDSSDP" in their user agent.
func isMicrosoft(ua string) bool {
	ua = strings.ToLower(ua)
	return strings.Contains(ua, "microsoft") || strings.Contains(ua, "fdssdp")
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	lan, ok := s.lanOf(remote.Addr())
	if err != nil || !ok {
		s.count("http_not_lan")
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	// DNS rebinding: the Host must be one of our LAN addresses.
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !slices.ContainsFunc(s.cfg.LANs, func(l LAN) bool { return l.Prefix.Addr().String() == host }) {
		s.count("http_bad_host")
		http.Error(w, "bad host", http.StatusForbidden)
		return
	}
	_ = lan
	client := remote.Addr().Unmap()
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

// ssdpConn is the SSDP socket and its send queue.
type ssdpConn struct {
	s     *Server
	conn  *ipv4.PacketConn
	raw   net.PacketConn
	index map[int]LAN // interface index → LAN

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

func (s *Server) openSSDP() (*ssdpConn, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	raw, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", s.cfg.SSDPPort))
	if err != nil {
		return nil, fmt.Errorf("upnp: ssdp: %w", err)
	}
	c := &ssdpConn{s: s, raw: raw, conn: ipv4.NewPacketConn(raw), index: map[int]LAN{}, wake: make(chan struct{}, 1)}
	group := &net.UDPAddr{IP: net.ParseIP(ssdp.Group)}
	for _, l := range s.cfg.LANs {
		ifi, err := net.InterfaceByName(l.Name)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("upnp: ssdp: %w", err)
		}
		if err := c.conn.JoinGroup(ifi, group); err != nil {
			raw.Close()
			return nil, fmt.Errorf("upnp: ssdp: join %s on %s: %w", ssdp.Group, l.Name, err)
		}
		c.index[ifi.Index] = l
	}
	if err := c.conn.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		raw.Close()
		return nil, fmt.Errorf("upnp: ssdp: %w", err)
	}
	c.conn.SetMulticastLoopback(false)
	c.conn.SetMulticastTTL(2) // UDA 2.0 §1.1.2: TTL 2 by default
	return c, nil
}

func (c *ssdpConn) readLoop(ctx context.Context) error {
	buf := make([]byte, ssdp.MaxSize+1)
	for {
		n, cm, from, err := c.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("upnp: ssdp read: %w", err)
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || cm == nil {
			continue
		}
		src := ua.AddrPort()
		lan, ok := c.index[cm.IfIndex]
		if !ok || !lan.Prefix.Masked().Contains(src.Addr().Unmap()) {
			c.s.count("ssdp_drop_not_lan")
			continue
		}
		c.handle(buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), lan, cm.IfIndex)
	}
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
	answers := c.s.answers(q.ST, lan)
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

// sendLoop sends the delayed search answers and the ssdp:alive NOTIFYs.
func (c *ssdpConn) sendLoop(ctx context.Context) {
	nextAlive := c.s.clock.Now()
	for {
		now := c.s.clock.Now()
		if !now.Before(nextAlive) {
			c.alive()
			nextAlive = now.Add(c.s.cfg.NotifyInterval)
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
			c.conn.WriteTo(p.msg, &ipv4.ControlMessage{IfIndex: p.ifi}, net.UDPAddrFromAddrPort(p.to))
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

func (c *ssdpConn) multicast(sub string) {
	group := &net.UDPAddr{IP: net.ParseIP(ssdp.Group), Port: ssdp.Port}
	for ifi, lan := range c.index {
		for _, a := range c.s.notifyTargets(lan) {
			if msg, err := a.Notify(sub).Append(nil); err == nil {
				c.conn.WriteTo(msg, &ipv4.ControlMessage{IfIndex: ifi}, group)
			}
		}
	}
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

func (s *Server) announce(t target, lan LAN) ssdp.Announce {
	return ssdp.Announce{
		Target: t.nt, USN: t.usn, MaxAge: maxAge, Server: s.server(), BootID: s.boot, ConfigID: 1,
		Location: fmt.Sprintf("http://%s%s", netip.AddrPortFrom(lan.Prefix.Addr(), s.cfg.Port), t.path),
	}
}

// answers are the search answers for st on lan.
func (s *Server) answers(st string, lan LAN) []ssdp.Announce {
	var out []ssdp.Announce
	for _, t := range s.targets() {
		if st == "ssdp:all" || st == t.nt {
			out = append(out, s.announce(t, lan))
		}
	}
	return out
}

func (s *Server) notifyTargets(lan LAN) []ssdp.Announce {
	var out []ssdp.Announce
	for _, t := range s.targets() {
		out = append(out, s.announce(t, lan))
	}
	return out
}
