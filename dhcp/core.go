// Package dhcp is the gateway's DHCPv4 server (RFC 2131, RFC 2132).
//
// This file and its core*/pool*/leases*/options* siblings are the pure core:
// the RFC 2131 state machine, the address pool, the lease table and the reply
// options. The core owns no socket, starts no goroutine, never reads the clock
// and never logs: every method that depends on time takes `now`.
package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"gateway/dhcp/dhcp4"
)

// Defaults of CoreConfig's zero fields.
const (
	DefaultLeaseTime  = 12 * time.Hour
	DefaultOfferHold  = 60 * time.Second
	DefaultQuarantine = 10 * time.Minute

	// defaultPoolOffset is the host number of the default pool's first
	// address (.10 in a /24): the low hosts are left for static devices.
	defaultPoolOffset = 10
	// maxPoolSize bounds the pool to a /8's worth of addresses (a 2 MiB
	// bitmap per level-0 set).
	maxPoolSize = 1 << 24
	// maxLeaseTime is the longest finite lease that fits option 51: 0xffffffff
	// seconds means "infinite" (RFC 2132 9.2), which we never grant.
	maxLeaseTime = time.Duration(0xfffffffe) * time.Second
	// MinLeaseTime is the shortest lease we grant, also to a client that asks
	// for less with option 51.
	MinLeaseTime = 10 * time.Second
)

// Route is one classless static route of option 121 (RFC 3442): Dest
// (host bits zero, e.g. 10.8.0.0/16) via Gateway (a router on the LAN, or
// 0.0.0.0 for an on-link route).
type Route = dhcp4.Route

// Reservation gives Addr (and Hostname) to the client whose chaddr is MAC.
// Addr may lie outside the pool but must be inside the subnet.
type Reservation struct {
	MAC      net.HardwareAddr
	Addr     netip.Addr
	Hostname string // "" = the client's own option 12
}

// CoreConfig is what the pure core needs; the service's Config embeds it.
// Every zero value is documented and usable, except ServerAddr.
type CoreConfig struct {
	// ServerAddr is the server's LAN address and subnet, e.g. 192.168.1.1/24;
	// required. It is the server identifier (option 54) of every reply.
	ServerAddr netip.Prefix
	// PoolStart and PoolEnd bound the dynamic pool, inclusive. Both zero =
	// host .10 of the subnet (host 1 in subnets too small for that) up to the
	// last host before the broadcast address. ServerAddr is never handed
	// out even when it lies inside the pool.
	PoolStart, PoolEnd netip.Addr
	// LeaseTime is the lease granted; zero = 12h. T1 is 1/2 and T2 7/8 of it
	// (RFC 2131 4.4.5). A client asking for less (option 51) gets what it
	// asked for, but never less than MinLeaseTime.
	LeaseTime time.Duration
	// OfferHold is how long an offered (or probing) address is held for the
	// client; zero = 60s.
	OfferHold time.Duration
	// Quarantine is how long an address that a client declined or a probe
	// found in use stays out of the pool; zero = 10 min. RFC 2131 4.3.3 asks
	// the server to mark it unavailable; we reuse it after this time.
	Quarantine time.Duration
	// Router is option 3 (and the default route of option 121); zero =
	// ServerAddr.Addr().
	Router netip.Addr
	// DNS is option 6; empty = [ServerAddr.Addr()].
	DNS []netip.Addr
	// Domain is option 15; "" = not sent.
	Domain string
	// MTU is option 26; 0 = not sent.
	MTU uint16
	// Routes are sent as option 121 (RFC 3442) to clients that ask for it,
	// together with the default route via Router; empty = not sent.
	Routes []Route
	// Reservations are the static MAC → address bindings.
	Reservations []Reservation
	// Authoritative: we are the only DHCP server on the link (dnsmasq
	// --dhcp-authoritative). A REQUEST for an address we have no record of
	// is then answered (ACK when the address is free in our pool, so that a
	// lost lease file does not renumber clients; NAK otherwise) instead of
	// ignored as RFC 2131 4.3.2 asks of servers that share the link. Zero =
	// false; the service defaults it to true.
	Authoritative bool
}

// withDefaults returns c with every zero field replaced by its default.
func (c CoreConfig) withDefaults() CoreConfig {
	if !c.ServerAddr.IsValid() || !c.ServerAddr.Addr().Is4() {
		return c
	}
	subnet := c.ServerAddr.Masked()
	if !c.PoolStart.IsValid() && !c.PoolEnd.IsValid() && subnet.Bits() <= 30 {
		first := addAddr(subnet.Addr(), 1)
		last := addAddr(broadcastAddr(subnet), -1)
		start := addAddr(subnet.Addr(), defaultPoolOffset)
		if addrU32(start) > addrU32(last) {
			start = first
		}
		c.PoolStart, c.PoolEnd = start, last
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = DefaultLeaseTime
	}
	if c.OfferHold == 0 {
		c.OfferHold = DefaultOfferHold
	}
	if c.Quarantine == 0 {
		c.Quarantine = DefaultQuarantine
	}
	if !c.Router.IsValid() {
		c.Router = c.ServerAddr.Addr()
	}
	if len(c.DNS) == 0 {
		c.DNS = []netip.Addr{c.ServerAddr.Addr()}
	}
	return c
}

// Validate reports every problem of the configuration at once.
func (c CoreConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("dhcp: "+format, args...))
	}
	if !c.ServerAddr.IsValid() {
		bad("ServerAddr is required (the server's LAN address and prefix, e.g. 192.168.1.1/24)")
		return errors.Join(errs...)
	}
	if !c.ServerAddr.Addr().Is4() {
		bad("ServerAddr %s is not an IPv4 prefix", c.ServerAddr)
		return errors.Join(errs...)
	}
	if b := c.ServerAddr.Bits(); b < 8 || b > 30 {
		bad("ServerAddr %s: prefix length must be between /8 and /30", c.ServerAddr)
		return errors.Join(errs...)
	}
	subnet := c.ServerAddr.Masked()
	server := c.ServerAddr.Addr()
	if !isHost(subnet, server) {
		bad("ServerAddr %s is the network or broadcast address of its subnet", c.ServerAddr)
	}
	if c.PoolStart.IsValid() != c.PoolEnd.IsValid() {
		bad("PoolStart and PoolEnd must be set together (or both left empty for the default pool)")
	}
	d := c.withDefaults()
	if d.PoolStart.IsValid() && d.PoolEnd.IsValid() {
		okStart, okEnd := isHost(subnet, d.PoolStart), isHost(subnet, d.PoolEnd)
		if !okStart {
			bad("PoolStart %s is not a host address of %s", d.PoolStart, subnet)
		}
		if !okEnd {
			bad("PoolEnd %s is not a host address of %s", d.PoolEnd, subnet)
		}
		if okStart && okEnd {
			switch lo, hi := addrU32(d.PoolStart), addrU32(d.PoolEnd); {
			case lo > hi:
				bad("PoolStart %s is after PoolEnd %s", d.PoolStart, d.PoolEnd)
			case hi-lo+1 > maxPoolSize:
				bad("pool %s-%s has more than %d addresses", d.PoolStart, d.PoolEnd, maxPoolSize)
			case lo == hi && lo == addrU32(server):
				bad("pool %s-%s holds only the server's own address", d.PoolStart, d.PoolEnd)
			}
		}
	}
	if c.LeaseTime < 0 || (c.LeaseTime > 0 && c.LeaseTime < MinLeaseTime) || c.LeaseTime > maxLeaseTime {
		bad("LeaseTime %s must be between %s and %s", c.LeaseTime, MinLeaseTime, maxLeaseTime)
	}
	if c.OfferHold < 0 {
		bad("OfferHold %s is negative", c.OfferHold)
	}
	if c.Quarantine < 0 {
		bad("Quarantine %s is negative", c.Quarantine)
	}
	if c.Router.IsValid() && !isHost(subnet, c.Router) {
		bad("Router %s is not a host address of %s (RFC 2132 3.5: routers on the client's subnet)", c.Router, subnet)
	}
	if len(c.DNS) > 63 {
		bad("DNS lists %d servers; option 6 holds at most 63", len(c.DNS))
	}
	for _, a := range c.DNS {
		if !a.Is4() || a.IsUnspecified() {
			bad("DNS server %s is not a unicast IPv4 address", a)
		}
	}
	if c.Domain != "" && !validDomainName(c.Domain) {
		bad("Domain %q is not a valid domain name", c.Domain)
	}
	if c.MTU != 0 && c.MTU < 68 {
		bad("MTU %d is below 68, the minimum of RFC 2132 5.1", c.MTU)
	}
	for _, r := range c.Routes {
		switch {
		case !r.Dest.IsValid() || !r.Dest.Addr().Is4():
			bad("route %s: destination is not an IPv4 prefix", r.Dest)
		case r.Dest != r.Dest.Masked():
			bad("route %s: destination has host bits set (did you mean %s?)", r.Dest, r.Dest.Masked())
		}
		if !r.Gateway.Is4() || (!r.Gateway.IsUnspecified() && !isHost(subnet, r.Gateway)) {
			bad("route %s: gateway %s is neither 0.0.0.0 nor a host address of %s", r.Dest, r.Gateway, subnet)
		}
	}
	if n := len(encodeRoutes(d.routesToSend())); len(c.Routes) > 0 && n > 255 {
		bad("routes take %d bytes in option 121 (with the default route); at most 255 fit", n)
	}
	macs := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for _, r := range c.Reservations {
		if err := validateReservation(r, subnet, server); err != nil {
			errs = append(errs, err)
			continue
		}
		mac := r.MAC.String()
		if macs[mac] {
			bad("reservation for %s: MAC reserved twice", mac)
		}
		macs[mac] = true
		if other, dup := addrs[r.Addr]; dup {
			bad("reservation for %s: %s is already reserved for %s", mac, r.Addr, other)
		} else {
			addrs[r.Addr] = mac
		}
	}
	return errors.Join(errs...)
}

// routesToSend is the content of option 121: the configured routes and,
// unless one of them already is, the default route via Router. RFC 3442:
// a client that receives option 121 ignores option 3, so the default route
// has to be in it.
func (c CoreConfig) routesToSend() []Route {
	if len(c.Routes) == 0 {
		return nil
	}
	out := slices.Clone(c.Routes)
	for _, r := range c.Routes {
		if r.Dest.IsValid() && r.Dest.Bits() == 0 {
			return out
		}
	}
	return append(out, Route{Dest: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Gateway: c.Router})
}

func validateReservation(r Reservation, subnet netip.Prefix, server netip.Addr) error {
	var errs []error
	if err := checkClientMAC(r.MAC); err != nil {
		errs = append(errs, fmt.Errorf("dhcp: reservation %s: %w", r.MAC, err))
	}
	switch {
	case !r.Addr.Is4() || !isHost(subnet, r.Addr):
		errs = append(errs, fmt.Errorf("dhcp: reservation for %s: %s is not a host address of %s", r.MAC, r.Addr, subnet))
	case r.Addr == server:
		errs = append(errs, fmt.Errorf("dhcp: reservation for %s: %s is the server's own address", r.MAC, r.Addr))
	}
	if r.Hostname != "" && !validDomainName(r.Hostname) {
		errs = append(errs, fmt.Errorf("dhcp: reservation for %s: hostname %q is not a valid host name", r.MAC, r.Hostname))
	}
	return errors.Join(errs...)
}

// checkClientMAC accepts the chaddr of an Ethernet host: six bytes, unicast,
// not all zero.
func checkClientMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("MAC must be 6 bytes (Ethernet), got %d", len(mac))
	}
	if mac[0]&1 != 0 {
		return errors.New("MAC is a multicast/broadcast address")
	}
	if slices.Equal(mac, make(net.HardwareAddr, 6)) {
		return errors.New("MAC is all zeros")
	}
	return nil
}

// validDomainName accepts RFC 1123 host and domain names: dot-separated
// labels of letters, digits and inner hyphens, 1-63 bytes each, 253 in all.
func validDomainName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}

// Lease is one binding of an address to a client. It is what the store
// persists and what the web panel lists.
type Lease struct {
	Addr        netip.Addr `json:"addr"`
	MAC         string     `json:"mac"`                    // aa:bb:cc:dd:ee:ff
	ClientID    string     `json:"client_id,omitempty"`    // hex of option 61, "" if none
	Hostname    string     `json:"hostname,omitempty"`     // the reservation's, else option 12
	FQDN        string     `json:"fqdn,omitempty"`         // option 81 name (RFC 4702)
	VendorClass string     `json:"vendor_class,omitempty"` // option 60
	Expires     time.Time  `json:"expires"`
	Reserved    bool       `json:"reserved,omitempty"` // the address comes from a reservation
}

// DestKind says how a reply reaches the client (RFC 2131 4.1).
type DestKind uint8

const (
	// DestBroadcast: to 255.255.255.255:68 (NAK without relay, or the
	// client set the broadcast flag).
	DestBroadcast DestKind = iota + 1
	// DestUnicast: to Addr:68 (the client has an address: ciaddr).
	DestUnicast
	// DestHardware: to Addr:68 at link-layer address HW, without ARP (the
	// client has no address yet and can receive unicast).
	DestHardware
	// DestRelay: to the relay agent at Addr:67 (giaddr).
	DestRelay
)

func (k DestKind) String() string {
	switch k {
	case DestBroadcast:
		return "broadcast"
	case DestUnicast:
		return "unicast"
	case DestHardware:
		return "hardware"
	case DestRelay:
		return "relay"
	}
	return fmt.Sprintf("DestKind(%d)", uint8(k))
}

// Dest is where a reply goes.
type Dest struct {
	Kind DestKind
	Addr netip.Addr
	HW   net.HardwareAddr // DestHardware only
}

// Action is the outcome of one request.
//
// Exactly one of these holds: Reply is set (send it to To); Probe is valid
// (check the address, call ProbeDone, then Handle the same request again);
// Drop is set (nothing to send; already counted in Stats().Drops under that
// reason); or none of them is set (handled, nothing to send: RELEASE,
// DECLINE). Commit comes only with an ACK. Released may come with any of
// them (with an OFFER, a NAK or a probe when a client's lease was taken back
// because a reservation moved it or its address left the pool): delete it
// whatever else the action says.
type Action struct {
	Reply *dhcp4.Message
	Drop  string
	To    Dest
	// Probe asks the server to check that the address is unused (ARP probe
	// or ICMP echo) before the offer is made. It is asked only for addresses
	// never handed out or last held by another client; never for the
	// client's own previous address nor for a reservation.
	Probe netip.Addr
	// Commit is a lease that must be on disk before Reply is sent (ACK of a
	// new or renewed lease).
	Commit *Lease
	// Released is a lease to delete from the store (RELEASE, DECLINE, a
	// lease taken back).
	Released *Lease
}

// Drop reasons: the keys of Stats.Drops.
const (
	DropNotRequest    = "not-request"      // BOOTREPLY or a server message type: not for us
	DropMalformed     = "malformed"        // not Ethernet, bad chaddr, missing/ill-sized options
	DropUnsupported   = "unsupported-type" // a message type we do not serve (e.g. LEASEQUERY)
	DropOtherSubnet   = "other-subnet"     // relayed from, or INFORM from, a subnet we do not serve
	DropWrongServer   = "wrong-server"     // the server identifier names another server
	DropNotOurs       = "not-ours"         // RELEASE/DECLINE of an address the client does not hold
	DropUnknownClient = "unknown-client"   // REQUEST for an address we have no record of (not authoritative)
	DropNoFreeAddress = "no-free-address"  // pool exhausted
	DropProbePending  = "probe-pending"    // DISCOVER again while its address is being probed
)

// Stats is a snapshot of the core's state and counters.
type Stats struct {
	PoolSize     int // addresses in the pool
	Free         int // of which neither bound, offered, quarantined, reserved nor the server
	Bound        int // bound leases (inside or outside the pool)
	Offered      int // offers outstanding, probes included
	Probing      int // addresses being probed
	Quarantined  int
	Reservations int

	Offers, Acks, Naks, Informs uint64
	Releases, Declines          uint64
	Probes, Conflicts           uint64
	Drops                       map[string]uint64
}

// Core is the server's state: pool, leases, offers, quarantine,
// reservations. It is not safe for concurrent use; the server serialises
// calls.
type Core struct {
	cfg    CoreConfig // defaults applied
	server netip.Addr
	subnet netip.Prefix // masked
	bcast  netip.Addr

	pool addrPool
	leaseTable

	resByMAC  map[string]Reservation     // key: MAC.String()
	resByAddr map[netip.Addr]Reservation //

	expired []Lease // expired by Handle, not yet returned by Expire

	offers, acks, naks, informs uint64
	releases, declines          uint64
	probes, conflicts           uint64
	drops                       map[string]uint64
}

// NewCore validates cfg and returns an empty core.
func NewCore(cfg CoreConfig) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.DNS = slices.Clone(cfg.DNS)
	cfg.Routes = slices.Clone(cfg.Routes)
	subnet := cfg.ServerAddr.Masked()
	c := &Core{
		cfg:        cfg,
		server:     cfg.ServerAddr.Addr(),
		subnet:     subnet,
		bcast:      broadcastAddr(subnet),
		pool:       newAddrPool(cfg.PoolStart, cfg.PoolEnd),
		leaseTable: newLeaseTable(),
		resByMAC:   map[string]Reservation{},
		resByAddr:  map[netip.Addr]Reservation{},
		drops:      map[string]uint64{},
	}
	c.cfg.Reservations = nil // the maps are the truth from now on
	c.pool.take(c.server)
	for _, r := range cfg.Reservations {
		c.addReservation(r)
	}
	return c, nil
}

// Restore loads leases from the store, at start. Live leases are bound again;
// expired ones are not, but their client → address pairs are remembered so
// that a returning client gets its address back while nobody else took it.
// It returns the leases it refused: malformed, outside the pool (and not
// reserved to that MAC), reserved to another MAC, or a second lease for an
// address or client (the one expiring last wins). The caller should delete
// them from the store.
func (c *Core) Restore(leases []Lease, now time.Time) (refused []Lease) {
	sorted := slices.Clone(leases)
	// Latest expiry first: it wins conflicts, and for expired leases it is
	// the most recent memory.
	slices.SortStableFunc(sorted, func(a, b Lease) int { return b.Expires.Compare(a.Expires) })
	for _, l := range sorted {
		key, mac, ok := leaseClient(l)
		if !ok || !c.allowed(l.Addr, mac) {
			refused = append(refused, l)
			continue
		}
		if !l.Expires.After(now) {
			if _, taken := c.memoryAddr[l.Addr]; !taken {
				if _, has := c.memory[key]; !has && c.byAddr[l.Addr] == nil {
					c.remember(key, l.Addr)
				}
			}
			continue
		}
		if c.byAddr[l.Addr] != nil || c.byClient[key] != nil {
			refused = append(refused, l)
			continue
		}
		l.MAC = mac.String()
		res, reserved := c.resByMAC[l.MAC]
		l.Reserved = reserved && res.Addr == l.Addr
		if l.Reserved && res.Hostname != "" {
			l.Hostname = res.Hostname
		}
		c.bind(key, l, l.Expires)
	}
	return refused
}

// leaseClient returns the client key and MAC of a stored lease.
func leaseClient(l Lease) (clientKey, net.HardwareAddr, bool) {
	mac, err := net.ParseMAC(l.MAC)
	if err != nil || checkClientMAC(mac) != nil {
		return "", nil, false
	}
	if l.ClientID == "" {
		return macKey(mac), mac, true
	}
	id, ok := parseHex(l.ClientID)
	if !ok || len(id) < 2 {
		return "", nil, false
	}
	return idKey(id), mac, true
}

// allowed reports whether addr may be bound to the client with this MAC at
// all: a host address of the subnet other than the server's, either
// reserved to this MAC or in the pool and reserved to nobody.
func (c *Core) allowed(addr netip.Addr, mac net.HardwareAddr) bool {
	if !addr.Is4() || !isHost(c.subnet, addr) || addr == c.server {
		return false
	}
	if r, ok := c.resByAddr[addr]; ok {
		return slices.Equal(r.MAC, mac)
	}
	return c.pool.contains(addr)
}

// ProbeDone is the result of a probe the core asked for. inUse quarantines
// the address; otherwise the address is offered the next time the client's
// request is handled. Results for addresses no longer being probed are
// ignored.
func (c *Core) ProbeDone(addr netip.Addr, inUse bool, now time.Time) {
	e := c.byAddr[addr]
	if e == nil || e.state != stateProbing {
		return
	}
	if inUse {
		c.conflicts++
		c.quarantine(addr, now)
		return
	}
	c.setState(e, stateOffered, now.Add(c.cfg.OfferHold))
}

// Expire removes expired leases, offers and quarantines and returns the
// leases that expired (including those Handle found expired since the last
// call).
func (c *Core) Expire(now time.Time) []Lease {
	c.expireUntil(now)
	out := c.expired
	c.expired = nil
	return out
}

// NextExpiry is when the earliest lease, offer or quarantine expires: the
// server calls Expire then.
func (c *Core) NextExpiry() (time.Time, bool) {
	if len(c.heap) == 0 {
		return time.Time{}, false
	}
	return c.heap[0].expires, true
}

// Leases returns the bound leases, sorted by address.
func (c *Core) Leases() []Lease {
	out := make([]Lease, 0, c.counts[stateBound])
	for _, e := range c.byAddr {
		if e.state == stateBound {
			out = append(out, e.lease)
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	return out
}

// AddReservation adds a reservation at run time. It refuses an invalid one,
// one whose MAC already has a different reservation (remove it first), one
// whose address is reserved to another MAC, and one whose address is bound to
// another client. An offer of the address to another client is withdrawn; a
// lease of it to this MAC becomes a reserved lease. A client of this MAC that
// holds another address is moved at its next request (NAK, then DISCOVER).
func (c *Core) AddReservation(r Reservation) error {
	if err := validateReservation(r, c.subnet, c.server); err != nil {
		return err
	}
	mac := r.MAC.String()
	if old, ok := c.resByMAC[mac]; ok {
		if old.Addr != r.Addr {
			return fmt.Errorf("dhcp: %s already has a reservation (%s); remove it first", mac, old.Addr)
		}
		old.Hostname = r.Hostname
		c.resByMAC[mac], c.resByAddr[r.Addr] = old, old
		return nil
	}
	if other, ok := c.resByAddr[r.Addr]; ok {
		return fmt.Errorf("dhcp: %s is already reserved for %s", r.Addr, other.MAC)
	}
	if e := c.byAddr[r.Addr]; e != nil && e.state == stateBound && e.lease.MAC != mac {
		return fmt.Errorf("dhcp: %s is leased to %s until %s", r.Addr, e.lease.MAC, e.expires.Format(time.RFC3339))
	}
	c.addReservation(r)
	return nil
}

func (c *Core) addReservation(r Reservation) {
	r.MAC = slices.Clone(r.MAC)
	mac := r.MAC.String()
	if e := c.byAddr[r.Addr]; e != nil {
		switch {
		case e.state == stateBound && e.lease.MAC == mac:
			e.lease.Reserved = true
			if r.Hostname != "" {
				e.lease.Hostname = r.Hostname
			}
		case e.state == stateOffered || e.state == stateProbing:
			if e.lease.MAC != mac {
				c.removeEntry(e)
			}
		}
	}
	c.forgetAddr(r.Addr)
	c.pool.take(r.Addr) // reserved addresses never return to the dynamic pool
	c.resByMAC[mac] = r
	c.resByAddr[r.Addr] = r
}

// RemoveReservation removes the reservation of mac. A lease it gave stays
// bound until it expires; it is renewed only if its address is in the pool.
func (c *Core) RemoveReservation(mac net.HardwareAddr) error {
	key := mac.String()
	r, ok := c.resByMAC[key]
	if !ok {
		return fmt.Errorf("dhcp: no reservation for %s", key)
	}
	delete(c.resByMAC, key)
	delete(c.resByAddr, r.Addr)
	if e := c.byAddr[r.Addr]; e != nil {
		if e.state == stateBound {
			e.lease.Reserved = false
		}
		return nil
	}
	if r.Addr != c.server {
		c.pool.give(r.Addr, false)
	}
	return nil
}

// Stats returns the pool figures and counters.
func (c *Core) Stats() Stats {
	drops := make(map[string]uint64, len(c.drops))
	for k, v := range c.drops {
		drops[k] = v
	}
	return Stats{
		PoolSize:     c.pool.size,
		Free:         c.pool.free.count,
		Bound:        c.counts[stateBound],
		Offered:      c.counts[stateOffered] + c.counts[stateProbing],
		Probing:      c.counts[stateProbing],
		Quarantined:  c.counts[stateQuarantined],
		Reservations: len(c.resByMAC),
		Offers:       c.offers,
		Acks:         c.acks,
		Naks:         c.naks,
		Informs:      c.informs,
		Releases:     c.releases,
		Declines:     c.declines,
		Probes:       c.probes,
		Conflicts:    c.conflicts,
		Drops:        drops,
	}
}
