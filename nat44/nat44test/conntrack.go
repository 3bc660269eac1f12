package nat44test

import (
	"context"
	"net/netip"
	"slices"
	"sync"

	"gateway/nat44"
)

// FakeConntrack is a nat44.Conntrack whose flow events are the ones a test
// pushes with Emit and whose sessions are the ones it sets. Inside a
// synctest bubble, create it in the bubble: its channels must belong there
// for Emit and Listen to block durably.
type FakeConntrack struct {
	events chan emitted

	// mu guards sessions and flows.
	mu       sync.Mutex
	sessions []nat44.Session
	flows    []nat44.FlowEvent
}

type emitted struct {
	ev   nat44.FlowEvent
	done chan struct{} // closed once the listener's fn has returned
}

// NewFakeConntrack returns a conntrack with no flows.
func NewFakeConntrack() *FakeConntrack {
	return &FakeConntrack{events: make(chan emitted)}
}

// Listen implements nat44.Conntrack: it reports the flows set with
// SetFlows as alive, then hands every emitted event to fn, from this
// goroutine, until ctx is done.
func (c *FakeConntrack) Listen(ctx context.Context, started func([]nat44.FlowEvent), fn func(nat44.FlowEvent)) error {
	c.mu.Lock()
	live := slices.Clone(c.flows)
	c.mu.Unlock()
	started(live)
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-c.events:
			fn(e.ev)
			close(e.done)
		}
	}
}

// Emit hands ev to a running Listen and returns once its fn has returned,
// or returns ctx's error if ctx ends first (no one is listening).
func (c *FakeConntrack) Emit(ctx context.Context, ev nat44.FlowEvent) error {
	e := emitted{ev: ev, done: make(chan struct{})}
	select {
	case c.events <- e:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-e.done // the listener took it: fn runs to completion
	return nil
}

// SetFlows sets the flows a new Listen reports as alive.
func (c *FakeConntrack) SetFlows(fs []nat44.FlowEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flows = slices.Clone(fs)
}

// SetSessions sets the flows that Sessions reports.
func (c *FakeConntrack) SetSessions(ss []nat44.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessions = slices.Clone(ss)
}

// Sessions implements nat44.Conntrack: the sessions set with SetSessions
// whose external address is wan, as the kernel lists only the flows that
// cross it.
func (c *FakeConntrack) Sessions(wan netip.Addr) ([]nat44.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []nat44.Session
	for _, s := range c.sessions {
		if s.External.Addr() == wan {
			out = append(out, s)
		}
	}
	return out, nil
}

var _ nat44.Conntrack = (*FakeConntrack)(nil)
