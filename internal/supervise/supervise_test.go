package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"gateway/internal/leakcheck"
)

// logBuf collects log lines for the tests that look at them.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSup(cfg Config, w *logBuf) *Supervisor {
	if w != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(w, nil))
	}
	return New(cfg)
}

// start runs s until the returned stop is called; stop returns Run's error.
func start(s *Supervisor) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- s.Run(ctx) }()
	return func() error { cancel(); return <-res }
}

func status(s *Supervisor, name string) Status {
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	return Status{}
}

func TestRestartWithBackoff(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		s := newSup(Config{MinBackoff: time.Second, MaxBackoff: 8 * time.Second, Stable: time.Minute}, nil)
		var starts []time.Duration
		t0 := time.Now()
		s.Add("flaky", func(ctx context.Context) error {
			starts = append(starts, time.Since(t0))
			return errors.New("no such device")
		})
		stop := start(s)
		time.Sleep(40 * time.Second)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// 0, +1, +2, +4, +8, +8, +8: doubling, capped at 8 s.
		want := []int{0, 1, 3, 7, 15, 23, 31, 39}
		var got []int
		for _, d := range starts {
			got = append(got, int(d/time.Second))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("starts at %v s; want %v s", got, want)
		}
		st := status(s, "flaky")
		if st.State != Stopped || st.Restarts != 7 || st.Failures != 8 || st.LastError != "no such device" {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestBackoffResetsAfterStableRun(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		s := newSup(Config{MinBackoff: time.Second, MaxBackoff: time.Minute, Stable: 10 * time.Second}, nil)
		var starts []time.Duration
		t0 := time.Now()
		n := 0
		s.Add("svc", func(ctx context.Context) error {
			starts = append(starts, time.Since(t0))
			n++
			if n == 4 {
				time.Sleep(20 * time.Second) // a stable run
			}
			return errors.New("boom")
		})
		stop := start(s)
		time.Sleep(31 * time.Second)
		stop()
		// 0, 1, 3, 7 (runs 20 s, stable) → fails at 27, restarts at 28 (1 s again).
		var got []int
		for _, d := range starts {
			got = append(got, int(d/time.Second))
		}
		if want := "[0 1 3 7 28 30]"; fmt.Sprint(got) != want {
			t.Fatalf("starts at %v s; want %v", got, want)
		}
	})
}

func TestPanicIsRecoveredAndLogged(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		var log logBuf
		s := newSup(Config{}, &log)
		var runs, others atomic.Int32
		s.Add("buggy", func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				var m map[string]int
				m["x"] = 1 // panics
			}
			<-ctx.Done()
			return nil
		})
		s.Add("handler", func(ctx context.Context) error {
			// A panic in a goroutine the service starts, which it
			// recovers with Catch, ends the run with the panic.
			errc := make(chan error, 1)
			go func() { errc <- Catch(func() error { panic("in a handler") }) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
				return nil
			}
		})
		s.Add("steady", func(ctx context.Context) error {
			others.Add(1)
			<-ctx.Done()
			return nil
		})
		stop := start(s)
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if runs.Load() != 2 {
			t.Errorf("buggy ran %d times; want 2 (restarted after its panic)", runs.Load())
		}
		if others.Load() != 1 {
			t.Errorf("steady started %d times; a panic elsewhere must not touch it", others.Load())
		}
		st := status(s, "buggy")
		if st.State != Running || st.Panics != 1 || !strings.Contains(st.LastError, "nil map") {
			t.Errorf("buggy status %+v", st)
		}
		if st := status(s, "handler"); st.Panics == 0 || !strings.Contains(st.LastError, "in a handler") {
			t.Errorf("handler status %+v", st)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		out := log.String()
		if !strings.Contains(out, "service panicked") || !strings.Contains(out, "supervise_test.go") {
			t.Errorf("the panic is not logged with its stack:\n%s", out)
		}
	})
}

func TestRestartOnDemand(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		s := newSup(Config{}, nil)
		var runs atomic.Int32
		var cfg atomic.Value
		cfg.Store("old")
		var seen []string
		s.Add("dhcp", func(ctx context.Context) error {
			runs.Add(1)
			seen = append(seen, cfg.Load().(string))
			<-ctx.Done()
			return errors.New("read: use of closed connection") // clean: ctx is done
		})
		stop := start(s)
		synctest.Wait()
		cfg.Store("new")
		if !s.Restart("dhcp") {
			t.Fatal("Restart: no such service")
		}
		synctest.Wait()
		if s.Restart("nope") {
			t.Fatal("Restart of an unknown service reported true")
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(seen) != "[old new]" {
			t.Fatalf("runs saw %v; want [old new]", seen)
		}
		if st := status(s, "dhcp"); st.Failures != 0 || st.Restarts != 1 || st.State != Stopped {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestRestartCutsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSup(Config{MinBackoff: time.Minute, MaxBackoff: time.Hour}, nil)
		var runs atomic.Int32
		s.Add("svc", func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				return errors.New("bad config")
			}
			<-ctx.Done()
			return nil
		})
		stop := start(s)
		defer stop()
		synctest.Wait()
		if st := status(s, "svc"); st.State != Backoff {
			t.Fatalf("status %+v; want backoff", st)
		}
		s.Restart("svc") // a reload with a fixed config
		synctest.Wait()
		if st := status(s, "svc"); st.State != Running || runs.Load() != 2 {
			t.Fatalf("status %+v after %d runs; want running at once", st, runs.Load())
		}
	})
}

func TestFinishedServiceIsNotRestarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSup(Config{}, nil)
		var runs atomic.Int32
		s.Add("once", func(ctx context.Context) error { runs.Add(1); return nil })
		stop := start(s)
		time.Sleep(time.Hour)
		if runs.Load() != 1 || status(s, "once").State != Done {
			t.Fatalf("%d runs, status %+v", runs.Load(), status(s, "once"))
		}
		stop()
	})
}

func TestShutdownOfManyServices(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		var log logBuf
		s := newSup(Config{StopTimeout: 5 * time.Second}, &log)
		for i := range 50 {
			s.Add(fmt.Sprint("svc", i), func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			})
		}
		// Some fail on their way out: still a clean stop.
		s.Add("noisy", func(ctx context.Context) error {
			<-ctx.Done()
			return errors.New("closed")
		})
		stop := start(s)
		synctest.Wait()
		t0 := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d != 0 {
			t.Fatalf("shutdown took %v of fake time; want none", d)
		}
		for _, st := range s.Status() {
			if st.State != Stopped || st.Failures != 0 {
				t.Fatalf("status %+v", st)
			}
		}
		if strings.Contains(log.String(), "failed") {
			t.Fatalf("an error after cancellation was logged as a failure:\n%s", log.String())
		}
	})
}

func TestShutdownIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log logBuf
		s := newSup(Config{StopTimeout: 5 * time.Second}, &log)
		release := make(chan struct{})
		s.Add("stuck", func(ctx context.Context) error {
			<-release // ignores ctx
			return nil
		})
		s.Add("fine", func(ctx context.Context) error { <-ctx.Done(); return nil })
		stop := start(s)
		synctest.Wait()
		t0 := time.Now()
		err := stop()
		if err == nil || !strings.Contains(err.Error(), "stuck") || strings.Contains(err.Error(), "fine") {
			t.Fatalf("Run = %v; want an error naming only the stuck service", err)
		}
		if d := time.Since(t0); d != 5*time.Second {
			t.Fatalf("shutdown took %v; want the 5 s bound", d)
		}
		if !strings.Contains(log.String(), "stuck") {
			t.Fatalf("the stuck service is not logged:\n%s", log.String())
		}
		close(release) // let the bubble end
		synctest.Wait()
	})
}

func TestAddAfterRunAndRemove(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		s := newSup(Config{}, nil)
		stop := start(s)
		synctest.Wait()
		var running atomic.Bool
		if err := s.Add("late", func(ctx context.Context) error {
			running.Store(true)
			<-ctx.Done()
			running.Store(false)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Add("late", nil); !errors.Is(err, ErrExists) {
			t.Fatalf("second Add = %v; want ErrExists", err)
		}
		synctest.Wait()
		if !running.Load() {
			t.Fatal("a service added to a running supervisor did not start")
		}
		if !s.Remove("late") || running.Load() {
			t.Fatal("Remove did not stop the service")
		}
		if len(s.Status()) != 0 {
			t.Fatalf("status after Remove: %+v", s.Status())
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}
