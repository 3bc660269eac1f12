// Package supervise runs the daemon's services: each one is started,
// stopped, restarted with capped exponential backoff after a failure or a
// panic, and restarted on demand (a reload) the same way. A failure of one
// service never stops another, and shutdown is bounded however many
// services there are.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"gateway/internal/clock"
)

// RunFunc is a service's body, the Run of a service package or a closure
// around it. It works until ctx is done, then returns after every
// goroutine it started has ended; an error seen after ctx is done counts
// as a clean stop. Returning nil before ctx is done means the service has
// nothing more to do: it is not restarted.
type RunFunc func(ctx context.Context) error

// Config configures a Supervisor. Zero values are documented per field.
type Config struct {
	// MinBackoff is the wait before the first restart after a failure;
	// zero is 1 s. Each failure in a row doubles it up to MaxBackoff.
	MinBackoff time.Duration
	// MaxBackoff caps the wait; zero is 1 min.
	MaxBackoff time.Duration
	// Stable is how long a run must last for the next failure to count as
	// the first again (the backoff resets); zero is 1 min.
	Stable time.Duration
	// StopTimeout bounds shutdown and a restart's wait for the old run to
	// end; zero is 10 s. A service that has not stopped by then is logged
	// and left behind.
	StopTimeout time.Duration
	Clock       clock.Clock  // nil is the real clock
	Logger      *slog.Logger // nil discards
}

// Defaults of Config's zero fields.
const (
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultStable      = time.Minute
	DefaultStopTimeout = 10 * time.Second
)

// State is where a service is in its life.
type State string

// The states of a service.
const (
	Starting State = "starting" // added, its first run not begun
	Running  State = "running"
	Backoff  State = "backoff"  // failed; waiting to restart
	Done     State = "done"     // returned nil on its own: not restarted
	Stopping State = "stopping" // asked to stop, not yet returned
	Stopped  State = "stopped"
)

// Status is a service's state, for `gateway status` and the panel.
type Status struct {
	Name      string    `json:"name"`
	State     State     `json:"state"`
	Since     time.Time `json:"since"`                // when State began
	Restarts  int       `json:"restarts"`             // runs after the first
	Failures  int       `json:"failures"`             // failed runs (errors and panics)
	Panics    int       `json:"panics"`               // of which panics
	LastError string    `json:"last_error,omitempty"` // the last failure
}

// PanicError is a panic turned into an error, with the stack where it
// happened.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Catch runs fn and returns a *PanicError if it panics. Services use it in
// the goroutines they start (a handler, a worker) so that a panic there
// ends the service's run with an error instead of ending the daemon.
func Catch(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// Supervisor runs services. Add and Restart may be called at any time;
// services added before Run start when Run does.
type Supervisor struct {
	cfg   Config
	clock clock.Clock
	log   *slog.Logger

	mu      sync.Mutex      // guards ctx, svcs, order, closing and each service's st
	ctx     context.Context // Run's; nil before Run
	svcs    map[string]*service
	order   []string // names in the order they were added
	closing bool     // Run's ctx is done: no more Add
	wg      sync.WaitGroup
}

type service struct {
	name string
	run  RunFunc
	// restart asks the loop to end the current run (or backoff wait) and
	// start again at once; remove asks it to stop for good.
	restart chan struct{}
	remove  chan struct{}
	done    chan struct{} // closed when the loop has ended

	// Guarded by Supervisor.mu.
	st Status
}

// New returns a Supervisor with no services.
func New(cfg Config) *Supervisor {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Stable <= 0 {
		cfg.Stable = DefaultStable
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	s := &Supervisor{cfg: cfg, clock: clock.Or(cfg.Clock), log: cfg.Logger, svcs: map[string]*service{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// ErrExists is returned by Add for a name already in use.
var ErrExists = errors.New("supervise: a service of that name exists")

// Add adds a service and, if the supervisor runs, starts it.
func (s *Supervisor) Add(name string, run RunFunc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.svcs[name]; ok {
		return fmt.Errorf("%w: %s", ErrExists, name)
	}
	if s.closing {
		return fmt.Errorf("supervise: add %s: shutting down", name)
	}
	svc := &service{
		name:    name,
		run:     run,
		restart: make(chan struct{}, 1),
		remove:  make(chan struct{}),
		done:    make(chan struct{}),
		st:      Status{Name: name, State: Starting, Since: s.clock.Now()},
	}
	s.svcs[name] = svc
	s.order = append(s.order, name)
	if s.ctx != nil {
		s.startLocked(svc)
	}
	return nil
}

// Restart ends the service's current run (or its wait before a restart)
// and starts it again at once, with the backoff reset: a reload. It
// reports whether the service exists. A service that is Done runs again.
func (s *Supervisor) Restart(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.svcs[name]
	if !ok {
		return false
	}
	select {
	case svc.restart <- struct{}{}:
	default: // one is pending already
	}
	return true
}

// Remove stops the service, waits (StopTimeout at most) for it to end and
// forgets it. It reports whether the service existed.
func (s *Supervisor) Remove(name string) bool {
	s.mu.Lock()
	svc, ok := s.svcs[name]
	if ok {
		delete(s.svcs, name)
		s.order = slices.DeleteFunc(s.order, func(n string) bool { return n == name })
	}
	started := s.ctx != nil
	s.mu.Unlock()
	if !ok {
		return false
	}
	close(svc.remove)
	if !started {
		return true
	}
	t := s.clock.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-svc.done:
	case <-t.C:
		s.log.Error("service did not stop in time; left behind", slog.String("service", name), slog.Duration("waited", s.cfg.StopTimeout))
	}
	return true
}

// Status lists the services in the order they were added.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.svcs[n].st)
	}
	return out
}

// Run starts the services and supervises them until ctx is done. Then it
// cancels them all and waits StopTimeout at most; services still running
// then are logged by name and left behind, so that shutdown never hangs.
// It returns nil once every service stopped, else an error naming the
// ones that did not.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil || s.closing {
		s.mu.Unlock()
		return errors.New("supervise: Run called twice")
	}
	s.ctx = ctx
	for _, n := range s.order {
		s.startLocked(s.svcs[n])
	}
	s.mu.Unlock()

	<-ctx.Done()
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()

	all := make(chan struct{})
	go func() { s.wg.Wait(); close(all) }()
	t := s.clock.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-all:
		return nil
	case <-t.C:
	}
	var stuck []string
	s.mu.Lock()
	for _, n := range s.order {
		if st := s.svcs[n].st.State; st != Stopped && st != Done {
			stuck = append(stuck, n)
		}
	}
	s.mu.Unlock()
	s.log.Error("services did not stop in time; left behind", slog.Any("services", stuck), slog.Duration("waited", s.cfg.StopTimeout))
	return fmt.Errorf("supervise: %v did not stop within %v", stuck, s.cfg.StopTimeout)
}

func (s *Supervisor) startLocked(svc *service) {
	ctx := s.ctx
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(svc.done)
		s.loop(ctx, svc)
	}()
}

func (s *Supervisor) set(svc *service, f func(st *Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&svc.st)
}

// loop runs svc again and again until ctx is done or svc is removed.
func (s *Supervisor) loop(ctx context.Context, svc *service) {
	log := s.log.With(slog.String("service", svc.name))
	backoff := s.cfg.MinBackoff
	first := true
	for {
		if ctx.Err() != nil {
			s.set(svc, func(st *Status) { st.State, st.Since = Stopped, s.clock.Now() })
			return
		}
		start := s.clock.Now()
		s.set(svc, func(st *Status) {
			st.State, st.Since = Running, start
			if !first {
				st.Restarts++
			}
		})
		first = false
		runCtx, cancel := context.WithCancel(ctx)
		res := make(chan error, 1)
		go func() { res <- Catch(func() error { return svc.run(runCtx) }) }()

		var err error
		returned, restart, removed := false, false, false
		select {
		case err = <-res:
			returned = true
		case <-svc.restart:
			restart = true
		case <-svc.remove:
			removed = true
		case <-ctx.Done():
		}
		if !returned {
			s.set(svc, func(st *Status) { st.State, st.Since = Stopping, s.clock.Now() })
			cancel()
			if err = s.wait(log, res); err == errStuck {
				// The old run is left behind; starting another beside it
				// could fight it over its sockets.
				s.set(svc, func(st *Status) { st.LastError = "did not stop in time" })
				return
			}
		}
		cancel()
		ran := s.clock.Now().Sub(start)
		var pe *PanicError
		panicked := errors.As(err, &pe)
		switch {
		case panicked:
			// Logged whatever the cause of the stop: a panic is a bug.
			log.Error("service panicked; restarting", slog.Any("panic", pe.Value), slog.String("stack", string(pe.Stack)))
		case removed || ctx.Err() != nil:
			s.set(svc, func(st *Status) { st.State, st.Since = Stopped, s.clock.Now() })
			return
		case restart:
			log.Info("service restarting")
			backoff = s.cfg.MinBackoff
			continue
		case err == nil:
			log.Info("service finished")
			s.set(svc, func(st *Status) { st.State, st.Since = Done, s.clock.Now() })
			// A Restart runs it again; removal or shutdown ends the loop.
			select {
			case <-svc.restart:
				backoff = s.cfg.MinBackoff
				continue
			case <-svc.remove:
			case <-ctx.Done():
			}
			s.set(svc, func(st *Status) { st.State, st.Since = Stopped, s.clock.Now() })
			return
		}
		if ran >= s.cfg.Stable {
			backoff = s.cfg.MinBackoff
		}
		s.set(svc, func(st *Status) {
			st.Failures++
			if panicked {
				st.Panics++
			}
			st.LastError = err.Error()
			st.State, st.Since = Backoff, s.clock.Now()
		})
		if !panicked {
			log.Error("service failed; restarting", slog.Any("err", err), slog.Duration("after", ran), slog.Duration("backoff", backoff))
		}
		if removed || ctx.Err() != nil {
			s.set(svc, func(st *Status) { st.State, st.Since = Stopped, s.clock.Now() })
			return
		}
		t := s.clock.NewTimer(backoff)
		select {
		case <-t.C:
			backoff = min(2*backoff, s.cfg.MaxBackoff)
		case <-svc.restart:
			t.Stop()
			backoff = s.cfg.MinBackoff
		case <-svc.remove:
			t.Stop()
			s.set(svc, func(st *Status) { st.State, st.Since = Stopped, s.clock.Now() })
			return
		case <-ctx.Done():
			t.Stop()
			s.set(svc, func(st *Status) { st.State, st.Since = Stopped, s.clock.Now() })
			return
		}
	}
}

var errStuck = errors.New("supervise: did not stop")

// wait waits StopTimeout at most for a cancelled run to return.
func (s *Supervisor) wait(log *slog.Logger, res <-chan error) error {
	t := s.clock.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	select {
	case err := <-res:
		return err
	case <-t.C:
		log.Error("service did not stop in time; left behind", slog.Duration("waited", s.cfg.StopTimeout))
		return errStuck
	}
}
