package dhcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"gateway/dhcp/dhcp4"

	"gateway/internal/clock"
	"gateway/internal/journal"
)

// The BOOTP ports (RFC 2131 4.1).
const (
	serverPort = 67
	clientPort = 68
)

// Config configures the DHCP server. Zero values are documented per field
// here and in CoreConfig.
type Config struct {
	CoreConfig
	Interface string // the LAN interface to serve; required. Never the WAN.
	// StateDir keeps leases and run-time reservations; "" keeps them in
	// memory only.
	StateDir string
	// LeaseHeadroom is how much later than granted a lease's expiry is
	// written to the journal, so that renewals inside it need no write
	// (see store.go); after a crash a lease may live this much longer.
	// Zero = 3/4 of the lease time granted (9h for 12h leases: a renewal
	// at T1 is covered even when it comes late); negative = none, every
	// renewal is written before its ACK.
	LeaseHeadroom time.Duration
	// NoConflictDetection turns off the ARP probe before an address is
	// offered for the first time (or to a new client).
	NoConflictDetection bool
	ProbeTimeout        time.Duration // zero = 500 ms
	Clock               clock.Clock   // nil = real
	Logger              *slog.Logger  // nil = discard
}

// Validate returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Interface == "" {
		errs = append(errs, errors.New("dhcp: no interface"))
	}
	if err := c.CoreConfig.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.LeaseHeadroom > maxLeaseTime {
		errs = append(errs, fmt.Errorf("dhcp: lease headroom %v is over %v", c.LeaseHeadroom, maxLeaseTime))
	}
	if c.ProbeTimeout < 0 || c.ProbeTimeout > 5*time.Second {
		errs = append(errs, fmt.Errorf("dhcp: probe timeout %v out of 0-5s", c.ProbeTimeout))
	}
	return errors.Join(errs...)
}

// Server is the DHCPv4 server of one LAN interface.
type Server struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock

	resPath string           // run-time reservations
	journal *journal.Journal // the leases; nil without StateDir

	mu       sync.Mutex // guards core, store's fields, runtime, counters
	core     *Core
	store    *leaseStore   // nil without StateDir
	runtime  []Reservation // added through the API, persisted in resPath
	counters map[string]uint64

	probes chan probeResult
	wake   chan struct{}
}

type probeResult struct {
	req   *dhcp4.Message
	addr  netip.Addr
	inUse bool
}

// New validates cfg and loads the leases and reservations; it opens no
// socket until Run.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = 500 * time.Millisecond
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		clock:    clock.Or(cfg.Clock),
		counters: make(map[string]uint64),
		probes:   make(chan probeResult, 256),
		wake:     make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var leases []Lease
	if cfg.StateDir != "" {
		s.resPath = filepath.Join(cfg.StateDir, "reservations.json")
		if b, err := os.ReadFile(s.resPath); err == nil {
			if err := json.Unmarshal(b, &s.runtime); err != nil {
				return nil, fmt.Errorf("dhcp: %s: %w", s.resPath, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("dhcp: %w", err)
		}
		byAddr := map[netip.Addr]Lease{}
		j, err := journal.Open(filepath.Join(cfg.StateDir, "leases.jsonl"), func(b []byte) error {
			var r storeRecord
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			switch {
			case r.Lease != nil:
				byAddr[r.Lease.Addr] = *r.Lease
			case r.Release != nil:
				delete(byAddr, *r.Release)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dhcp: load leases: %w", err)
		}
		s.journal = j
		for _, l := range byAddr {
			leases = append(leases, l)
		}
		slices.SortFunc(leases, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	}
	core, err := NewCore(cfg.CoreConfig)
	if err != nil {
		return nil, err
	}
	for _, r := range s.runtime {
		if err := core.AddReservation(r); err != nil {
			s.log.Warn("run-time reservation dropped: it conflicts with the config", slog.String("mac", r.MAC.String()), slog.Any("err", err))
		}
	}
	for _, l := range core.Restore(leases, s.clock.Now()) {
		s.log.Warn("stored lease dropped: it no longer fits the config", slog.String("addr", l.Addr.String()), slog.String("mac", l.MAC))
	}
	s.core = core
	if s.journal != nil {
		s.store = newLeaseStore(&s.mu, s.journal, cfg.LeaseHeadroom, core.Leases(), s.liveRecords)
		if len(leases) > 0 {
			s.log.Info("leases restored", slog.Int("count", len(core.Leases())))
		}
	}
	return s, nil
}

// liveRecords is the batcher's compaction callback.
func (s *Server) liveRecords() []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.liveRecordsLocked(s.core.Leases())
}

// StoreStats counts the lease journal's fsyncs and bytes written since
// New: the flash wear of the leases. It is zero without a StateDir.
func (s *Server) StoreStats() journal.Stats {
	if s.store == nil {
		return journal.Stats{}
	}
	return s.store.b.Stats()
}

// Run serves until ctx is done, then writes what is pending and returns
// after every goroutine it started has ended.
func (s *Server) Run(ctx context.Context) error {
	iface, err := net.InterfaceByName(s.cfg.Interface)
	if err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	conn, err := listenUDP(s.cfg.Interface)
	if err != nil {
		return err
	}
	link, err := newLinkSender(iface, s.cfg.ServerAddr.Addr())
	if err != nil {
		conn.Close()
		return err
	}
	defer link.close()
	var prober *arpProber
	if !s.cfg.NoConflictDetection {
		if prober, err = newARPProber(iface, s.cfg.ProbeTimeout, s.clock); err != nil {
			conn.Close()
			return err
		}
		defer prober.close()
	}
	out := &sender{conn: conn, link: link}
	reply := func(act Action) {
		if err := out.send(act); err != nil {
			s.count("send-failed")
			s.log.Debug("reply not sent", slog.Any("err", err))
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if s.store != nil {
		wg.Go(func() { s.store.b.Run(ctx) })
	}
	if prober != nil {
		wg.Go(func() {
			if err := prober.run(ctx); err != nil {
				errc <- err
			}
		})
	}
	// One goroutine handles the results of probes, in order.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-s.probes:
				s.mu.Lock()
				s.core.ProbeDone(r.addr, r.inUse, s.clock.Now())
				s.mu.Unlock()
				if r.inUse {
					s.count("conflict-detected")
					s.log.Warn("address in use by a host the server does not know; skipped", slog.String("addr", r.addr.String()))
				}
				s.handle(r.req, prober, reply)
			}
		}
	})
	wg.Go(func() {
		if err := s.expireLoop(ctx); err != nil {
			errc <- err
		}
	})
	s.log.Info("dhcp server running", slog.String("interface", s.cfg.Interface), slog.String("addr", s.cfg.ServerAddr.String()))

	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	buf := make([]byte, 1500)
	var runErr error
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() == nil {
				runErr = fmt.Errorf("dhcp: read: %w", err)
			}
			break
		}
		req, err := dhcp4.ParseMessage(buf[:n])
		if err != nil {
			s.count("malformed")
			s.log.Debug("malformed packet dropped", slog.String("from", from.String()), slog.Any("err", err))
			continue
		}
		s.handle(&req, prober, reply)
	}
	cancel()
	wg.Wait()
	if s.store != nil {
		// A clean shutdown: the batcher has written all it had; leave
		// the true expiries on disk.
		s.mu.Lock()
		err := s.store.closeExactLocked(s.core.Leases())
		s.mu.Unlock()
		if err != nil {
			s.log.Warn("exact lease expiries not written; the journal keeps its headroom", slog.Any("err", err))
		}
	}
	select {
	case err := <-errc:
		if runErr == nil {
			runErr = err
		}
	default:
	}
	return runErr
}

// handle runs one request through the core and carries out its answer:
// probe first; persist what the answer changes; reply at once, or once
// the lease it promises is on disk.
func (s *Server) handle(req *dhcp4.Message, prober *arpProber, reply func(Action)) {
	for {
		s.mu.Lock()
		now := s.clock.Now()
		act := s.core.Handle(req, now)
		wait := s.persistLocked(act, now, reply)
		s.mu.Unlock()
		switch {
		case act.Probe.IsValid() && prober != nil:
			addr := act.Probe
			prober.Probe(addr, func(inUse bool) {
				select {
				case s.probes <- probeResult{req, addr, inUse}:
				default:
					s.count("probe-queue-full") // the client retries
				}
			})
			return
		case act.Probe.IsValid():
			s.mu.Lock()
			s.core.ProbeDone(act.Probe, false, s.clock.Now())
			s.mu.Unlock()
			continue // conflict detection is off: offer at once
		}
		if act.Reply != nil && !wait {
			reply(act)
		} // a Drop is counted by the core, in Stats().Drops
		if act.Commit != nil {
			s.signal()
		}
		return
	}
}

// persistLocked hands the store what act changes. It reports whether the
// reply must wait: then the store sends it once the lease is on disk.
func (s *Server) persistLocked(act Action, now time.Time, reply func(Action)) (wait bool) {
	if s.store == nil {
		return false
	}
	// A lease taken back (released, declined, or moved by a reservation)
	// leaves the store whatever else the answer is.
	if act.Released != nil {
		s.store.releaseLocked(act.Released.Addr)
	}
	if act.Commit == nil {
		return false
	}
	return s.store.commitLocked(*act.Commit, now, func(err error) {
		if err != nil {
			s.count("store-failed")
			s.log.Error("lease not stored; no ACK sent", slog.Any("err", err))
			return
		}
		reply(act)
	})
}

func (s *Server) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Server) count(reason string) {
	s.mu.Lock()
	s.counters[reason]++
	s.mu.Unlock()
}

// expireLoop removes leases when they expire.
func (s *Server) expireLoop(ctx context.Context) error {
	t := s.clock.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		for _, l := range s.core.Expire(s.clock.Now()) {
			s.log.Info("lease expired", slog.String("addr", l.Addr.String()), slog.String("mac", l.MAC))
		}
		next, ok := s.core.NextExpiry()
		s.mu.Unlock()
		d := time.Hour
		if ok {
			d = max(next.Sub(s.clock.Now()), 0)
		}
		t.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
	}
}

// Leases lists the bound leases.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.core.Leases()
}

// Reservations lists the run-time reservations (those of the config are in
// the config).
func (s *Server) Reservations() []Reservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runtime)
}

// AddReservation pins an address to a MAC at run time, persistently.
func (s *Server) AddReservation(r Reservation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.core.AddReservation(r); err != nil {
		return err
	}
	s.runtime = append(s.runtime, r)
	if err := s.saveReservationsLocked(); err != nil {
		s.runtime = s.runtime[:len(s.runtime)-1]
		s.core.RemoveReservation(r.MAC)
		return err
	}
	return nil
}

// RemoveReservation removes a run-time reservation.
func (s *Server) RemoveReservation(mac net.HardwareAddr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.runtime, func(r Reservation) bool { return r.MAC.String() == mac.String() })
	if i < 0 {
		return fmt.Errorf("dhcp: no run-time reservation for %v", mac)
	}
	if err := s.core.RemoveReservation(mac); err != nil {
		return err
	}
	r := s.runtime[i]
	s.runtime = slices.Delete(s.runtime, i, i+1)
	if err := s.saveReservationsLocked(); err != nil {
		s.runtime = slices.Insert(s.runtime, i, r)
		s.core.AddReservation(r)
		return err
	}
	return nil
}

func (s *Server) saveReservationsLocked() error {
	if s.resPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.runtime, "", "  ")
	if err != nil {
		return err
	}
	return journal.WriteFile(s.resPath, b)
}

// Counters returns the server's drop and failure counts by reason, with
// the core's.
func (s *Server) Counters() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64)
	for k, v := range s.counters {
		out[k] = v
	}
	for k, v := range s.core.Stats().Drops {
		out[k] += v
	}
	return out
}

// Stats reports the pool's use.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.core.Stats()
}
