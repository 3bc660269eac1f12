package nat44

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// Add installs mappings for a trusted caller (the administrator's batch
// API, tests, benchmarks), all or none: a conflict, an invalid mapping or
// a static forward's port refuses the whole batch and changes nothing. A
// mapping whose key is held by the same internal endpoint is renewed. It
// bypasses the request policy but not the table limit. When Add returns
// nil the mappings are in the kernel and on disk.
func (n *NAT) Add(ms ...Mapping) error {
	n.mu.Lock()
	now := n.clock.Now()
	type undo struct {
		k   Key
		old Mapping
		had bool
	}
	var undos []undo
	rollback := func() {
		for i := len(undos) - 1; i >= 0; i-- {
			u := undos[i]
			if u.had {
				n.table.Replace(u.old)
			} else {
				n.table.Delete(u.k)
			}
			n.touchLocked(u.k)
		}
	}
	fail := func(err error) error {
		rollback()
		if errors.Is(err, ErrConflict) {
			n.counters.Conflicts++
		}
		n.mu.Unlock()
		return err
	}
	var recs []any
	var events []Event
	for _, m := range ms {
		if m.Owner == OwnerStatic {
			return fail(fmt.Errorf("%w: static forwards come from the config (SetStatic)", ErrInvalid))
		}
		old, had := n.table.Get(m.Key())
		if had && old.Owner == OwnerStatic {
			// A static forward belongs to the config: a request for the
			// same target is granted by it as it stands, and must not make
			// it expire; a request for another target is a conflict.
			if old.Internal == m.Internal {
				continue
			}
			return fail(fmt.Errorf("%w: %v is a static forward to %v", ErrConflict, m.Key(), old.Internal))
		}
		if !had && n.table.Len() >= n.policy.TableLimit {
			return fail(fmt.Errorf("%w (%d mappings)", ErrTableFull, n.policy.TableLimit))
		}
		n.touchLocked(m.Key())
		if err := n.table.Put(m, now); err != nil {
			return fail(err)
		}
		undos = append(undos, undo{m.Key(), old, had})
		recs = append(recs, n.putRecordLocked(m, old, had)...)
		kind := MappingAdded
		if had {
			kind = MappingRenewed
		}
		events = append(events, Event{Kind: kind, Mapping: m})
	}
	if err := n.applyIfRunningLocked(); err != nil {
		rollback()
		n.applyLogLocked() // put the kernel back in step with the table
		// The records were not submitted: forget what durable learnt.
		for _, u := range undos {
			if n.store != nil {
				delete(n.store.durable, u.k)
			}
		}
		n.mu.Unlock()
		return err
	}
	for _, e := range events {
		n.feed.publish(e)
	}
	wait := n.submitLocked(recs)
	signal(n.wake)
	n.mu.Unlock()
	return wait()
}

// Remove deletes mappings for a trusted caller (the administrator), all or
// none: a missing key refuses the batch with ErrNotFound, a static forward
// with ErrNotOwner (it belongs to the config).
func (n *NAT) Remove(keys ...Key) error {
	return n.Unmap(Release{Owner: OwnerAdmin}, keys...)
}

// SetStatic makes the static forwards of the config exactly ms: static
// mappings not in ms go, those in ms win over any dynamic mapping on their
// port (the administrator's word is final; the displaced one is logged).
func (n *NAT) SetStatic(static []Mapping) error {
	ms := slices.Clone(static) // the caller's slice stays as it was
	for i := range ms {
		ms[i].Owner = OwnerStatic
		ms[i].Expires = time.Time{}
		if err := ms[i].Validate(); err != nil {
			return err
		}
	}
	n.mu.Lock()
	want := make(map[Key]bool, len(ms))
	for _, m := range ms {
		if want[m.Key()] {
			n.mu.Unlock()
			return fmt.Errorf("%w: static forward %v given twice", ErrConflict, m.Key())
		}
		want[m.Key()] = true
	}
	var stale []Mapping
	n.table.All(func(m Mapping) {
		if m.Owner == OwnerStatic && !want[m.Key()] {
			stale = append(stale, m)
		}
	})
	for _, m := range stale {
		n.table.Delete(m.Key())
		n.touchLocked(m.Key())
		n.feed.publish(Event{Kind: MappingRemoved, Mapping: m, Reason: "deleted"})
	}
	var recs []any
	for _, m := range ms {
		old, had, _ := n.table.Replace(m)
		n.touchLocked(m.Key())
		switch {
		case had && old.Owner != OwnerStatic:
			n.log.Warn("static forward replaces a mapping", slog.String("key", m.Key().String()), slog.String("was", old.Internal.String()), slog.String("owner", string(old.Owner)))
			recs = append(recs, n.delRecordLocked(old)...)
			n.feed.publish(Event{Kind: MappingRemoved, Mapping: old, Reason: "replaced"})
			n.feed.publish(Event{Kind: MappingAdded, Mapping: m})
		case !had:
			n.feed.publish(Event{Kind: MappingAdded, Mapping: m})
		case old != m:
			n.feed.publish(Event{Kind: MappingRenewed, Mapping: m})
		}
	}
	err := n.applyIfRunningLocked()
	wait := n.submitLocked(recs)
	n.mu.Unlock()
	return errors.Join(err, wait())
}

// SetWAN follows the WAN address: the rules are rebuilt for the new
// address and every mapping follows it. The filter entries of the old
// address go with its flows. A new address starts a new epoch (RFC 6887
// §8.5): PCP and NAT-PMP clients then learn to renew.
func (n *NAT) SetWAN(a netip.Addr) error {
	n.mu.Lock()
	if a == n.wan {
		n.mu.Unlock()
		return nil
	}
	n.wan = a
	n.flows.reset(n.cfg.Filtering)
	var recs []any
	if a.IsValid() && a != n.epoch.WAN {
		if n.epoch.WAN.IsValid() {
			n.epoch.Start = n.clock.Now()
			n.feed.publish(Event{Kind: EpochReset})
		}
		n.epoch.WAN = a
		ep := n.epoch
		recs = append(recs, record{Epoch: &ep})
	}
	n.feed.publish(Event{Kind: WANChanged, WAN: a})
	err := n.applyIfRunningLocked()
	wait := n.submitLocked(recs)
	n.mu.Unlock()
	return errors.Join(err, wait())
}

// SetFiltering changes the UDP filtering behaviour (a config reload).
func (n *NAT) SetFiltering(f Filtering) error {
	if f < AddressAndPortDependent || f > EndpointIndependent {
		return fmt.Errorf("nat44: unknown filtering %d", f)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if f == n.cfg.Filtering {
		return nil
	}
	n.cfg.Filtering = f
	n.flows.reset(f)
	signal(n.modeChanged)
	return n.applyIfRunningLocked()
}

// SetOutside sets the interfaces that face the internet besides the WAN
// (the 6to4 and Teredo TUN devices): unsolicited inbound from them is
// filtered as from the WAN.
func (n *NAT) SetOutside(ifaces []string) error {
	for _, i := range ifaces {
		if i == "" || len(i) > 15 || slices.Contains(n.cfg.LANs, i) {
			return fmt.Errorf("%w: outside interface %q", ErrInvalid, i)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if slices.Equal(ifaces, n.outside) {
		return nil
	}
	n.outside = slices.Clone(ifaces)
	return n.applyIfRunningLocked()
}

// SetNAT66 sets the interfaces that IPv6 from the LAN leaves masqueraded
// to the interface's address (NAT66 to the Teredo address); each must
// also be an outside interface (SetOutside) for the filter to guard it.
func (n *NAT) SetNAT66(ifaces []string) error {
	for _, i := range ifaces {
		if i == "" || len(i) > 15 || slices.Contains(n.cfg.LANs, i) || i == n.cfg.WAN {
			return fmt.Errorf("%w: NAT66 interface %q", ErrInvalid, i)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if slices.Equal(ifaces, n.nat66) {
		return nil
	}
	n.nat66 = slices.Clone(ifaces)
	return n.applyIfRunningLocked()
}

// SetNAT66Address sets the one global address of NAT66 (the Teredo
// address; invalid: none), which the daemon follows as it changes: inbound
// to it on a port that a ULA host's pinhole holds goes to that host, and
// PCP answers with it as the ULA host's external address (ExternalIPv6).
func (n *NAT) SetNAT66Address(a netip.Addr) error {
	if a.IsValid() && (!a.Is6() || a.Is4In6() || !a.IsGlobalUnicast() || IsULA(a)) {
		return fmt.Errorf("%w: NAT66 address %v is not a global IPv6 address", ErrInvalid, a)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if a == n.nat66IP {
		return nil
	}
	n.nat66IP = a
	return n.applyIfRunningLocked()
}

// ExternalIPv6 is the address the internet sees for LAN host h: the NAT66
// address for a ULA host while one is set, else h itself.
func (n *NAT) ExternalIPv6(h netip.Addr) netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nat66IP.IsValid() && IsULA(h) {
		return n.nat66IP
	}
	return h
}

// SetLANPrefixes tells the policy which IPv4 and IPv6 subnets are the
// LAN's: a protocol's mapping or pinhole may point only there. Until it is
// called, any internal address the rules allow is accepted.
//
// The IPv6 ones also go into the datapath: a packet from outside that
// claims one of them as its source is dropped.
func (n *NAT) SetLANPrefixes(ps []netip.Prefix) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var lans []netip.Prefix
	for _, p := range ps {
		lans = append(lans, p.Masked())
	}
	if slices.Equal(lans, n.lans) {
		return nil
	}
	n.lans = lans
	return n.applyIfRunningLocked()
}

// SetSixToFour lets protocol 41 from the WAN in (on) or keeps it out: the
// 6to4 tunnel turns it on while it runs.
func (n *NAT) SetSixToFour(on bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if on == n.sixto4 {
		return nil
	}
	n.sixto4 = on
	return n.applyIfRunningLocked()
}
