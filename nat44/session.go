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
	// Listen subscribes to flow events, then calls started with the flows
	// alive at that moment, then fn for every new and destroyed flow, all
	// from one goroutine and in that order, until ctx is done. After an
	// error (lost events, say) the caller listens again, which resyncs.
	Listen(ctx context.Context, started func([]FlowEvent), fn func(FlowEvent)) error
	// Sessions lists the flows that cross the WAN address wan.
	Sessions(wan netip.Addr) ([]Session, error)
}
