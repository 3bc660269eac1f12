package nat44

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// Map grants a mapping for r: a renewal of the requester's own mapping on
// the same key (or, with r.ByInternal, of the same internal endpoint), the
// suggested external port when it is free and allowed, else (unless
// r.Exact) the free allowed port nearest to it. The mapping is in the
// kernel and on disk when Map returns it. Refusals wrap ErrInvalid,
// ErrNotAllowed, ErrNotOwner, ErrConflict, ErrHostLimit, ErrTableFull,
// ErrNoPort or ErrNoWAN.
func (n *NAT) Map(r Request) (Mapping, error) {
	n.mu.Lock()
	m, recs, err := n.mapLocked(r)
	if err != nil {
		if errors.Is(err, ErrConflict) {
			n.counters.Conflicts++
		} else if !errors.Is(err, ErrInvalid) {
			n.counters.Refused++
		}
		n.mu.Unlock()
		return Mapping{}, err
	}
	wait := n.submitLocked(recs)
	n.mu.Unlock()
	if err := wait(); err != nil {
		return Mapping{}, fmt.Errorf("nat44: mapping %v not saved: %w", m.Key(), err)
	}
	return m, nil
}

func (n *NAT) mapLocked(r Request) (Mapping, []any, error) {
	now := n.clock.Now()
	if r.Proto != TCP && r.Proto != UDP {
		return Mapping{}, nil, fmt.Errorf("%w: protocol %d is not tcp or udp", ErrInvalid, uint8(r.Proto))
	}
	if r.Owner == OwnerStatic || (r.Owner != OwnerAdmin && !r.Owner.Protocol()) {
		return Mapping{}, nil, fmt.Errorf("%w: owner %q cannot request mappings", ErrInvalid, r.Owner)
	}
	lifetime, err := n.lifetimeLocked(r.Owner, r.Lifetime)
	if err != nil {
		return Mapping{}, nil, err
	}
	want := Mapping{
		Proto: r.Proto, ExternalPort: r.ExternalPort, Internal: r.Internal, Remote: r.Remote,
		Owner: r.Owner, Description: r.Description, Lifetime: lifetime, Nonce: r.Nonce,
	}
	if lifetime > 0 {
		want.Expires = now.Add(lifetime)
	}
	probe := want
	if probe.ExternalPort == 0 {
		probe.ExternalPort = 1 // validated apart from the port, which may be "any"
	}
	if err := probe.Validate(); err != nil {
		return Mapping{}, nil, err
	}
	var allowed []PortRange
	if r.Owner.Protocol() {
		if !n.wan.IsValid() {
			return Mapping{}, nil, ErrNoWAN
		}
		if err := n.checkClientLocked(r.Client, r.Internal.Addr()); err != nil {
			return Mapping{}, nil, err
		}
		allowed = n.policy.allowed(r.Internal)
	} else {
		allowed = []PortRange{{1, 65535}}
	}

	// A renewal: the same key held by the same internal endpoint, or
	// (NAT-PMP, PCP) the internal endpoint's own mapping.
	if old, ok := n.renewableLocked(r); ok {
		if err := n.mayChangeLocked(r.Owner, r.Client, old.owned(), r.Nonce, r.Owner == OwnerPCP); err != nil {
			return Mapping{}, nil, err
		}
		if old.Owner == OwnerStatic {
			return old, nil, nil // granted by the config's forward, as it stands
		}
		want.ExternalPort = old.ExternalPort
		return n.putLocked(want, old, true)
	}

	if r.Owner.Protocol() && n.table.HostLen(r.Internal.Addr()) >= n.policy.HostLimit {
		return Mapping{}, nil, fmt.Errorf("%w: %v holds %d", ErrHostLimit, r.Internal.Addr(), n.policy.HostLimit)
	}
	if n.table.Len() >= n.policy.TableLimit {
		return Mapping{}, nil, fmt.Errorf("%w (%d mappings)", ErrTableFull, n.policy.TableLimit)
	}
	port, err := n.pickPortLocked(r, allowed)
	if err != nil {
		return Mapping{}, nil, err
	}
	want.ExternalPort = port
	return n.putLocked(want, Mapping{}, false)
}

// lifetimeLocked is the lifetime a request gets: the administrator's as
// asked (0: permanent); a protocol's clamped to the policy's range, and
// 0 ("as long as possible") the maximum unless UPnP may map for ever.
func (n *NAT) lifetimeLocked(o Owner, d time.Duration) (time.Duration, error) {
	if d < 0 {
		return 0, fmt.Errorf("%w: negative lifetime", ErrInvalid)
	}
	if !o.Protocol() {
		return d, nil
	}
	if d == 0 {
		if o == OwnerUPnP && n.policy.PermanentUPnP {
			return 0, nil
		}
		return n.policy.MaxLifetime, nil
	}
	return min(max(d, n.policy.MinLifetime), n.policy.MaxLifetime), nil
}

// checkClientLocked applies secure mode and the LAN boundary to a
// protocol request from client for internal host h.
func (n *NAT) checkClientLocked(client, h netip.Addr) error {
	if !client.IsValid() {
		return fmt.Errorf("%w: no client address", ErrInvalid)
	}
	if !n.policy.AllowThirdParty && client.Unmap() != h.Unmap() {
		return fmt.Errorf("%w: %v may map ports only for itself, not for %v (secure mode)", ErrNotAllowed, client, h)
	}
	if len(n.lans) > 0 && !slices.ContainsFunc(n.lans, func(p netip.Prefix) bool { return p.Contains(h) }) {
		return fmt.Errorf("%w: %v is not on a LAN subnet", ErrNotAllowed, h)
	}
	return nil
}

// renewableLocked finds the mapping that r renews, if any.
func (n *NAT) renewableLocked(r Request) (Mapping, bool) {
	if r.ExternalPort != 0 {
		if old, ok := n.table.Get(Key{r.Proto, r.ExternalPort}); ok && old.Internal == r.Internal {
			return old, true
		}
	}
	if r.ByInternal {
		for _, m := range n.table.ByHost(r.Internal.Addr()) {
			if m.Proto == r.Proto && m.Internal == r.Internal && m.Owner != OwnerStatic {
				return m, true
			}
		}
	}
	return Mapping{}, false
}

// mayChangeLocked says whether owner o, asking from client, may renew or
// delete m: never a static forward (except to be granted it as it
// stands, which the caller handles); a protocol only its own host's
// mappings (unless secure mode is off) and, for PCP, with the mapping's
// nonce; the administrator any other.
func (n *NAT) mayChangeLocked(o Owner, client netip.Addr, e owned, nonce Nonce, checkNonce bool) error {
	if e.owner == OwnerStatic {
		if o.Protocol() && client.Unmap() == e.host {
			return nil
		}
		return fmt.Errorf("%w: %s is a static forward of the config", ErrNotOwner, e.what)
	}
	if !o.Protocol() {
		return nil
	}
	if client.Unmap() != e.host && !n.policy.AllowThirdParty {
		return fmt.Errorf("%w: %s belongs to %v", ErrNotOwner, e.what, e.host)
	}
	if checkNonce && e.owner == OwnerPCP && e.nonce != nonce {
		return fmt.Errorf("%w: %s: wrong nonce", ErrNotOwner, e.what)
	}
	return nil
}

// owned is what the ownership rules read of a mapping or a pinhole.
type owned struct {
	what  string // names it in errors
	owner Owner
	host  netip.Addr
	nonce Nonce
}

func (m Mapping) owned() owned { return owned{m.Key().String(), m.Owner, m.Host(), m.Nonce} }
func (p Pinhole) owned() owned {
	return owned{"pinhole " + p.Key().String(), p.Owner, p.Host(), p.Nonce}
}

// pickPortLocked chooses the external port of a new mapping.
func (n *NAT) pickPortLocked(r Request, allowed []PortRange) (uint16, error) {
	reserved := func(p uint16) bool { return n.reserved[Key{r.Proto, p}] }
	ok := func(p uint16) bool {
		return p != 0 && !reserved(p) && slices.ContainsFunc(allowed, func(a PortRange) bool { return a.Contains(p) })
	}
	if p := r.ExternalPort; p != 0 {
		switch {
		case ok(p) && !n.table.Taken(Key{r.Proto, p}):
			return p, nil
		case r.Exact && !ok(p):
			return 0, fmt.Errorf("%w: external port %v/%d", ErrNotAllowed, r.Proto, p)
		case r.Exact:
			old, _ := n.table.Get(Key{r.Proto, p})
			return 0, fmt.Errorf("%w: %v/%d is mapped to %v (%s)", ErrConflict, r.Proto, p, old.Internal, old.Owner)
		}
	}
	want := r.ExternalPort
	if want == 0 {
		want = r.Internal.Port() // port preservation where it can be had
	}
	best, found := 0, false
	for _, a := range allowed {
		p, ok := n.table.Nearest(r.Proto, want, max(a.Lo, 1), a.Hi, reserved)
		if ok && (!found || dist(p, want) < dist(uint16(best), want)) {
			best, found = int(p), true
		}
	}
	if !found {
		return 0, fmt.Errorf("%w: no allowed %v port is free for %v", ErrNoPort, r.Proto, r.Internal)
	}
	return uint16(best), nil
}

func dist(a, b uint16) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// putLocked stores m (replacing old when renewing), installs it and
// returns the records that make it durable; a kernel refusal undoes it.
func (n *NAT) putLocked(m, old Mapping, renewing bool) (Mapping, []any, error) {
	if renewing {
		n.table.Replace(m)
	} else if err := n.table.Put(m, n.clock.Now()); err != nil {
		return Mapping{}, nil, err
	}
	n.touchLocked(m.Key())
	if err := n.applyIfRunningLocked(); err != nil {
		if renewing {
			n.table.Replace(old)
		} else {
			n.table.Delete(m.Key())
		}
		n.touchLocked(m.Key())
		n.applyLogLocked()
		return Mapping{}, nil, err
	}
	kind := MappingAdded
	if renewing {
		kind = MappingRenewed
	} else {
		n.log.Info("mapping added", slog.String("key", m.Key().String()), slog.String("internal", m.Internal.String()), slog.String("owner", string(m.Owner)), slog.String("description", m.Description))
	}
	n.feed.publish(Event{Kind: kind, Mapping: m})
	signal(n.wake) // Run re-arms its timer for the new expiry
	return m, n.putRecordLocked(m, old, renewing), nil
}

// Unmap deletes the mappings with keys for rel: a protocol only its own
// host's mappings (with the nonce, for PCP, when rel.CheckNonce), the
// administrator any but static ones. All or nothing; a missing key is
// ErrNotFound.
func (n *NAT) Unmap(rel Release, keys ...Key) error {
	n.mu.Lock()
	var ms []Mapping
	for _, k := range keys {
		m, ok := n.table.Get(k)
		if !ok {
			n.mu.Unlock()
			return fmt.Errorf("%w: %v", ErrNotFound, k)
		}
		if err := n.mayChangeLocked(rel.Owner, rel.Client, m.owned(), rel.Nonce, rel.CheckNonce); err != nil || m.Owner == OwnerStatic {
			if err == nil {
				err = fmt.Errorf("%w: %v is a static forward of the config", ErrNotOwner, k)
			}
			n.counters.Refused++
			n.mu.Unlock()
			return err
		}
		ms = append(ms, m)
	}
	recs, err := n.deleteLocked(ms, "deleted")
	if err != nil {
		n.mu.Unlock()
		return err
	}
	wait := n.submitLocked(recs)
	n.mu.Unlock()
	return wait()
}

// UnmapHost deletes every mapping of host that rel may delete, of proto
// (0: both) and, for a protocol, made by that protocol (NAT-PMP's
// delete-all, RFC 6886 §3.4), and returns them.
func (n *NAT) UnmapHost(rel Release, host netip.Addr, proto Proto) ([]Mapping, error) {
	n.mu.Lock()
	var ms []Mapping
	for _, m := range n.table.ByHost(host) {
		if (proto != 0 && m.Proto != proto) || m.Owner == OwnerStatic || (rel.Owner.Protocol() && m.Owner != rel.Owner) {
			continue
		}
		if n.mayChangeLocked(rel.Owner, rel.Client, m.owned(), rel.Nonce, rel.CheckNonce) != nil {
			continue
		}
		ms = append(ms, m)
	}
	recs, err := n.deleteLocked(ms, "deleted")
	if err != nil {
		n.mu.Unlock()
		return nil, err
	}
	wait := n.submitLocked(recs)
	n.mu.Unlock()
	return ms, wait()
}

// deleteLocked removes ms from the table and the kernel, all or none.
func (n *NAT) deleteLocked(ms []Mapping, reason string) ([]any, error) {
	for _, m := range ms {
		n.table.Delete(m.Key())
		n.touchLocked(m.Key())
	}
	if err := n.applyIfRunningLocked(); err != nil {
		for _, m := range ms {
			n.table.Replace(m)
			n.touchLocked(m.Key())
		}
		n.applyLogLocked()
		return nil, err
	}
	var recs []any
	for _, m := range ms {
		recs = append(recs, n.delRecordLocked(m)...)
		n.feed.publish(Event{Kind: MappingRemoved, Mapping: m, Reason: reason})
	}
	return recs, nil
}

// HostMappings returns the mappings of internal host h.
func (n *NAT) HostMappings(h netip.Addr) []Mapping {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.ByHost(h)
}

// OpenPinhole opens or renews an IPv6 pinhole for r, under the same
// owner, policy and limit rules as Map. While NAT66 is on, a ULA host's
// pinhole holds its port on the NAT66 address: another ULA host asking for
// that protocol and port is refused with ErrConflict.
func (n *NAT) OpenPinhole(r PinholeRequest) (Pinhole, error) {
	n.mu.Lock()
	p, recs, err := n.openPinholeLocked(r)
	if err != nil {
		if errors.Is(err, ErrConflict) {
			n.counters.Conflicts++
		} else if !errors.Is(err, ErrInvalid) {
			n.counters.Refused++
		}
		n.mu.Unlock()
		return Pinhole{}, err
	}
	wait := n.submitLocked(recs)
	n.mu.Unlock()
	if err := wait(); err != nil {
		return Pinhole{}, fmt.Errorf("nat44: pinhole %v not saved: %w", p.Key(), err)
	}
	return p, nil
}

func (n *NAT) openPinholeLocked(r PinholeRequest) (Pinhole, []any, error) {
	if r.Owner == OwnerStatic || (r.Owner != OwnerAdmin && !r.Owner.Protocol()) {
		return Pinhole{}, nil, fmt.Errorf("%w: owner %q cannot open pinholes", ErrInvalid, r.Owner)
	}
	lifetime, err := n.lifetimeLocked(r.Owner, r.Lifetime)
	if err != nil {
		return Pinhole{}, nil, err
	}
	now := n.clock.Now()
	p := Pinhole{
		PinholeKey: PinholeKey{Proto: r.Proto, Internal: r.Internal, Remote: r.Remote},
		Owner:      r.Owner, Description: r.Description, Lifetime: lifetime, Nonce: r.Nonce,
	}
	if lifetime > 0 {
		p.Expires = now.Add(lifetime)
	}
	if err := p.Validate(); err != nil {
		return Pinhole{}, nil, err
	}
	if r.Owner.Protocol() {
		if err := n.checkClientLocked(r.Client, r.Internal.Addr()); err != nil {
			return Pinhole{}, nil, err
		}
	}
	old, had := n.pins.Get(p.Key())
	if had {
		if err := n.mayChangeLocked(r.Owner, r.Client, old.owned(), r.Nonce, r.Owner == OwnerPCP); err != nil {
			return Pinhole{}, nil, err
		}
	} else {
		if err := n.nat66ConflictLocked(p.PinholeKey); err != nil {
			return Pinhole{}, nil, err
		}
		if r.Owner.Protocol() && n.pins.HostLen(r.Internal.Addr()) >= n.policy.HostLimit {
			return Pinhole{}, nil, fmt.Errorf("%w: %v holds %d pinholes", ErrHostLimit, r.Internal.Addr(), n.policy.HostLimit)
		}
		if n.pins.Len() >= n.policy.TableLimit {
			return Pinhole{}, nil, fmt.Errorf("%w (%d pinholes)", ErrTableFull, n.policy.TableLimit)
		}
	}
	p, err = n.pins.Put(p, now)
	if err != nil {
		return Pinhole{}, nil, err
	}
	n.touchPinLocked(p.Key())
	if err := n.applyIfRunningLocked(); err != nil {
		if had {
			n.pins.Put(old, now)
		} else {
			n.pins.Delete(p.Key())
		}
		n.touchPinLocked(p.Key())
		n.applyLogLocked()
		return Pinhole{}, nil, err
	}
	kind := PinholeAdded
	if had {
		kind = PinholeRenewed
	} else {
		n.log.Info("pinhole opened", slog.String("pinhole", p.Key().String()), slog.String("owner", string(p.Owner)))
	}
	n.feed.publish(Event{Kind: kind, Pinhole: p})
	signal(n.wake)
	return p, n.pinRecordLocked(p, old, had), nil
}

// nat66ConflictLocked refuses a new pinhole for a ULA host on a protocol
// and port that another ULA host holds while NAT66 is on (ErrConflict):
// behind one external address, the port can lead to one host only; and
// on a port reserved for the router (ErrNotAllowed).
func (n *NAT) nat66ConflictLocked(k PinholeKey) error {
	if (len(n.nat66) == 0 && !n.nat66IP.IsValid()) || !IsULA(k.Internal.Addr()) {
		return nil
	}
	if n.reserved[k.nat66Key()] {
		// The router's own ports (WAN input, DHCPv6 client) on the
		// NAT66 address stay the router's.
		return fmt.Errorf("%w: %v/%d is reserved for the router", ErrNotAllowed, k.Proto, k.Internal.Port())
	}
	if ap, ok := n.pins.NAT66Target(k.nat66Key()); ok && ap.Addr() != k.Internal.Addr() {
		return fmt.Errorf("%w: %v/%d on the NAT66 address leads to %v", ErrConflict, k.Proto, k.Internal.Port(), ap.Addr())
	}
	return nil
}

// ClosePinhole closes the pinhole with key k for rel: a protocol only its
// own host's (with the nonce for PCP when rel.CheckNonce), the
// administrator any.
func (n *NAT) ClosePinhole(rel Release, k PinholeKey) error {
	n.mu.Lock()
	p, ok := n.pins.Get(k)
	if !ok {
		n.mu.Unlock()
		return fmt.Errorf("%w: pinhole %v", ErrNotFound, k)
	}
	if err := n.mayChangeLocked(rel.Owner, rel.Client, p.owned(), rel.Nonce, rel.CheckNonce); err != nil {
		n.counters.Refused++
		n.mu.Unlock()
		return err
	}
	n.pins.Delete(k)
	n.touchPinLocked(k)
	if err := n.applyIfRunningLocked(); err != nil {
		n.pins.Put(p, n.clock.Now())
		n.touchPinLocked(k)
		n.applyLogLocked()
		n.mu.Unlock()
		return err
	}
	n.feed.publish(Event{Kind: PinholeRemoved, Pinhole: p, Reason: "deleted"})
	wait := n.submitLocked(n.unpinRecordLocked(p))
	n.mu.Unlock()
	return wait()
}

// Pinholes lists the pinholes, ordered by ID.
func (n *NAT) Pinholes() []Pinhole {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pins.List()
}

// Pinhole returns the pinhole with UniqueID id.
func (n *NAT) Pinhole(id uint16) (Pinhole, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pins.ByID(id)
}

// PinholePackets is how many packets the pinhole with UniqueID id has let
// in since it was installed; errors.ErrUnsupported when the datapath
// does not count them.
func (n *NAT) PinholePackets(id uint16) (uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pins.ByID(id)
	if !ok {
		return 0, fmt.Errorf("%w: pinhole %d", ErrNotFound, id)
	}
	pc, ok := n.dp.(PacketCounter)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	counts, err := pc.PinholePackets()
	if err != nil {
		return 0, err
	}
	return counts[p.Key()], nil
}

// Epoch is the time since the mapping state was last lost or the external
// address changed (PCP and NAT-PMP epoch, RFC 6887 §8.5).
func (n *NAT) Epoch() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.clock.Now().Sub(n.epoch.Start)
}
