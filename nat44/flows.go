package nat44

import (
	"net/netip"
	"time"
)

// FlowEvent is a conntrack event of a connection that the masquerade
// translated: a LAN endpoint (Internal) talking to Remote, seen from the
// internet as External.
type FlowEvent struct {
	Destroy  bool // else the flow is new
	Proto    Proto
	Internal netip.AddrPort
	Remote   netip.AddrPort
	External netip.AddrPort
}

// flowTracker turns the flow events of UDP connections into the entries of
// the filtering maps: for endpoint-independent filtering, external port →
// internal endpoint; for address-dependent filtering, (remote address,
// external port) → internal endpoint. An entry lives while any flow behind
// it lives and for hold afterwards (RFC 4787 REQ-5: at least two minutes).
// It is pure: the caller passes the time.
type flowTracker struct {
	mode    Filtering
	hold    time.Duration
	cone    map[uint16]*flowEntry
	remotes map[RemoteKey]*flowEntry
}

type flowEntry struct {
	internal netip.AddrPort
	flows    int
	expires  time.Time // set when flows reaches 0
}

func newFlowTracker(mode Filtering, hold time.Duration) *flowTracker {
	return &flowTracker{mode: mode, hold: hold, cone: make(map[uint16]*flowEntry), remotes: make(map[RemoteKey]*flowEntry)}
}

// event applies one flow event for the WAN address wan and reports whether
// the map contents changed.
func (t *flowTracker) event(ev FlowEvent, wan netip.Addr, now time.Time) bool {
	if ev.Proto != UDP || !wan.IsValid() || ev.External.Addr() != wan || ev.Internal.Addr() == wan || ev.External.Port() == 0 {
		return false
	}
	switch t.mode {
	case EndpointIndependent:
		return track(t.cone, ev.External.Port(), ev, now, t.hold)
	case AddressDependent:
		return track(t.remotes, RemoteKey{ev.Remote.Addr(), ev.External.Port()}, ev, now, t.hold)
	}
	return false
}

func track[K comparable](m map[K]*flowEntry, k K, ev FlowEvent, now time.Time, hold time.Duration) bool {
	e := m[k]
	if !ev.Destroy {
		if e == nil || e.internal != ev.Internal {
			// A new owner of the port wins: the kernel gave it out, so the
			// old owner's flows are gone.
			m[k] = &flowEntry{internal: ev.Internal, flows: 1}
			return true
		}
		e.flows++
		e.expires = time.Time{}
		return false
	}
	if e == nil || e.internal != ev.Internal || e.flows == 0 {
		return false
	}
	e.flows--
	if e.flows == 0 {
		e.expires = now.Add(hold)
	}
	return false
}

// resync replaces what events said by what conntrack holds now: live
// flows, after events were lost or before any came. An entry whose flows
// are all gone starts its hold now (unless it was holding already).
func (t *flowTracker) resync(live []FlowEvent, wan netip.Addr, now time.Time) {
	for _, e := range t.cone {
		e.flows = 0
	}
	for _, e := range t.remotes {
		e.flows = 0
	}
	for _, ev := range live {
		ev.Destroy = false
		t.event(ev, wan, now)
	}
	holdIdle(t.cone, now, t.hold)
	holdIdle(t.remotes, now, t.hold)
}

func holdIdle[K comparable](m map[K]*flowEntry, now time.Time, hold time.Duration) {
	for _, e := range m {
		if e.flows == 0 && e.expires.IsZero() {
			e.expires = now.Add(hold)
		}
	}
}

// needsEvents reports whether the filtering mode is built from flows.
func needsEvents(f Filtering) bool { return f == EndpointIndependent || f == AddressDependent }

// expire drops entries whose hold time is over and reports whether any went.
func (t *flowTracker) expire(now time.Time) bool {
	a := expireEntries(t.cone, now)
	b := expireEntries(t.remotes, now)
	return a || b
}

func expireEntries[K comparable](m map[K]*flowEntry, now time.Time) bool {
	changed := false
	for k, e := range m {
		if e.flows == 0 && !e.expires.After(now) {
			delete(m, k)
			changed = true
		}
	}
	return changed
}

// next is the earliest hold expiry, if any.
func (t *flowTracker) next() (time.Time, bool) {
	var at time.Time
	scan := func(e *flowEntry) {
		if e.flows == 0 && (at.IsZero() || e.expires.Before(at)) {
			at = e.expires
		}
	}
	for _, e := range t.cone {
		scan(e)
	}
	for _, e := range t.remotes {
		scan(e)
	}
	return at, !at.IsZero()
}

// maps returns the current map contents for a State.
func (t *flowTracker) maps() (map[uint16]netip.AddrPort, map[RemoteKey]netip.AddrPort) {
	cone := make(map[uint16]netip.AddrPort, len(t.cone))
	for k, e := range t.cone {
		cone[k] = e.internal
	}
	rem := make(map[RemoteKey]netip.AddrPort, len(t.remotes))
	for k, e := range t.remotes {
		rem[k] = e.internal
	}
	return cone, rem
}

// reset forgets every entry: after a WAN address change the old flows are
// gone, or after a change of filtering mode.
func (t *flowTracker) reset(mode Filtering) {
	t.mode = mode
	clear(t.cone)
	clear(t.remotes)
}
