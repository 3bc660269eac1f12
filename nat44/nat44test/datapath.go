// Package nat44test holds in-memory twins of the kernel interfaces that
// nat44 consumes, for the tests of nat44 and of the services built on it.
// They keep state the way the kernel does and refuse what it would refuse;
// they do not record calls.
package nat44test

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"gateway/nat44"
)

// ErrClosed is returned by Apply after Close, as the real datapath's
// closed netlink socket would fail.
var ErrClosed = errors.New("nat44test: datapath closed")

// ErrRefused wraps every state that the fake kernel would not accept.
var ErrRefused = errors.New("nat44test: kernel refused the state")

// ifNameMax is IFNAMSIZ less the terminating NUL.
const ifNameMax = 15

// FakeDatapath is a nat44.Datapath that keeps the table that the kernel
// would hold: whether it is installed, its base (interfaces, WAN address,
// filtering) and the contents of its sets and maps. Like an nftables
// transaction an Apply takes effect whole or not at all.
//
// Like the real datapath, it takes State.Changed and
// State.ChangedPinholes at their word: when they are not nil, only the
// keys they name are compared and updated, so that a service that forgets
// to name a changed key leaves the fake as stale as it would leave the
// kernel. A rebuild (the first Apply, a new base, or after Tamper) reads
// everything. It is safe for concurrent use.
type FakeDatapath struct {
	// mu guards every field below.
	mu        sync.Mutex
	installed bool // our table is in the kernel
	contents       // what the table holds

	// packets counts what each installed pinhole let in, as the kernel's
	// per-element counters do: an element that goes loses its count.
	packets map[nat44.PinholeKey]uint64

	applies  int   // Applies that changed the kernel
	failNext error // returned by the next Apply
	drifted  bool  // the kernel was changed behind our back
	closed   bool
}

// NewFakeDatapath returns a datapath with nothing installed.
func NewFakeDatapath() *FakeDatapath {
	return &FakeDatapath{}
}

// contents is one complete kernel table, as Apply would install it.
type contents struct {
	wan       string
	lans      []string
	addr      netip.Addr
	filtering nat44.Filtering
	fwd       map[nat44.Key]netip.AddrPort // mappings for any remote host (fwd4)
	fwdr      map[nat44.Key]remoteForward  // mappings for one remote host (fwd4r)
	cone      map[uint16]netip.AddrPort
	remotes   map[nat44.RemoteKey]netip.AddrPort
	wanInput  map[nat44.Key]bool
	outside   map[string]bool
	pinholes  map[nat44.PinholeKey]bool // pin6 and pin6r: a valid Remote is pin6r's
	nat66Addr netip.Addr
	nat66     map[nat44.Key]netip.AddrPort // inbound on the NAT66 address, to ULA hosts
}

type remoteForward struct {
	remote   netip.Addr
	internal netip.AddrPort
}

func (c contents) sameBase(o contents) bool {
	return c.wan == o.wan && slices.Equal(c.lans, o.lans) && c.addr == o.addr && c.filtering == o.filtering && c.nat66Addr == o.nat66Addr
}

func (c contents) clone() contents {
	c.lans = slices.Clone(c.lans)
	c.fwd, c.fwdr = cloneOrEmpty(c.fwd), cloneOrEmpty(c.fwdr)
	c.cone, c.remotes = cloneOrEmpty(c.cone), cloneOrEmpty(c.remotes)
	c.wanInput, c.outside, c.pinholes = cloneOrEmpty(c.wanInput), cloneOrEmpty(c.outside), cloneOrEmpty(c.pinholes)
	c.nat66 = cloneOrEmpty(c.nat66)
	return c
}

// Apply implements nat44.Datapath. It installs s, refusing a state the
// kernel would refuse and keeping what it held before; an Apply that
// changes nothing is not counted.
func (d *FakeDatapath) Apply(s *nat44.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if err := d.failNext; err != nil {
		d.failNext = nil
		return err
	}
	if s == nil {
		return fmt.Errorf("%w: nil state", ErrRefused)
	}
	var p problems
	next := contents{wan: s.WAN, lans: slices.Clone(s.LANs), addr: s.WANAddr, filtering: s.Filtering, nat66Addr: s.NAT66Addr}
	p.base(s)
	rebuild := !d.installed || d.drifted || !d.contents.sameBase(next)
	if rebuild {
		next.fwd, next.fwdr = map[nat44.Key]netip.AddrPort{}, map[nat44.Key]remoteForward{}
		next.pinholes = map[nat44.PinholeKey]bool{}
		next.nat66 = map[nat44.Key]netip.AddrPort{}
	} else {
		next = d.contents.clone()
	}
	// Mappings and pinholes: only the named keys unless rebuilding, as the
	// real datapath compares.
	var mkeys []nat44.Key
	if s.Changed != nil && !rebuild {
		mkeys = slices.Collect(maps.Keys(s.Changed))
	} else {
		mkeys = slices.Collect(maps.Keys(next.fwd))
		mkeys = append(mkeys, slices.Collect(maps.Keys(next.fwdr))...)
		if s.Mappings != nil {
			s.Mappings.All(func(m nat44.Mapping) { mkeys = append(mkeys, m.Key()) })
		}
	}
	for _, k := range mkeys {
		delete(next.fwd, k)
		delete(next.fwdr, k)
		if s.Mappings == nil {
			continue
		}
		m, ok := s.Mappings.Get(k)
		if !ok {
			continue
		}
		if err := m.Validate(); err != nil {
			p.add(err)
			continue
		}
		if m.Remote.IsValid() {
			next.fwdr[k] = remoteForward{m.Remote, m.Internal}
		} else {
			next.fwd[k] = m.Internal
		}
	}
	var pkeys []nat44.PinholeKey
	if s.ChangedPinholes != nil && !rebuild {
		pkeys = slices.Collect(maps.Keys(s.ChangedPinholes))
	} else {
		pkeys = slices.Collect(maps.Keys(next.pinholes))
		if s.Pinholes != nil {
			s.Pinholes.All(func(ph nat44.Pinhole) { pkeys = append(pkeys, ph.PinholeKey) })
		}
	}
	for _, k := range pkeys {
		delete(next.pinholes, k)
		if s.Pinholes == nil {
			continue
		}
		if _, ok := s.Pinholes.Get(k); !ok {
			continue
		}
		if err := checkPinhole(k); err != nil {
			p.add(err)
			continue
		}
		next.pinholes[k] = true
	}
	// NAT66 inbound: the ports of ULA hosts' pinholes, those the changed
	// pinholes name unless rebuilding.
	var nkeys []nat44.Key
	for _, k := range pkeys {
		if nat44.IsULA(k.Internal.Addr()) {
			nkeys = append(nkeys, nat44.Key{Proto: k.Proto, ExternalPort: k.Internal.Port()})
		}
	}
	for _, k := range nkeys {
		delete(next.nat66, k)
		if s.Pinholes == nil || !s.NAT66Addr.IsValid() {
			continue
		}
		if ap, ok := s.Pinholes.NAT66Target(k); ok {
			next.nat66[k] = ap
		}
	}
	if a := s.NAT66Addr; a.IsValid() && (!a.Is6() || a.Is4In6()) {
		p.add(fmt.Errorf("NAT66 address %v is not IPv6", a))
	}
	// The rest is compared whole, as the real datapath does.
	next.cone = make(map[uint16]netip.AddrPort, len(s.Cone))
	for port, ap := range s.Cone {
		if port == 0 || !usable(ap) {
			p.add(fmt.Errorf("cone element %d : %v", port, ap))
		}
		next.cone[port] = ap
	}
	next.remotes = make(map[nat44.RemoteKey]netip.AddrPort, len(s.Remotes))
	for k, ap := range s.Remotes {
		if k.ExternalPort == 0 || !k.Remote.Is4() || !usable(ap) {
			p.add(fmt.Errorf("remotes element %v . %d : %v", k.Remote, k.ExternalPort, ap))
		}
		next.remotes[k] = ap
	}
	next.wanInput = make(map[nat44.Key]bool, len(s.WANInput))
	for _, k := range s.WANInput {
		if (k.Proto != nat44.TCP && k.Proto != nat44.UDP) || k.ExternalPort == 0 {
			p.add(fmt.Errorf("wan_input element %v", k))
		}
		next.wanInput[k] = true
	}
	next.outside = map[string]bool{s.WAN: true}
	for _, n := range s.Outside {
		if n == "" || len(n) > ifNameMax {
			p.add(fmt.Errorf("outside element %q does not fit ifname", n))
		}
		next.outside[n] = true
	}
	if err := p.err(); err != nil {
		return err
	}
	if !rebuild && d.equal(next) {
		return nil
	}
	d.installed, d.drifted = true, false
	d.contents = next
	for k := range d.packets {
		if !next.pinholes[k] || rebuild { // a rebuild makes every element anew
			delete(d.packets, k)
		}
	}
	d.applies++
	return nil
}

// problems collects the reasons the kernel would refuse a state.
type problems []error

func (p *problems) add(err error) { *p = append(*p, err) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrRefused, errors.Join(p...))
}

// base checks what shapes the rules.
func (p *problems) base(s *nat44.State) {
	for _, n := range append([]string{s.WAN}, s.LANs...) {
		if n == "" || len(n) > ifNameMax {
			p.add(fmt.Errorf("interface name %q", n))
		}
	}
	if len(s.LANs) == 0 {
		p.add(errors.New("no LAN interface"))
	}
	if s.WANAddr.IsValid() && !s.WANAddr.Is4() {
		p.add(fmt.Errorf("WAN address %v is not IPv4", s.WANAddr))
	}
	if s.Filtering < nat44.AddressAndPortDependent || s.Filtering > nat44.EndpointIndependent {
		p.add(fmt.Errorf("filtering %d", int(s.Filtering)))
	}
}

// checkPinhole refuses a pinhole that does not fit pin6's or pin6r's
// ipv6_addr . inet_proto . inet_service: an IPv4 (or IPv4-mapped)
// address, a protocol without ports, port 0.
func checkPinhole(k nat44.PinholeKey) error {
	a := k.Internal.Addr()
	if !a.Is6() || a.Is4In6() || k.Internal.Port() == 0 || (k.Proto != nat44.TCP && k.Proto != nat44.UDP) {
		return fmt.Errorf("pinhole %v does not fit ipv6_addr . inet_proto . inet_service", k)
	}
	if r := k.Remote; r.IsValid() && (!r.Is6() || r.Is4In6()) {
		return fmt.Errorf("pinhole %v: remote host does not fit ipv6_addr", k)
	}
	return nil
}

// usable reports whether ap fits an ipv4_addr . inet_service element and
// can be a DNAT target.
func usable(ap netip.AddrPort) bool {
	a := ap.Addr()
	return a.Is4() && !a.IsUnspecified() && ap.Port() != 0
}

func (d *FakeDatapath) equal(c contents) bool {
	return d.contents.sameBase(c) &&
		maps.Equal(d.fwd, c.fwd) && maps.Equal(d.fwdr, c.fwdr) && maps.Equal(d.cone, c.cone) && maps.Equal(d.remotes, c.remotes) &&
		maps.Equal(d.wanInput, c.wanInput) && maps.Equal(d.outside, c.outside) && maps.Equal(d.pinholes, c.pinholes) && maps.Equal(d.nat66, c.nat66)
}

// Drifted implements nat44.Datapath: true after Tamper, until the next
// successful Apply.
func (d *FakeDatapath) Drifted() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false, ErrClosed
	}
	return d.drifted, nil
}

// Close implements nat44.Datapath: the table goes, and the datapath cannot
// be used again.
func (d *FakeDatapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removeLocked()
	d.closed = true
	return nil
}

func (d *FakeDatapath) removeLocked() {
	d.installed = false
	d.contents = contents{}
	d.packets = nil
}

// FailNext makes the next Apply return err and change nothing, as when
// the kernel refuses a transaction.
func (d *FakeDatapath) FailNext(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failNext = err
}

// Tamper plays another program deleting the table (`nft delete table inet
// gateway`): rules and map contents are gone, and Drifted reports true
// until the next Apply. It does nothing when no table is installed.
func (d *FakeDatapath) Tamper() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.installed {
		return
	}
	d.removeLocked()
	d.drifted = true
}

// Installed reports whether the table is in the kernel.
func (d *FakeDatapath) Installed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.installed
}

// Lookup returns where a packet to the WAN address on proto/port goes when
// it comes from a remote host that no mapping names: mappings with a
// remote host (fwd4r) do not answer it.
func (d *FakeDatapath) Lookup(proto nat44.Proto, port uint16) (netip.AddrPort, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ap, ok := d.fwd[nat44.Key{Proto: proto, ExternalPort: port}]
	return ap, ok
}

// LookupFrom returns where a packet from remote to the WAN address on
// proto/port goes: as the kernel, it looks up fwd4r (by remote, protocol
// and port) before fwd4.
func (d *FakeDatapath) LookupFrom(remote netip.Addr, proto nat44.Proto, port uint16) (netip.AddrPort, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := nat44.Key{Proto: proto, ExternalPort: port}
	if f, ok := d.fwdr[k]; ok && f.remote == remote {
		return f.internal, true
	}
	ap, ok := d.fwd[k]
	return ap, ok
}

// Forwards returns where each installed mapping sends, with or without a
// remote host; it is empty, not nil, when nothing is installed, so that it
// compares equal to an empty want.
func (d *FakeDatapath) Forwards() map[nat44.Key]netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := cloneOrEmpty(d.fwd)
	for k, f := range d.fwdr {
		out[k] = f.internal
	}
	return out
}

// ForwardRemotes returns the remote host of each installed mapping that
// has one.
func (d *FakeDatapath) ForwardRemotes() map[nat44.Key]netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[nat44.Key]netip.Addr, len(d.fwdr))
	for k, f := range d.fwdr {
		out[k] = f.remote
	}
	return out
}

// LookupNAT66 returns where a packet to the NAT66 address on proto/port
// goes (before the forward filter's pinhole check), if anywhere.
func (d *FakeDatapath) LookupNAT66(proto nat44.Proto, port uint16) (netip.AddrPort, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.nat66Addr.IsValid() {
		return netip.AddrPort{}, false
	}
	ap, ok := d.nat66[nat44.Key{Proto: proto, ExternalPort: port}]
	return ap, ok
}

// NAT66Address is the NAT66 address the table DNATs on; invalid: none.
func (d *FakeDatapath) NAT66Address() netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nat66Addr
}

// CountPinhole plays n packets let in through the pinhole k, if it is
// installed (else the kernel would have dropped them); it reports whether
// it is.
func (d *FakeDatapath) CountPinhole(k nat44.PinholeKey, n uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.installed || !d.pinholes[k] {
		return false
	}
	if d.packets == nil {
		d.packets = make(map[nat44.PinholeKey]uint64)
	}
	d.packets[k] += n
	return true
}

// PinholePackets implements nat44.PacketCounter: the counts of the
// installed pinholes.
func (d *FakeDatapath) PinholePackets() (map[nat44.PinholeKey]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	out := make(map[nat44.PinholeKey]uint64)
	for k := range d.pinholes {
		out[k] = d.packets[k]
	}
	return out, nil
}

// Pinholes returns the installed pinholes, in pin6 and pin6r alike,
// sorted.
func (d *FakeDatapath) Pinholes() []nat44.PinholeKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := slices.Collect(maps.Keys(d.pinholes))
	slices.SortFunc(out, func(a, b nat44.PinholeKey) int {
		if c := a.Internal.Compare(b.Internal); c != 0 {
			return c
		}
		if a.Proto != b.Proto {
			return int(a.Proto) - int(b.Proto)
		}
		return a.Remote.Compare(b.Remote)
	})
	return out
}

// Admits reports whether the IPv6 forward filter lets a new flow of proto
// from remote to internal in: a pinhole for anyone, or one for remote.
func (d *FakeDatapath) Admits(remote netip.Addr, proto nat44.Proto, internal netip.AddrPort) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := nat44.PinholeKey{Proto: proto, Internal: internal}
	if d.pinholes[k] {
		return true
	}
	k.Remote = remote
	return remote.IsValid() && d.pinholes[k]
}

// Outside returns the interfaces whose inbound traffic the filter treats
// as the internet's (@outside: the WAN and State.Outside), sorted.
func (d *FakeDatapath) Outside() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := slices.Collect(maps.Keys(d.outside))
	slices.Sort(out)
	return out
}

// Cone returns a copy of the endpoint-independent filter map.
func (d *FakeDatapath) Cone() map[uint16]netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return cloneOrEmpty(d.cone)
}

// Remotes returns a copy of the address-dependent filter map.
func (d *FakeDatapath) Remotes() map[nat44.RemoteKey]netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return cloneOrEmpty(d.remotes)
}

// WANInput returns the router's own WAN ports, sorted.
func (d *FakeDatapath) WANInput() []nat44.Key {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := slices.Collect(maps.Keys(d.wanInput))
	slices.SortFunc(out, func(a, b nat44.Key) int {
		if a.Proto != b.Proto {
			return int(a.Proto) - int(b.Proto)
		}
		return int(a.ExternalPort) - int(b.ExternalPort)
	})
	return out
}

// WANAddr is the WAN address the rules were built for; invalid when none.
func (d *FakeDatapath) WANAddr() netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// Interfaces are the WAN and LAN names the rules were built for.
func (d *FakeDatapath) Interfaces() (wan string, lans []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wan, slices.Clone(d.lans)
}

// Filtering is the filtering mode the rules were built for.
func (d *FakeDatapath) Filtering() nat44.Filtering {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.filtering
}

// Applies counts the Applies that changed the kernel.
func (d *FakeDatapath) Applies() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applies
}

func cloneOrEmpty[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	maps.Copy(out, m)
	return out
}

var _ nat44.Datapath = (*FakeDatapath)(nil)
