// Package pmp serves NAT-PMP (RFC 6886) and PCP (RFC 6887) to the LAN on
// UDP port 5351, the two told apart by the version byte (RFC 6887 §9). A
// pure Core turns one request into one nat44 call and one response; the
// Server around it owns the sockets, reads with one goroutine per socket
// and sends the unsolicited announcements.
package pmp

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gateway/nat44"
)

// Mapper is the part of nat44's mapping service that IPv4 requests use.
type Mapper interface {
	Map(nat44.Request) (nat44.Mapping, error)
	Unmap(nat44.Release, ...nat44.Key) error
	UnmapHost(nat44.Release, netip.Addr, nat44.Proto) ([]nat44.Mapping, error)
	HostMappings(netip.Addr) []nat44.Mapping
}

// Pinholer is the part of the mapping service that IPv6 MAP and PEER use.
type Pinholer interface {
	OpenPinhole(nat44.PinholeRequest) (nat44.Pinhole, error)
	ClosePinhole(nat44.Release, nat44.PinholeKey) error
	Pinholes() []nat44.Pinhole
	// ExternalIPv6 is the address the internet reaches host on: the NAT66
	// address for a ULA host behind NAT66, else host itself.
	ExternalIPv6(host netip.Addr) netip.Addr
}

// Epocher says what the responses' epoch and external address are.
type Epocher interface {
	Epoch() time.Duration
	WAN() netip.Addr
}

// NAT is everything the core asks of the mapping service; *nat44.NAT is
// one.
type NAT interface {
	Mapper
	Pinholer
	Epocher
}

// Core answers NAT-PMP and PCP requests. It owns no socket and is safe for
// concurrent use: each socket's reader calls Handle.
type Core struct {
	nat  NAT
	cfg  CoreConfig
	lans atomic.Pointer[[]netip.Prefix]

	mu       sync.Mutex // guards counters
	counters map[string]uint64
}

// CoreConfig says what the core serves. The zero value serves NAT-PMP and
// PCP, without THIRD_PARTY.
type CoreConfig struct {
	// NoNATPMP turns NAT-PMP off: version 0 requests get PCP's
	// UNSUPP_VERSION (RFC 6887 §9).
	NoNATPMP bool
	// NoPCP turns PCP off: PCP requests get NAT-PMP's Unsupported
	// Version, as from a NAT-PMP-only server (RFC 6886 §3.5).
	NoPCP bool
	// ThirdParty allows PCP's THIRD_PARTY option (the nat section's
	// secure_mode off); zero: a request that carries one is refused
	// with NOT_AUTHORIZED.
	ThirdParty bool
}

// NewCore returns a core that asks nat.
func NewCore(nat NAT, cfg CoreConfig) *Core {
	c := &Core{nat: nat, cfg: cfg, counters: map[string]uint64{}}
	c.SetLANs(nil)
	return c
}

// SetLANs sets the LAN subnets: a request from outside them is ignored.
// Link-local IPv6 sources are on-link by definition and always accepted
// (the server's sockets are bound to the LAN interfaces).
func (c *Core) SetLANs(ps []netip.Prefix) {
	ps = slices.Clone(ps)
	c.lans.Store(&ps)
}

func (c *Core) onLAN(a netip.Addr) bool {
	if a.Is6() && a.IsLinkLocalUnicast() {
		return true
	}
	return slices.ContainsFunc(*c.lans.Load(), func(p netip.Prefix) bool { return p.Contains(a) })
}

// Drop reasons and counters (Counters).
const (
	dropNotLAN   = "drop_not_lan"   // the source is not on a LAN subnet
	dropShort    = "drop_short"     // too short to answer
	dropResponse = "drop_response"  // a response (a client's or another server's)
	dropNoReply  = "drop_malformed" // malformed beyond an error answer
)

func (c *Core) count(name string) {
	c.mu.Lock()
	c.counters[name]++
	c.mu.Unlock()
}

// Count adds one to counter name (the server counts its own drops here).
func (c *Core) Count(name string) { c.count(name) }

// Counters returns the counters by reason: requests by protocol, results
// by code, drops by reason.
func (c *Core) Counters() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.counters))
	for k, v := range c.counters {
		out[k] = v
	}
	return out
}

// Handle answers the request b that came from src, or returns nil when it
// is dropped (the reason counted). The reply goes back to src.
func (c *Core) Handle(b []byte, src netip.AddrPort) []byte {
	from := src.Addr().Unmap()
	if !c.onLAN(from) {
		c.count(dropNotLAN)
		return nil
	}
	if len(b) < 2 {
		c.count(dropShort)
		return nil
	}
	// RFC 6887 §9: version 0 is NAT-PMP, served as such; version 2 is
	// PCP; any other gets PCP's UNSUPP_VERSION.
	switch {
	case b[0] == 0 && !c.cfg.NoNATPMP:
		return c.natpmp(b, from)
	case c.cfg.NoPCP:
		return c.natpmpUnsupportedVersion(b)
	}
	return c.pcp(b, from)
}

// epoch is the core's epoch in whole seconds.
func (c *Core) epoch() time.Duration { return c.nat.Epoch().Truncate(time.Second) }

// wholeSeconds rounds a granted lifetime to the wire's seconds, at least 1.
func wholeSeconds(d time.Duration) time.Duration {
	d = d.Truncate(time.Second)
	if d < time.Second {
		return time.Second
	}
	return d
}

// isAny reports whether err is one of targets.
func isAny(err error, targets ...error) bool {
	return slices.ContainsFunc(targets, func(t error) bool { return errors.Is(err, t) })
}
