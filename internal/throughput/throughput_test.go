package throughput

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeCounters is an interface whose counters the test moves.
type fakeCounters struct {
	mu     sync.Mutex
	rx, tx uint64
	err    error
}

func (f *fakeCounters) read() (uint64, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rx, f.tx, f.err
}

func (f *fakeCounters) set(rx, tx uint64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rx, f.tx, f.err = rx, tx, err
}

func rates(ss []Sample) [][2]uint64 {
	out := [][2]uint64{}
	for _, s := range ss {
		out = append(out, [2]uint64{s.RX, s.TX})
	}
	return out
}

func TestSampler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &fakeCounters{}
		s := New(Config{Read: c.read, Interval: 2 * time.Second, Keep: 6 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		step := func(rx, tx uint64, err error) {
			c.set(rx, tx, err)
			time.Sleep(2 * time.Second)
			synctest.Wait()
		}
		synctest.Wait() // the first reading: no rate yet
		if got := s.Samples(); len(got) != 0 {
			t.Fatalf("a rate from one reading: %v", got)
		}
		step(1000, 250, nil) // 1000 B in 2 s = 4000 bit/s
		step(3000, 250, nil)
		step(0, 0, errors.New("gone")) // skipped, and the next one primes
		step(100, 100, nil)
		step(600, 100, nil)
		step(600, 350, nil)
		// Keep 6 s at 2 s: the last three rates.
		want := [][2]uint64{{8000, 0}, {2000, 0}, {0, 1000}}
		if diff := cmp.Diff(want, rates(s.Samples())); diff != "" {
			t.Errorf("rates (-want +got):\n%s", diff)
		}
		ss := s.Samples()
		if !ss[0].Time.Before(ss[1].Time) || ss[2].Time.Sub(ss[1].Time) != 2*time.Second {
			t.Errorf("sample times out of order: %v", ss)
		}
		step(10, 10, nil) // a counter went back: no rate
		if got := rates(s.Samples()); got[2] != [2]uint64{0, 1000} {
			t.Errorf("a counter reset made a rate: %v", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
