package nat44

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// PinholeKey identifies an IPv6 pinhole: inbound packets of Proto to
// Internal (a LAN host's global address and port), from Remote when it is
// valid, else from anyone.
type PinholeKey struct {
	Proto    Proto          `json:"proto"`
	Internal netip.AddrPort `json:"internal"`
	Remote   netip.Addr     `json:"remote,omitzero"`
}

func (k PinholeKey) String() string {
	s := fmt.Sprintf("%s/%v", k.Proto, k.Internal)
	if k.Remote.IsValid() {
		s += " from " + k.Remote.String()
	}
	return s
}

// Pinhole is a hole in the IPv6 forward filter (RFC 6092 §3.3: inbound is
// dropped unless a LAN host asked for it), opened by UPnP IGDv2
// WANIPv6FirewallControl, PCP MAP on IPv6 or the administrator, with the
// same owner and limit rules as IPv4 mappings.
type Pinhole struct {
	PinholeKey
	// ID is the pinhole's UniqueID (WANIPv6FirewallControl:1 §2.4.4),
	// given by the table; 0 until it is stored.
	ID          uint16        `json:"id"`
	Expires     time.Time     `json:"expires,omitzero"`
	Owner       Owner         `json:"owner"`
	Description string        `json:"description,omitempty"`
	Lifetime    time.Duration `json:"lifetime,omitempty"`
	Nonce       Nonce         `json:"nonce,omitzero"`
}

// Host is the internal host the pinhole belongs to.
func (p Pinhole) Host() netip.Addr { return p.Internal.Addr() }

// Permanent reports whether the pinhole never expires.
func (p Pinhole) Permanent() bool { return p.Expires.IsZero() }

// Validate checks the fields the datapath needs.
func (p Pinhole) Validate() error {
	var problems []string
	if p.Proto != TCP && p.Proto != UDP {
		problems = append(problems, fmt.Sprintf("protocol %d is not tcp or udp", uint8(p.Proto)))
	}
	a := p.Internal.Addr()
	if !a.Is6() || a.Is4In6() || !a.IsGlobalUnicast() {
		problems = append(problems, fmt.Sprintf("internal address %v is not a global IPv6 address", a))
	}
	if p.Internal.Port() == 0 {
		problems = append(problems, "internal port 0")
	}
	if r := p.Remote; r.IsValid() && (!r.Is6() || r.Is4In6() || r.IsUnspecified() || r.IsMulticast()) {
		problems = append(problems, fmt.Sprintf("remote host %v is not an IPv6 host", r))
	}
	if len(p.Description) > 256 {
		problems = append(problems, "description longer than 256 bytes")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w %v: %s", ErrInvalid, p.PinholeKey, strings.Join(problems, "; "))
	}
	return nil
}
