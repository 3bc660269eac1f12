// Package throughput samples an interface's byte counters at a fixed
// interval and keeps the rates of the last minutes, for the web panel's
// live chart of the WAN.
package throughput

import (
	"context"
	"sync"
	"time"

	"gateway/internal/clock"
)

// Counters reads an interface's total received and sent bytes.
type Counters func() (rx, tx uint64, err error)

// Sample is the rate over one interval, in bits per second.
type Sample struct {
	Time time.Time `json:"time"` // the end of the interval
	RX   uint64    `json:"rx_bps"`
	TX   uint64    `json:"tx_bps"`
}

// Config is a Sampler's config.
type Config struct {
	Read     Counters
	Interval time.Duration // default 2 s
	Keep     time.Duration // how far back the samples go; default 10 min
	Clock    clock.Clock   // default the real clock
}

// Sampler reads the counters every interval and keeps the rates.
type Sampler struct {
	cfg Config
	clk clock.Clock

	mu      sync.Mutex // guards samples, first, last, lastT, primed
	samples []Sample   // circular, oldest at first once full
	first   int
	last    [2]uint64 // the counters at lastT
	lastT   time.Time
	primed  bool // last holds a reading
}

// New returns a sampler; it samples once Run runs.
func New(cfg Config) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 10 * time.Minute
	}
	n := max(1, int(cfg.Keep/cfg.Interval))
	return &Sampler{cfg: cfg, clk: clock.Or(cfg.Clock), samples: make([]Sample, 0, n)}
}

// Interval is the time between samples.
func (s *Sampler) Interval() time.Duration { return s.cfg.Interval }

// Run samples until ctx is done. A failed read (the interface is gone)
// skips the sample and starts the rate afresh at the next good one.
func (s *Sampler) Run(ctx context.Context) error {
	for {
		s.sample()
		t := s.clk.NewTimer(s.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (s *Sampler) sample() {
	rx, tx, err := s.cfg.Read()
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.primed = false
		return
	}
	prev, prevT, ok := s.last, s.lastT, s.primed
	s.last, s.lastT, s.primed = [2]uint64{rx, tx}, now, true
	dt := now.Sub(prevT)
	// A counter that went back (the interface was re-created) starts afresh.
	if !ok || dt <= 0 || rx < prev[0] || tx < prev[1] {
		return
	}
	rate := func(d uint64) uint64 { return uint64(float64(d*8) / dt.Seconds()) }
	smp := Sample{Time: now, RX: rate(rx - prev[0]), TX: rate(tx - prev[1])}
	if len(s.samples) < cap(s.samples) {
		s.samples = append(s.samples, smp)
		return
	}
	s.samples[s.first] = smp
	s.first = (s.first + 1) % len(s.samples)
}

// Samples returns the kept samples, oldest first.
func (s *Sampler) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Sample, 0, len(s.samples))
	out = append(out, s.samples[s.first:]...)
	return append(out, s.samples[:s.first]...)
}
