package ra

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gateway/ra/ndpwire"
)

// listenRetry is how long Run waits first between attempts to open the socket
// while the interface has no usable link-local address yet (the lab's
// bridge may come up just after the daemon, and the address is tentative
// during DAD).
const (
	listenRetry    = 250 * time.Millisecond // doubled on each try
	maxListenRetry = 2 * time.Second
)

// Run opens the socket on the interface (waiting until it has a
// link-local address), sends the initial RAs and then unsolicited ones
// every MinInterval-MaxInterval, answers solicitations, and advertises
// every Set at once. When ctx is done it sends a final RA (Router
// Lifetime 0, every prefix deprecated, RFC 4861 6.2.5) and returns nil.
// It returns an error only when the socket fails.
func (s *Service) Run(ctx context.Context) error {
	c, err := s.open(ctx)
	if c == nil {
		return err
	}
	s.mu.Lock()
	s.params.MAC = c.HardwareAddr()
	s.mu.Unlock()

	var closing atomic.Bool
	var wg sync.WaitGroup
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr <- s.readLoop(c, &closing)
	}()
	defer func() {
		closing.Store(true)
		c.Close()
		wg.Wait()
	}()

	initialLeft := MaxInitialAdverts
	next := s.clk.Now() // the first RA goes at once
	timer := s.clk.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.send(c, allNodes, true) // an error here changes nothing
			return nil
		case err := <-readErr:
			return fmt.Errorf("ra: read: %w", err)
		case <-s.wake:
		case <-timer.C:
		}
		now := s.clk.Now()
		s.mu.Lock()
		if s.changed {
			// RFC 4861 6.2.4: after a change, up to
			// MAX_INITIAL_RTR_ADVERTISEMENTS fast RAs, so that a
			// lost one does not leave hosts on the old prefix.
			s.changed = false
			initialLeft, next = MaxInitialAdverts, now
		}
		if s.table.expire(now) {
			s.dirty = true
		}
		dirty := s.dirty
		due := s.dueLocked(next)
		s.mu.Unlock()
		if dirty {
			s.persist()
		}
		if !due.After(now) {
			if err := s.send(c, allNodes, false); gone(err) {
				// The interface was deleted (a bridge re-made):
				// the socket is dead; the supervisor's next Run
				// opens a new one.
				return fmt.Errorf("ra: %s: %w", s.cfg.Iface, err)
			}
			s.mu.Lock()
			s.lastMulticast, s.pending = now, time.Time{}
			s.mu.Unlock()
			iv := s.minI + rand.N(s.maxI-s.minI+1)
			if initialLeft > 0 {
				if initialLeft--; initialLeft > 0 {
					iv = min(iv, MaxInitialInterval)
				}
			}
			next = now.Add(iv)
		}
		s.mu.Lock()
		wakeAt := s.dueLocked(next)
		if exp := s.table.nextExpiry(); !exp.IsZero() && exp.Before(wakeAt) {
			wakeAt = exp
		}
		s.mu.Unlock()
		timer.Reset(max(wakeAt.Sub(now), 0))
	}
}

// dueLocked is when the next multicast RA goes: the unsolicited timer
// next, or a pending answer to a solicitation if earlier, but never
// within MIN_DELAY_BETWEEN_RAS of the last multicast RA (RFC 4861 6.2.6).
func (s *Service) dueLocked(next time.Time) time.Time {
	due := next
	if !s.pending.IsZero() && s.pending.Before(due) {
		due = s.pending
	}
	if !s.lastMulticast.IsZero() {
		if earliest := s.lastMulticast.Add(MinDelayBetweenRAs); due.Before(earliest) {
			due = earliest
		}
	}
	return due
}

// open returns the socket, retrying while the interface is not ready; nil
// and nil when ctx ends first.
func (s *Service) open(ctx context.Context) (conn, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.listen()
		if err == nil {
			if attempt > 0 {
				s.log.Info("ra: interface ready", slog.String("iface", s.cfg.Iface))
			}
			return c, nil
		}
		switch attempt {
		case 0:
			s.log.Info("ra: waiting for the interface's link-local address", slog.String("iface", s.cfg.Iface), slog.Any("err", err))
		case 60:
			s.log.Warn("ra: interface still not ready after a minute", slog.String("iface", s.cfg.Iface), slog.Any("err", err))
		}
		t := s.clk.NewTimer(min(listenRetry<<min(attempt, 3), maxListenRetry))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
	}
}

// readLoop answers solicitations until the socket fails; it returns nil
// once Run is closing it.
func (s *Service) readLoop(c conn, closing *atomic.Bool) error {
	buf := make([]byte, 2048)
	for {
		n, hop, src, err := c.ReadRS(buf)
		if err != nil {
			if closing.Load() {
				return nil
			}
			return err
		}
		s.handleRS(c, buf[:n], src, hop)
	}
}

// handleRS answers one solicitation: by unicast at once when it has a
// source address and the limiter allows (this is the latency hosts wait
// on), else by the next multicast RA after a random delay of up to
// MAX_RA_DELAY_TIME (RFC 4861 6.2.6).
func (s *Service) handleRS(c conn, b []byte, src netip.Addr, hop int) {
	rs, err := parseRS(b, src, hop)
	now := s.clk.Now()
	if err != nil {
		s.rsMalformed.Add(1)
		s.mu.Lock()
		s.debugLocked(now, "ra: solicitation dropped", slog.String("src", src.String()), slog.Any("err", err))
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	switch s.limit.decide(rs.Source, now) {
	case answerUnicast:
		m := buildRA(s.params, s.table.entries, s.def, false, now)
		s.mu.Unlock()
		s.rsAnswered.Add(1)
		s.write(c, m, rs.Source)
	case answerMulticast:
		at := now.Add(rand.N(MaxRADelay))
		if s.pending.IsZero() || at.Before(s.pending) {
			s.pending = at
		}
		s.mu.Unlock()
		s.rsAnswered.Add(1)
		s.poke()
	case dropRS:
		s.debugLocked(now, "ra: solicitation rate-limited", slog.String("src", rs.Source.String()))
		s.mu.Unlock()
		s.rsDropped.Add(1)
	}
}

// send writes the current RA (final: the shutdown one) to dst.
func (s *Service) send(c conn, dst netip.Addr, final bool) error {
	now := s.clk.Now()
	s.mu.Lock()
	m := buildRA(s.params, s.table.entries, s.def, final, now)
	s.mu.Unlock()
	return s.write(c, m, dst)
}

// write sends m and counts it; a failure is counted and returned.
func (s *Service) write(c conn, m ndpwire.RouterAdvertisement, dst netip.Addr) error {
	b, err := m.Append(nil)
	if err == nil {
		err = c.WriteRA(b, dst)
	}
	if err != nil {
		s.sendErrs.Add(1)
		s.mu.Lock()
		s.debugLocked(s.clk.Now(), "ra: send failed", slog.String("dst", dst.String()), slog.Any("err", err))
		s.mu.Unlock()
		return err
	}
	s.raSent.Add(1)
	return nil
}

// persist writes the table to the state file if it changed.
func (s *Service) persist() {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return
	}
	entries := slices.Clone(s.table.entries)
	s.dirty = false
	s.mu.Unlock()
	if err := saveState(s.statePath, entries); err != nil {
		s.stateErrs.Add(1)
		s.log.Error("ra: cannot remember the advertised prefixes; after a restart, old ones may not be deprecated", slog.Any("err", err))
	}
}

// debugLocked logs at Debug at most once a second: per-packet events must
// not flood the log.
func (s *Service) debugLocked(now time.Time, msg string, attrs ...any) {
	if now.Sub(s.debugAt) < time.Second && !now.Before(s.debugAt) {
		return
	}
	s.debugAt = now
	s.log.Debug(msg, attrs...)
}
