package nat44

import (
	"net/netip"
	"time"
)

// Request asks the mapping service for an IPv4 port mapping on behalf of a
// protocol (UPnP, NAT-PMP, PCP) or the administrator. Protocol requests go
// through the request policy (Policy); the administrator's do not.
type Request struct {
	Owner Owner
	// Client is the LAN address the request came from. For protocol
	// owners the policy allows, in secure mode, only Internal's address.
	Client netip.Addr
	Proto  Proto
	// ExternalPort is the external port asked for (NAT-PMP's suggested
	// port, PCP's suggested port, UPnP's NewExternalPort); 0 means any.
	ExternalPort uint16
	// Exact asks for ExternalPort or nothing (IGDv1 AddPortMapping, PCP
	// PREFER_FAILURE): a taken or refused port fails the request instead
	// of granting the nearest free allowed one.
	Exact bool
	// ByInternal makes the internal endpoint the mapping's identity, as in
	// NAT-PMP and PCP (RFC 6886 §3.3, RFC 6887 §11.3): a request for an
	// internal endpoint that already has a mapping of Proto renews that
	// mapping, whatever ExternalPort says.
	ByInternal bool
	Internal   netip.AddrPort
	// Remote limits the mapping to one remote host (UPnP NewRemoteHost,
	// PCP FILTER); invalid means any.
	Remote netip.Addr
	// Lifetime is the lease asked for; 0 asks for a permanent mapping,
	// which only the administrator and UPnP get (the policy clamps it).
	Lifetime    time.Duration
	Description string
	Nonce       Nonce // PCP: the MAP's nonce, checked on renewal
}

// Release asks the mapping service to delete mappings.
type Release struct {
	Owner  Owner
	Client netip.Addr // the requester; protocols may delete only its own host's mappings
	// Nonce, when CheckNonce is set, must match the mapping's (PCP).
	Nonce      Nonce
	CheckNonce bool
}

// PinholeRequest asks for an IPv6 pinhole, under the same owner, policy
// and limit rules as Request.
type PinholeRequest struct {
	Owner       Owner
	Client      netip.Addr
	Proto       Proto
	Internal    netip.AddrPort
	Remote      netip.Addr
	Lifetime    time.Duration
	Description string
	Nonce       Nonce
}

// EventKind says what an Event reports.
type EventKind int

// The events of the change feed.
const (
	MappingAdded   EventKind = iota + 1 // a new mapping (also a new static forward)
	MappingRenewed                      // the same mapping with a new expiry or description
	MappingRemoved                      // deleted, expired, or displaced by a static forward
	PinholeAdded
	PinholeRenewed
	PinholeRemoved
	WANChanged // the WAN address changed (Event.WAN); every mapping moved with it
	EpochReset // the mapping state was lost or the external address changed: PCP/NAT-PMP epoch restarts
	Overflow   // the subscriber fell behind and Lost events were dropped: re-read the table
)

// Event is one change of the mapping state, delivered to subscribers in
// order.
type Event struct {
	Kind    EventKind
	Mapping Mapping    // for Mapping*
	Pinhole Pinhole    // for Pinhole*
	Reason  string     // for *Removed: "expired", "deleted", "replaced"
	WAN     netip.Addr // for WANChanged
	Lost    int        // for Overflow
}
