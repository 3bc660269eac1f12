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
// filtering) and the contents of its maps. Like an nftables transaction an
// Apply takes effect whole or not at all. It is safe for concurrent use.
type FakeDatapath struct {
	// mu guards every field below.
	mu        sync.Mutex
	installed bool // our table is in the kernel
	contents       // what the table holds

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
	fwd       map[nat44.Key]netip.AddrPort
	cone      map[uint16]netip.AddrPort
	remotes   map[nat44.RemoteKey]netip.AddrPort
	wanInput  map[nat44.Key]bool
}

// Apply implements nat44.Datapath. It installs s whole, refusing a state
// the kernel would refuse and keeping what it held before; an Apply that
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
	c, err := decode(s)
	if err != nil {
		return err
	}
	if d.installed && !d.drifted && d.equal(c) {
		return nil
	}
	d.installed, d.drifted = true, false
	d.contents = c
	d.applies++
	return nil
}

// decode copies s (whose table the caller keeps changing) and checks it as
// the kernel's set types and the rule builder would.
func decode(s *nat44.State) (contents, error) {
	var problems []error
	if s == nil {
		return contents{}, fmt.Errorf("%w: nil state", ErrRefused)
	}
	c := contents{
		wan:       s.WAN,
		lans:      slices.Clone(s.LANs),
		addr:      s.WANAddr,
		filtering: s.Filtering,
		fwd:       make(map[nat44.Key]netip.AddrPort),
		cone:      make(map[uint16]netip.AddrPort, len(s.Cone)),
		remotes:   make(map[nat44.RemoteKey]netip.AddrPort, len(s.Remotes)),
		wanInput:  make(map[nat44.Key]bool, len(s.WANInput)),
	}
	for _, n := range append([]string{s.WAN}, s.LANs...) {
		if n == "" || len(n) > ifNameMax {
			problems = append(problems, fmt.Errorf("interface name %q", n))
		}
	}
	if len(s.LANs) == 0 {
		problems = append(problems, errors.New("no LAN interface"))
	}
	if s.WANAddr.IsValid() && !s.WANAddr.Is4() {
		problems = append(problems, fmt.Errorf("WAN address %v is not IPv4", s.WANAddr))
	}
	if s.Filtering < nat44.AddressAndPortDependent || s.Filtering > nat44.EndpointIndependent {
		problems = append(problems, fmt.Errorf("filtering %d", int(s.Filtering)))
	}
	if s.Mappings != nil {
		s.Mappings.All(func(m nat44.Mapping) {
			if err := m.Validate(); err != nil {
				problems = append(problems, err)
				return
			}
			c.fwd[m.Key()] = m.Internal
		})
	}
	for p, ap := range s.Cone {
		if p == 0 || !usable(ap) {
			problems = append(problems, fmt.Errorf("cone element %d : %v", p, ap))
		}
		c.cone[p] = ap
	}
	for k, ap := range s.Remotes {
		if k.ExternalPort == 0 || !k.Remote.Is4() || !usable(ap) {
			problems = append(problems, fmt.Errorf("remotes element %v . %d : %v", k.Remote, k.ExternalPort, ap))
		}
		c.remotes[k] = ap
	}
	for _, k := range s.WANInput {
		if (k.Proto != nat44.TCP && k.Proto != nat44.UDP) || k.ExternalPort == 0 {
			problems = append(problems, fmt.Errorf("wan_input element %v", k))
		}
		c.wanInput[k] = true
	}
	if len(problems) > 0 {
		return contents{}, fmt.Errorf("%w: %w", ErrRefused, errors.Join(problems...))
	}
	return c, nil
}

// usable reports whether ap fits an ipv4_addr . inet_service element and
// can be a DNAT target.
func usable(ap netip.AddrPort) bool {
	a := ap.Addr()
	return a.Is4() && !a.IsUnspecified() && ap.Port() != 0
}

func (d *FakeDatapath) equal(c contents) bool {
	return d.wan == c.wan && slices.Equal(d.lans, c.lans) && d.addr == c.addr && d.filtering == c.filtering &&
		maps.Equal(d.fwd, c.fwd) && maps.Equal(d.cone, c.cone) && maps.Equal(d.remotes, c.remotes) && maps.Equal(d.wanInput, c.wanInput)
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

// Lookup returns where the forward map sends proto/port.
func (d *FakeDatapath) Lookup(proto nat44.Proto, port uint16) (netip.AddrPort, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ap, ok := d.fwd[nat44.Key{Proto: proto, ExternalPort: port}]
	return ap, ok
}

// Forwards returns a copy of the forward map; it is empty, not nil, when
// nothing is installed, so that it compares equal to an empty want.
func (d *FakeDatapath) Forwards() map[nat44.Key]netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return cloneOrEmpty(d.fwd)
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
