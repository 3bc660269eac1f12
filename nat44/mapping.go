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

// Owner is who made a mapping: the config, the administrator, or one of
// the port-mapping protocols. It decides what may change the mapping.
type Owner string

// The owners.
const (
	OwnerStatic Owner = "static" // the config's redirect sections; never persisted, changed only by the config
	OwnerAdmin  Owner = "admin"  // the administrator through the API (CLI, panel)
	OwnerUPnP   Owner = "upnp"
	OwnerNATPMP Owner = "natpmp"
	OwnerPCP    Owner = "pcp"
)

var owners = []Owner{OwnerStatic, OwnerAdmin, OwnerUPnP, OwnerNATPMP, OwnerPCP}

// Protocol reports whether o is a port-mapping protocol, whose requests go
// through the request policy and may touch only their own host's mappings.
func (o Owner) Protocol() bool { return o == OwnerUPnP || o == OwnerNATPMP || o == OwnerPCP }

// ParseOwner reads an owner's name. "web", the admin's name in state files
// written before owners had kinds, reads as OwnerAdmin.
func ParseOwner(s string) (Owner, error) {
	if s == "web" {
		return OwnerAdmin, nil
	}
	for _, o := range owners {
		if string(o) == s {
			return o, nil
		}
	}
	return "", fmt.Errorf("nat44: unknown owner %q", s)
}

// UnmarshalText is ParseOwner.
func (o *Owner) UnmarshalText(b []byte) error {
	v, err := ParseOwner(string(b))
	*o = v
	return err
}

// Nonce is the PCP mapping nonce (RFC 6887 §11.1): a client must show it to
// renew or delete its mapping.
type Nonce [12]byte

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
	// Remote, when valid, is the only remote host whose packets the
	// mapping lets in (UPnP NewRemoteHost, PCP FILTER); the kernel
	// enforces it. Invalid means any remote host.
	Remote netip.Addr `json:"remote,omitzero"`
	// Expires is when the mapping ends; the zero time means never.
	Expires     time.Time `json:"expires,omitzero"`
	Owner       Owner     `json:"owner"`
	Description string    `json:"description,omitempty"`
	// Lifetime is the lifetime the client asked for (PCP's requested
	// lifetime, NAT-PMP's, UPnP's NewLeaseDuration); 0 for permanent
	// mappings.
	Lifetime time.Duration `json:"lifetime,omitempty"`
	// Nonce is the PCP nonce of the MAP request that made the mapping.
	Nonce Nonce `json:"nonce,omitzero"`
}

// Host is the internal host the mapping belongs to.
func (m Mapping) Host() netip.Addr { return m.Internal.Addr() }

// Key is the mapping's identity in the table.
func (m Mapping) Key() Key { return Key{m.Proto, m.ExternalPort} }

// Permanent reports whether the mapping never expires.
func (m Mapping) Permanent() bool { return m.Expires.IsZero() }

// Errors of the mapping service. Each protocol turns them into its own
// result codes (NAT-PMP, PCP, UPnP's SOAP faults); errors.Is tells them
// apart.
var (
	// ErrConflict: the external port is held by a mapping to another
	// internal endpoint (and the request asked for that port or nothing).
	ErrConflict = errors.New("nat44: external port already mapped to another host")
	// ErrNotFound: no such mapping or pinhole.
	ErrNotFound = errors.New("nat44: no such mapping")
	// ErrInvalid wraps every validation failure of a mapping or request.
	ErrInvalid = errors.New("nat44: invalid mapping")
	// ErrNotAllowed: the permission rules or secure mode refuse the
	// request (a host asking for another host, a port outside the allowed
	// ranges).
	ErrNotAllowed = errors.New("nat44: not allowed by the mapping rules")
	// ErrNotOwner: the mapping belongs to the config, to another host or
	// to another owner, or the PCP nonce does not match.
	ErrNotOwner = errors.New("nat44: the mapping belongs to someone else")
	// ErrHostLimit: the internal host holds as many mappings as it may.
	ErrHostLimit = errors.New("nat44: too many mappings for this host")
	// ErrTableFull: the table holds as many mappings as it may.
	ErrTableFull = errors.New("nat44: mapping table full")
	// ErrNoPort: no external port that the rules allow is free.
	ErrNoPort = errors.New("nat44: no free external port")
	// ErrNoWAN: the WAN has no address to map (NAT-PMP's and PCP's
	// network failure).
	ErrNoWAN = errors.New("nat44: the WAN has no IPv4 address")
)

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
	if m.Remote.IsValid() && (!m.Remote.Is4() || m.Remote.IsUnspecified()) {
		problems = append(problems, fmt.Sprintf("remote host %v is not an IPv4 host", m.Remote))
	}
	if len(m.Description) > 256 {
		problems = append(problems, "description longer than 256 bytes")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w %v: %s", ErrInvalid, m.Key(), strings.Join(problems, "; "))
	}
	return nil
}
