// Package nat44 is the gateway's IPv4 packet-filter program: NAT44
// (masquerade, port mappings, hairpinning, the UDP filtering behaviour of
// RFC 4787) and the forwarding policy, kept in one nftables table that the
// daemon owns. Its mapping table is the one API that UPnP, NAT-PMP, PCP,
// the web panel and the static forwards of the config all share.
package nat44

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Proto is an IP protocol number that a mapping can carry.
type Proto uint8

// The protocols a mapping can carry.
const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProto reads "tcp" or "udp" (any case).
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("nat44: unknown protocol %q (want tcp or udp)", s)
}

// MarshalText makes protocols readable in the state file and the JSON API.
func (p Proto) MarshalText() ([]byte, error) {
	if p != TCP && p != UDP {
		return nil, fmt.Errorf("nat44: cannot marshal protocol %d", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (p *Proto) UnmarshalText(b []byte) error {
	v, err := ParseProto(string(b))
	*p = v
	return err
}

// Owners of mappings. Owner is free text for callers; these are the ones the
// daemon uses.
const (
	OwnerStatic = "static" // from the config file; never persisted in the state file
	OwnerUPnP   = "upnp"
	OwnerNATPMP = "natpmp"
	OwnerPCP    = "pcp"
	OwnerWeb    = "web"
)

// Key identifies a mapping: one external port of one protocol on the WAN
// address.
type Key struct {
	Proto        Proto  `json:"proto"`
	ExternalPort uint16 `json:"external_port"`
}

func (k Key) String() string { return fmt.Sprintf("%s/%d", k.Proto, k.ExternalPort) }

// Mapping is a port mapping (a "port forward"): packets that reach the WAN
// address on Proto/ExternalPort are sent to Internal, and so are packets from
// the LAN to that address and port (NAT loopback, RFC 4787 REQ-9).
type Mapping struct {
	Proto        Proto          `json:"proto"`
	ExternalPort uint16         `json:"external_port"`
	Internal     netip.AddrPort `json:"internal"`
	// Expires is when the mapping ends; the zero time means never.
	Expires     time.Time `json:"expires,omitzero"`
	Owner       string    `json:"owner"`
	Description string    `json:"description,omitempty"`
}

// Key is the mapping's identity in the table.
func (m Mapping) Key() Key { return Key{m.Proto, m.ExternalPort} }

// Permanent reports whether the mapping never expires.
func (m Mapping) Permanent() bool { return m.Expires.IsZero() }

// ErrConflict is returned when the external port of a new mapping is held by
// a mapping to another internal endpoint.
var ErrConflict = errors.New("nat44: external port already mapped to another host")

// ErrNotFound is returned when removing a mapping that does not exist.
var ErrNotFound = errors.New("nat44: no such mapping")

// ErrInvalid wraps every validation failure of a mapping.
var ErrInvalid = errors.New("nat44: invalid mapping")

// Validate checks the fields a datapath needs.
func (m Mapping) Validate() error {
	var problems []string
	if m.Proto != TCP && m.Proto != UDP {
		problems = append(problems, fmt.Sprintf("protocol %d is not tcp or udp", uint8(m.Proto)))
	}
	if m.ExternalPort == 0 {
		problems = append(problems, "external port 0")
	}
	a := m.Internal.Addr()
	switch {
	case !a.Is4():
		problems = append(problems, fmt.Sprintf("internal address %v is not IPv4", a))
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		problems = append(problems, fmt.Sprintf("internal address %v cannot receive a mapping", a))
	}
	if m.Internal.Port() == 0 {
		problems = append(problems, "internal port 0")
	}
	if len(m.Description) > 256 {
		problems = append(problems, "description longer than 256 bytes")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w %v: %s", ErrInvalid, m.Key(), strings.Join(problems, "; "))
	}
	return nil
}
