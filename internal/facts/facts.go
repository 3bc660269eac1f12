// Package facts shares what the daemon's services learn about the network
// (the WAN address and its kind, the LAN prefixes, later the IPv6 prefix
// and uplink) by publish/subscribe. Each fact is a typed latest-value
// topic: a subscriber that falls behind sees the newest value, never a
// backlog, and one that subscribes late gets the current value at once.
package facts

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Topic holds the latest value of one fact and hands it to subscribers.
// The zero Topic is not usable; use NewTopic.
type Topic[T any] struct {
	equal func(a, b T) bool

	mu   sync.Mutex // guards val, set, subs
	val  T
	set  bool
	subs map[chan T]struct{}
}

// NewTopic returns a topic with no value yet. equal decides whether a
// published value is a change; nil counts every Publish as one.
func NewTopic[T any](equal func(a, b T) bool) *Topic[T] {
	return &Topic[T]{equal: equal, subs: map[chan T]struct{}{}}
}

// Publish makes v the current value and reports whether it changed.
// It never blocks.
func (t *Topic[T]) Publish(v T) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.set && t.equal != nil && t.equal(t.val, v) {
		return false
	}
	t.val, t.set = v, true
	for c := range t.subs {
		select { // drop the value the subscriber has not taken yet
		case <-c:
		default:
		}
		c <- v
	}
	return true
}

// Get returns the current value, and false before the first Publish.
func (t *Topic[T]) Get() (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.val, t.set
}

// Subscribe returns a channel that holds the current value at once (if
// there is one) and then the newest value after each change, until cancel
// is called. The channel is never closed.
func (t *Topic[T]) Subscribe() (values <-chan T, cancel func()) {
	c := make(chan T, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.set {
		c <- t.val
	}
	t.subs[c] = struct{}{}
	return c, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.subs, c)
	}
}

// Wait returns the first value (the current one included) for which ok
// holds, or ctx's error.
func (t *Topic[T]) Wait(ctx context.Context, ok func(T) bool) (T, error) {
	c, cancel := t.Subscribe()
	defer cancel()
	for {
		select {
		case v := <-c:
			if ok(v) {
				return v, nil
			}
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

// WAN is the WAN interface's IPv4 address and what kind it is.
type WAN struct {
	Iface string
	Addr  netip.Addr // invalid while the WAN has none
	Kind  AddrKind
}

// LAN is the addresses (with their prefix length) of each LAN interface
// that exists, IPv4 first.
type LAN struct {
	Addrs map[string][]netip.Prefix
}

// IPv4 is the first IPv4 address of interface name.
func (l LAN) IPv4(name string) (netip.Prefix, bool) {
	for _, p := range l.Addrs[name] {
		if p.Addr().Is4() {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Prefixes are the subnets of every LAN address, IPv4 and IPv6, sorted and
// without duplicates: where mappings and pinholes may point.
func (l LAN) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, ps := range l.Addrs {
		for _, p := range ps {
			if p.Addr().IsLinkLocalUnicast() {
				continue
			}
			out = append(out, p.Masked())
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// Equal reports whether l and o hold the same addresses.
func (l LAN) Equal(o LAN) bool { return maps.EqualFunc(l.Addrs, o.Addrs, slices.Equal) }

// IPv6 is the LAN's IPv6 prefix and where it comes from (delegated, 6to4,
// Teredo, static); the IPv6 services publish it.
type IPv6 struct {
	Prefix netip.Prefix // the LAN's /64; invalid: no IPv6 on the LAN
	Uplink string       // "pd", "6to4", "teredo", "static", or "none" for a local-only ULA
	// Valid and Preferred are when the uplink's prefix ends (a delegated
	// prefix's lifetimes); zero: it does not end on its own.
	Valid, Preferred time.Time
	// MTU is the link MTU the uplink allows the LAN (1480 over 6to4); 0:
	// the LAN's own.
	MTU int
}

// Tunnel is the IPv6 tunnels that run now, for the packet filter: their
// interfaces face the internet like the WAN, 6to4 needs protocol 41 let
// in from the WAN, and the LAN's IPv6 leaves the Teredo client's
// interface masqueraded to its one address (NAT66).
type Tunnel struct {
	Iface       string // the 6to4 tunnel's; "" while none runs
	SixToFour   bool
	Teredo      string     // the Teredo client's; "" while none runs
	TeredoAddr  netip.Addr // its address once qualified: NAT66's
	TeredoRelay string     // the Teredo relay's; "" while none runs
}

// Outside lists the interfaces of t that face the internet.
func (t Tunnel) Outside() []string {
	var out []string
	for _, i := range []string{t.Iface, t.Teredo, t.TeredoRelay} {
		if i != "" {
			out = append(out, i)
		}
	}
	return out
}

// Board is the set of facts the daemon shares between its services.
type Board struct {
	WAN    *Topic[WAN]
	LAN    *Topic[LAN]
	IPv6   *Topic[IPv6]
	Tunnel *Topic[Tunnel]
}

// NewBoard returns a board whose topics have no value yet.
func NewBoard() *Board {
	return &Board{
		WAN:    NewTopic(func(a, b WAN) bool { return a == b }),
		LAN:    NewTopic(LAN.Equal),
		IPv6:   NewTopic(func(a, b IPv6) bool { return a == b }),
		Tunnel: NewTopic(func(a, b Tunnel) bool { return a == b }),
	}
}
