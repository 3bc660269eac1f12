// Package ra sends IPv6 Router Advertisements on the LAN (RFC 4861 6.2):
// prefixes for SLAAC (RFC 4862) with the lifetime caps of RFC 9096, RDNSS
// and DNSSL (RFC 8106), MTU, routes (RFC 4191), unsolicited RAs on the
// RFC's timers and rate-limited answers to Router Solicitations, and
// renumbering: a prefix that leaves is advertised deprecated until hosts'
// addresses in it expire (RFC 7084 L-13), remembered across restarts in
// the state directory.
package ra

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gateway/internal/clock"
	"gateway/ra/ndpwire"
)

// Timers of RFC 4861 section 10 (router constants) and 6.2.1 defaults.
const (
	DefaultMaxInterval = 600 * time.Second // MaxRtrAdvInterval
	// MaxInitialInterval bounds the first MaxInitialAdverts RAs' spacing
	// (MAX_INITIAL_RTR_ADVERT_INTERVAL): fast RAs after a start or a change.
	MaxInitialInterval = 16 * time.Second
	MaxInitialAdverts  = 3                      // MAX_INITIAL_RTR_ADVERTISEMENTS
	MinDelayBetweenRAs = 3 * time.Second        // MIN_DELAY_BETWEEN_RAS, for multicast RAs
	MaxRADelay         = 500 * time.Millisecond // MAX_RA_DELAY_TIME, for multicast answers
)

// stateFile is where the advertised prefixes are remembered in StateDir.
const stateFile = "ra-prefixes.json"

// Config configures a Service.
type Config struct {
	// Iface is the LAN interface (a bridge in the lab). Required.
	Iface string
	// StateDir is where the advertised prefixes are remembered (RFC 9096)
	// and the ULA is kept. Required.
	StateDir string
	// RDNSS are recursive DNS servers (RFC 8106); none: no option.
	RDNSS []netip.Addr
	// DNSSL are DNS search domains (RFC 8106); none: no option.
	DNSSL []string
	// MTU is the link MTU advertised; 0: no MTU option.
	MTU int
	// Routes are advertised in Route Information options (RFC 4191),
	// for example a ULA /48 when there is no default route; none: no option.
	Routes []netip.Prefix
	// MinInterval and MaxInterval bound the spacing of unsolicited RAs
	// (RFC 4861 MinRtrAdvInterval, MaxRtrAdvInterval). Zero: 600 s for
	// MaxInterval and a third of it for MinInterval.
	MinInterval, MaxInterval time.Duration
	// Logger logs; nil: discard.
	Logger *slog.Logger
	// Clock tells the time; nil: the real clock.
	Clock clock.Clock
}

// Validate returns every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Iface == "" {
		errs = append(errs, errors.New("ra: no interface"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("ra: no state directory"))
	}
	for _, a := range c.RDNSS {
		if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
			errs = append(errs, fmt.Errorf("ra: RDNSS %v is not an IPv6 unicast address", a))
		}
	}
	for _, d := range c.DNSSL {
		if err := ndpwire.CheckDomain(d); err != nil {
			errs = append(errs, fmt.Errorf("ra: DNSSL: %w", err))
		}
	}
	if c.MTU != 0 && (c.MTU < 1280 || c.MTU > 65535) {
		errs = append(errs, fmt.Errorf("ra: MTU %d not in 1280-65535", c.MTU))
	}
	for _, r := range c.Routes {
		if !r.IsValid() || !r.Addr().Is6() || r.Addr().Is4In6() {
			errs = append(errs, fmt.Errorf("ra: route %v is not an IPv6 prefix", r))
		}
	}
	minI, maxI := c.intervals()
	if maxI < 4*time.Second || maxI > 1800*time.Second {
		errs = append(errs, fmt.Errorf("ra: MaxInterval %v not in 4s-1800s (RFC 4861 6.2.1)", maxI))
	}
	if minI < 3*time.Second || minI > maxI*3/4 {
		errs = append(errs, fmt.Errorf("ra: MinInterval %v not in 3s-%v (RFC 4861 6.2.1)", minI, maxI*3/4))
	}
	return errors.Join(errs...)
}

func (c Config) intervals() (minI, maxI time.Duration) {
	minI, maxI = c.MinInterval, c.MaxInterval
	if maxI == 0 {
		maxI = DefaultMaxInterval
	}
	if minI == 0 {
		minI = maxI / 3
	}
	return minI, maxI
}

// Prefix is a prefix to advertise for SLAAC.
type Prefix struct {
	Prefix netip.Prefix // a /64
	// Valid and Preferred are the uplink's deadlines for the prefix (a
	// delegated prefix's lifetimes); the RA never promises more. Zero:
	// none, our defaults (the RFC 9096 caps) apply.
	Valid, Preferred time.Time
}

// Advert is what the Service advertises.
type Advert struct {
	Prefixes []Prefix
	// Default offers a default route (Router Lifetime > 0); false when
	// there is no IPv6 uplink.
	Default bool
	// MTU is what the uplink allows (1480 over 6to4); 0: none. The RA
	// carries the lower of it and Config.MTU.
	MTU int
}

// Stats counts what a Service did.
type Stats struct {
	RAsSent     uint64 // RAs written, unicast and multicast
	RSAnswered  uint64 // solicitations answered (unicast, or by a multicast RA)
	RSDropped   uint64 // solicitations not answered: per-source rate limit
	RSMalformed uint64 // solicitations that failed the RFC 4861 6.1.1 checks
	SendErrors  uint64 // RAs the socket refused
	StateErrors uint64 // failed writes of the state file
}

// Service advertises on one interface. Make it with New, feed it with Set
// and run it with Run.
type Service struct {
	cfg       Config
	clk       clock.Clock
	log       *slog.Logger
	params    raParams // MAC filled in by Run
	statePath string
	listen    func() (conn, error)
	minI      time.Duration
	maxI      time.Duration

	wake chan struct{} // Set or an RS wants the run loop's attention

	persistMu sync.Mutex // serialises writes of the state file

	mu sync.Mutex // guards the fields below
	// table holds the advertised prefixes; def the Advert's Default.
	table table
	def   bool
	// dirty: table changed since the state file was written.
	// changed: the Advert changed since the run loop last looked.
	dirty, changed bool
	// lastMulticast is when the last multicast RA went; pending, when
	// one is due for a solicitation (zero: none).
	lastMulticast, pending time.Time
	limit                  limiter
	debugAt                time.Time // last rate-limited Debug line

	raSent, rsAnswered, rsDropped, rsMalformed, sendErrs, stateErrs atomic.Uint64
}

// New checks cfg and reads the prefixes remembered in cfg.StateDir: those
// are advertised deprecated until Set names them again. Call Set with the
// current Advert before Run, so that the first RA carries it.
func New(cfg Config) (*Service, error) {
	return newService(cfg, func() (conn, error) { return listen(cfg.Iface) })
}

func newService(cfg Config, listen func() (conn, error)) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:       cfg,
		clk:       clock.Or(cfg.Clock),
		log:       cfg.Logger,
		statePath: filepath.Join(cfg.StateDir, stateFile),
		listen:    listen,
		wake:      make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.minI, s.maxI = cfg.intervals()
	s.params = raParams{
		MTU:      cfg.MTU,
		RDNSS:    cfg.RDNSS,
		DNSSL:    cfg.DNSSL,
		Routes:   cfg.Routes,
		Lifetime: 3 * s.maxI,
	}
	saved, err := loadState(s.statePath)
	if err != nil {
		return nil, err
	}
	s.table.restore(saved, s.clk.Now())
	s.limit = newLimiter()
	return s, nil
}

// Set makes a the Advert. It is safe from any goroutine. A prefix that
// comes or goes, a deadline moved earlier or a new Default is written to
// the state directory and advertised at once (as soon as the multicast
// rate limit allows), followed by the fast initial RAs; a deadline moved
// later (an uplink renewal) is written and goes out with the next RA; a
// move of less than a minute is only advertised. A
// prefix that is not a /64 IPv6 prefix cannot be used by SLAAC and is
// left out, with a warning.
func (s *Service) Set(a Advert) {
	var prefixes []Prefix
	for _, p := range a.Prefixes {
		if !p.Prefix.IsValid() || !p.Prefix.Addr().Is6() || p.Prefix.Addr().Is4In6() || p.Prefix.Bits() != 64 {
			s.log.Warn("ra: prefix not usable for SLAAC, left out", slog.String("prefix", p.Prefix.String()))
			continue
		}
		p.Prefix = p.Prefix.Masked()
		prefixes = append(prefixes, p)
	}
	// The change is durable before any RA carries it: after a kill -9
	// a prefix we advertised must be remembered, to be deprecated when
	// the next one comes.
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	now := s.clk.Now()
	s.mu.Lock()
	t := table{entries: slices.Clone(s.table.entries)}
	c := t.set(prefixes, now)
	s.mu.Unlock()
	var err error
	if c >= later {
		if err = saveState(s.statePath, t.entries); err != nil {
			s.stateErrs.Add(1)
			s.log.Error("ra: cannot remember the advertised prefixes; after a restart, old ones may not be deprecated", slog.Any("err", err))
		}
	}
	s.mu.Lock()
	if c != unchanged {
		s.table = t
		s.dirty = err != nil // the run loop tries again
	}
	announce := c == material || a.Default != s.def
	s.def = a.Default
	mtu := s.cfg.MTU
	if a.MTU >= 1280 && (mtu == 0 || a.MTU < mtu) {
		mtu = a.MTU
	}
	if mtu != s.params.MTU {
		s.params.MTU = mtu
		announce = true
	}
	if announce {
		s.changed = true
	}
	var active, deprecated []string
	for _, e := range s.table.entries {
		if e.active() {
			active = append(active, e.Prefix.String())
		} else {
			deprecated = append(deprecated, e.Prefix.String())
		}
	}
	s.mu.Unlock()
	if announce {
		s.log.Info("ra: advertising", slog.Any("prefixes", active), slog.Any("deprecated", deprecated), slog.Bool("default", a.Default))
		s.poke()
	}
}

// Stats returns the counts so far.
func (s *Service) Stats() Stats {
	return Stats{
		RAsSent:     s.raSent.Load(),
		RSAnswered:  s.rsAnswered.Load(),
		RSDropped:   s.rsDropped.Load(),
		RSMalformed: s.rsMalformed.Load(),
		SendErrors:  s.sendErrs.Load(),
		StateErrors: s.stateErrs.Load(),
	}
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
