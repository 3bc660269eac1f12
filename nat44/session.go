package nat44

import (
	"context"
	"net/netip"
	"time"
)

// Session is one live NAT session (a conntrack entry that crosses the WAN
// address), for the web panel's read-only view.
type Session struct {
	Proto    Proto          `json:"proto"`
	Inbound  bool           `json:"inbound"` // opened from the WAN through a mapping
	Internal netip.AddrPort `json:"internal"`
	External netip.AddrPort `json:"external"`
	Remote   netip.AddrPort `json:"remote"`
	State    string         `json:"state"`
	Timeout  time.Duration  `json:"timeout"`
}

// Conntrack is the kernel's connection table, as nat44 needs it.
type Conntrack interface {
	// Listen calls fn, from one goroutine, for every new and destroyed
	// flow; it returns when ctx is done.
	Listen(ctx context.Context, fn func(FlowEvent)) error
	// Sessions lists the flows that cross the WAN address wan.
	Sessions(wan netip.Addr) ([]Session, error)
}
