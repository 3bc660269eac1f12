// Package events keeps the daemon's recent events (a device joined, an app
// opened a port, a request was refused and why, the WAN address changed)
// in a bounded ring for the web panel's log.
package events

import (
	"net/netip"
	"sync"
	"time"
)

// Kinds of events.
const (
	KindLease   = "lease"   // a device joined or left
	KindMapping = "mapping" // an app opened or closed a port
	KindRefused = "refused" // a request was refused, and why
	KindWAN     = "wan"     // the WAN address changed
	KindIPv6    = "ipv6"    // the IPv6 uplink changed
	KindService = "service" // a service failed or came back
)

// Event is one entry of the log. IDs increase by one from 1.
type Event struct {
	ID      uint64     `json:"id"`
	Time    time.Time  `json:"time"`
	Kind    string     `json:"kind"`
	Host    netip.Addr `json:"host,omitzero"` // the LAN host it concerns, if any
	Message string     `json:"message"`
}

// Ring keeps the last Size events. Add is cheap (no allocation once the
// ring is full, one lock), so hot paths may call it.
type Ring struct {
	mu   sync.Mutex // guards buf, next
	buf  []Event    // a circular buffer; buf[(id-1)%cap] holds event id
	next uint64     // the ID of the next event
	now  func() time.Time
}

// DefaultSize is how many events a Ring keeps unless told.
const DefaultSize = 500

// New returns a ring of size events (DefaultSize if size <= 0) that
// stamps them with now (time.Now if nil).
func New(size int, now func() time.Time) *Ring {
	if size <= 0 {
		size = DefaultSize
	}
	if now == nil {
		now = time.Now
	}
	return &Ring{buf: make([]Event, 0, size), next: 1, now: now}
}

// Add records an event and returns its ID.
func (r *Ring) Add(kind string, host netip.Addr, message string) uint64 {
	t := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := Event{ID: r.next, Time: t, Kind: kind, Host: host, Message: message}
	r.next++
	if len(r.buf) < cap(r.buf) {
		r.buf = append(r.buf, e)
	} else {
		r.buf[(e.ID-1)%uint64(cap(r.buf))] = e
	}
	return e.ID
}

// After returns the events newer than id that the ring still holds,
// oldest first; After(0) returns them all.
func (r *Ring) After(id uint64) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := r.next - uint64(len(r.buf)) // the oldest ID held
	if id+1 > first {
		first = id + 1
	}
	out := make([]Event, 0, max(0, int(r.next)-int(first)))
	for i := first; i < r.next; i++ {
		out = append(out, r.buf[(i-1)%uint64(cap(r.buf))])
	}
	return out
}
