package nat44

import (
	"errors"
	"net/netip"
	"time"
)

// Map grants a mapping for r: a renewal of the requester's own mapping on
// the same key, the suggested external port when free and allowed, else
// (unless r.Exact) the nearest free allowed port. The mapping is in the
// kernel and on disk when Map returns it.
func (n *NAT) Map(r Request) (Mapping, error) { return Mapping{}, errors.ErrUnsupported }

// Unmap deletes the mappings with keys for rel: a protocol only its own
// host's mappings of its own kind, the administrator any but static ones.
// All or nothing; a missing key is ErrNotFound.
func (n *NAT) Unmap(rel Release, keys ...Key) error { return errors.ErrUnsupported }

// UnmapHost deletes every mapping of host that rel may delete, of proto
// (0: both), and returns them (NAT-PMP's delete-all, a PCP client's
// cleanup).
func (n *NAT) UnmapHost(rel Release, host netip.Addr, proto Proto) ([]Mapping, error) {
	return nil, errors.ErrUnsupported
}

// HostMappings returns the mappings of internal host h.
func (n *NAT) HostMappings(h netip.Addr) []Mapping { return nil }

// OpenPinhole opens or renews an IPv6 pinhole for r.
func (n *NAT) OpenPinhole(r PinholeRequest) (Pinhole, error) { return Pinhole{}, errors.ErrUnsupported }

// ClosePinhole closes the pinhole with key k for rel.
func (n *NAT) ClosePinhole(rel Release, k PinholeKey) error { return errors.ErrUnsupported }

// Pinholes lists the pinholes, ordered by ID.
func (n *NAT) Pinholes() []Pinhole { return nil }

// Epoch is the time since the mapping state was last lost or the external
// address changed (PCP and NAT-PMP epoch, RFC 6887 §8.5).
func (n *NAT) Epoch() time.Duration { return 0 }

// Subscribe returns the change feed: every Event from now on, in order,
// until cancel is called. A subscriber that falls behind gets an Overflow
// event and should re-read the table.
func (n *NAT) Subscribe() (events <-chan Event, cancel func()) { return nil, func() {} }

// SetOutside sets the interfaces that face the internet besides the WAN
// (the 6to4 and Teredo TUN devices).
func (n *NAT) SetOutside(ifaces []string) error { return errors.ErrUnsupported }

// SetLANPrefixes tells the policy which IPv4 and IPv6 subnets are the
// LAN's: a mapping or pinhole may point only there.
func (n *NAT) SetLANPrefixes(ps []netip.Prefix) {}
