// Package netwatch follows the addresses of named interfaces over rtnetlink
// and hands every change to its subscribers: the daemon learns the WAN and
// LAN addresses without polling and without running `ip`.
package netwatch

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
)

// Iface is one interface as the kernel sees it.
type Iface struct {
	Name  string
	Index int
	Up    bool
	Addrs []netip.Prefix // IPv4 first, then IPv6; sorted
}

// IPv4 is the interface's first IPv4 address, if any.
func (i Iface) IPv4() (netip.Prefix, bool) {
	for _, p := range i.Addrs {
		if p.Addr().Is4() {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Snapshot is the state of the watched interfaces by name; an interface
// that does not exist is absent.
type Snapshot map[string]Iface

func (s Snapshot) equal(o Snapshot) bool {
	return maps.EqualFunc(s, o, func(a, b Iface) bool {
		return a.Name == b.Name && a.Index == b.Index && a.Up == b.Up && slices.Equal(a.Addrs, b.Addrs)
	})
}

// hub hands the latest snapshot to each subscriber; a slow subscriber sees
// only the newest state, never a backlog.
type hub struct {
	mu   sync.Mutex // guards cur and subs
	cur  Snapshot
	subs []chan Snapshot
}

// Subscribe returns a channel that holds the current snapshot at once and
// then each change.
func (h *hub) Subscribe() <-chan Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan Snapshot, 1)
	if h.cur != nil {
		c <- h.cur
	}
	h.subs = append(h.subs, c)
	return c
}

// Current is the latest snapshot (nil before the first).
func (h *hub) Current() Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// publish reports whether s differs from the previous snapshot.
func (h *hub) publish(s Snapshot) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur != nil && h.cur.equal(s) {
		return false
	}
	h.cur = s
	for _, c := range h.subs {
		select {
		case <-c:
		default:
		}
		c <- s
	}
	return true
}

// Fake is a Source for tests: Set publishes a snapshot.
type Fake struct{ hub }

// Set publishes s as the new state.
func (f *Fake) Set(s Snapshot) { f.publish(s) }
