package dhcp

import (
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"time"

	"gateway/dhcp/dhcp4"
)

// clientMsg is a validated client message with the fields the state machine
// reads.
type clientMsg struct {
	msg    *dhcp4.Message
	typ    dhcp4.MessageType
	mac    net.HardwareAddr
	client clientKey
	id     []byte // option 61, nil if none

	ciaddr, giaddr netip.Addr // zero (invalid) when 0.0.0.0
	requested      netip.Addr // option 50; zero when absent
	serverID       netip.Addr // option 54; zero when absent
	hasServerID    bool

	hostname, fqdn, vendor string
	fqdnFlags              int // -1: no option 81

	prl       []dhcp4.OptionCode // option 55; nil when absent
	maxSize   int                // option 57, at least 576
	leaseTime time.Duration
}

// parseRequest checks a client message. A message fails with a drop reason:
// not a BOOTREQUEST or a server's message type (DropNotRequest), not Ethernet
// or an unusable chaddr or an ill-sized option (DropMalformed), a message
// type we do not serve (DropUnsupported), relayed from another subnet
// (DropOtherSubnet). ParseMessage has checked the sizes of the options
// read here, but Handle takes any Message: they are checked again.
func (c *Core) parseRequest(m *dhcp4.Message) (*clientMsg, string) {
	if m == nil {
		return nil, DropMalformed
	}
	if m.Op != dhcp4.BootRequest {
		return nil, DropNotRequest
	}
	mt, ok := m.Get(optMessageType)
	if !ok || len(mt) != 1 {
		return nil, DropMalformed // a BOOTP request: we are a DHCP server only
	}
	r := &clientMsg{msg: m, typ: dhcp4.MessageType(mt[0]), fqdnFlags: -1}
	switch r.typ {
	case dhcp4.Discover, dhcp4.Request, dhcp4.Decline, dhcp4.Release, dhcp4.Inform:
	case dhcp4.Offer, dhcp4.Ack, dhcp4.Nak:
		return nil, DropNotRequest
	default:
		return nil, DropUnsupported
	}
	if m.HType != dhcp4.HTypeEthernet || checkClientMAC(m.CHAddr) != nil {
		return nil, DropMalformed
	}
	r.mac = slices.Clone(m.CHAddr)
	var okC, okG bool
	r.ciaddr, okC = headerAddr(m.CIAddr)
	r.giaddr, okG = headerAddr(m.GIAddr)
	if !okC || !okG {
		return nil, DropMalformed
	}
	if r.giaddr.IsValid() && !c.subnet.Contains(r.giaddr) {
		// RFC 2131 4.3.1: giaddr names the client's subnet. We serve the
		// LAN's subnet only.
		return nil, DropOtherSubnet
	}
	if _, ok := m.Get(optRequestedIP); ok {
		a, ok := m.Addr(optRequestedIP)
		if !ok {
			return nil, DropMalformed
		}
		if !a.IsUnspecified() {
			r.requested = a
		}
	}
	if _, ok := m.Get(optServerID); ok {
		if r.serverID, r.hasServerID = m.Addr(optServerID); !r.hasServerID {
			return nil, DropMalformed
		}
	}
	// RFC 2132 9.14: the client identifier is at least 2 bytes; a shorter
	// one identifies nothing, and the client is known by its chaddr.
	if v, _ := m.Get(optClientID); len(v) >= 2 {
		r.id = slices.Clone(v)
		r.client = idKey(v)
	} else {
		r.client = macKey(r.mac)
	}
	r.hostname = cleanName(m.Text(optHostName))
	r.vendor = cleanName(m.Text(optVendorClass))
	if v, ok := m.Get(optClientFQDN); ok {
		if flags, name, ok := parseFQDN(v); ok {
			r.fqdnFlags, r.fqdn = int(flags), cleanName(name)
		}
	}
	r.prl = m.ParamRequestList() // an empty list is still a list: send only what we must
	r.maxSize = minMaxMessageSize
	if v, ok := m.Uint16(optMaxMessageSize); ok {
		r.maxSize = max(int(v), minMaxMessageSize)
	}
	r.leaseTime, _ = m.Duration(optLeaseTime)
	return r, ""
}

// headerAddr checks a ciaddr/giaddr field: IPv4 or the zero Addr (which
// 0.0.0.0 becomes).
func headerAddr(a netip.Addr) (netip.Addr, bool) {
	switch {
	case !a.IsValid():
		return a, true
	case !a.Is4():
		return netip.Addr{}, false
	case a.IsUnspecified():
		return netip.Addr{}, true
	}
	return a, true
}

// Handle runs one client message through the RFC 2131 state machine. It
// never panics; whatever it cannot serve it drops with a reason.
func (c *Core) Handle(req *dhcp4.Message, now time.Time) (a Action) {
	defer func() {
		if a.Drop != "" {
			c.drops[a.Drop]++
		}
	}()
	c.expireUntil(now)
	r, drop := c.parseRequest(req)
	if drop != "" {
		return Action{Drop: drop}
	}
	switch r.typ {
	case dhcp4.Discover:
		return c.discover(r, now)
	case dhcp4.Request:
		return c.handleRequest(r, now)
	case dhcp4.Decline:
		return c.decline(r, now)
	case dhcp4.Release:
		return c.release(r)
	default:
		return c.inform(r)
	}
}

// reservedFor returns the reservation of the client's MAC if the client may
// use its address now: nobody else holds it and it is not quarantined. A
// client whose reserved address is quarantined (it declined it) is served
// from the pool meanwhile.
func (c *Core) reservedFor(r *clientMsg) (Reservation, bool) {
	res, ok := c.resByMAC[r.mac.String()]
	if !ok {
		return Reservation{}, false
	}
	if e := c.byAddr[res.Addr]; e != nil && (e.client != r.client || e.state == stateQuarantined) {
		return Reservation{}, false
	}
	return res, true
}

// validFor reports whether the client may keep (or get) addr.
func (c *Core) validFor(r *clientMsg, addr netip.Addr) bool {
	if res, ok := c.reservedFor(r); ok {
		return res.Addr == addr // a client with a usable reservation moves to it
	}
	return c.allowed(addr, r.mac)
}

// discover answers DHCPDISCOVER. The address is, in the order of RFC 2131
// 4.3.1: the client's reservation; its current binding (or outstanding
// offer); the address of its expired or released binding, if still free; the
// address it asks for (option 50), if free; else a stable pick for its key.
func (c *Core) discover(r *clientMsg, now time.Time) Action {
	var released *Lease
	e := c.byClient[r.client]
	if e != nil && e.state == stateProbing {
		return Action{Drop: DropProbePending}
	}
	if e != nil && !c.validFor(r, e.addr) {
		// The client's address is no longer its to have (a reservation
		// moved it, or its address left the pool). A client in INIT has
		// given it up: free it now.
		if e.state == stateBound {
			l := e.lease
			released = &l
		}
		c.removeEntry(e)
		e = nil
	}
	if e == nil {
		var probe bool
		addr, ok := netip.Addr{}, false
		if res, has := c.reservedFor(r); has {
			addr, ok = res.Addr, true
		}
		if !ok {
			if last, has := c.memory[r.client]; has && c.pool.isFree(last) {
				addr, ok = last, true
			}
		}
		if !ok && r.requested.IsValid() && c.pool.isFree(r.requested) && c.dynamic(r.requested) {
			addr, ok = r.requested, true
		}
		if !ok {
			addr, ok = c.pool.pick(hashKey(r.client))
		}
		if !ok {
			return Action{Drop: DropNoFreeAddress, Released: released}
		}
		if c.dynamic(addr) {
			probe = c.memoryAddr[addr] != r.client
			c.takeFree(r.client, addr)
		}
		st, hold := stateOffered, now.Add(c.cfg.OfferHold)
		if probe {
			st = stateProbing
		}
		e = c.addEntry(addr, st, r.client, c.leaseFromRequest(r, Lease{}), hold)
		if probe {
			c.probes++
			return Action{Probe: addr, Released: released}
		}
	} else if e.state == stateOffered {
		c.setState(e, stateOffered, now.Add(c.cfg.OfferHold))
	}
	c.offers++
	lt := c.grantTime(r)
	reply := c.newReply(r, replyOffer, lt, e.addr)
	return Action{Reply: reply, To: c.dest(r, reply, false), Released: released}
}

// handleRequest answers DHCPREQUEST (RFC 2131 4.3.2) in each of the client's
// states.
func (c *Core) handleRequest(r *clientMsg, now time.Time) Action {
	e := c.byClient[r.client]
	if r.hasServerID {
		// SELECTING: the client chose an offer.
		if r.serverID != c.server {
			if e != nil && (e.state == stateOffered || e.state == stateProbing) {
				c.removeEntry(e) // it chose another server: our offer is free again
			}
			return Action{Drop: DropWrongServer}
		}
		addr := r.requested
		if !addr.IsValid() {
			return Action{Drop: DropMalformed} // RFC 2131 table 5: option 50 MUST be sent
		}
		if e != nil && e.addr == addr && (e.state == stateOffered || e.state == stateBound) && c.validFor(r, addr) {
			return c.ack(r, e, now)
		}
		return c.nak(r, "requested address was not offered")
	}
	// RENEWING/REBINDING (ciaddr set) or INIT-REBOOT (option 50). The core
	// cannot tell RENEWING (unicast) from REBINDING (broadcast): both
	// verify ciaddr the same way.
	addr := r.ciaddr
	if !addr.IsValid() {
		addr = r.requested
	}
	if !addr.IsValid() {
		return Action{Drop: DropMalformed}
	}
	return c.confirm(r, e, addr, now)
}

// confirm answers a client that says it holds addr.
func (c *Core) confirm(r *clientMsg, e *leaseEntry, addr netip.Addr, now time.Time) Action {
	if !isHost(c.subnet, addr) {
		// RFC 2131 4.3.2: NAK a client on the wrong network.
		return c.nak(r, "address is not on this network")
	}
	if e != nil && e.addr == addr && (e.state == stateBound || e.state == stateOffered) {
		if c.validFor(r, addr) {
			return c.ack(r, e, now)
		}
		var released *Lease
		if e.state == stateBound {
			l := e.lease
			released = &l
		}
		c.removeEntry(e)
		a := c.nak(r, "address is no longer available to this client")
		a.Released = released
		return a
	}
	_, reserved := c.resByAddr[addr]
	if !reserved && !c.pool.contains(addr) && addr != c.server {
		// Not an address we hand out: maybe another server's.
		if c.cfg.Authoritative {
			return c.nak(r, "address is not served here")
		}
		return Action{Drop: DropUnknownClient}
	}
	if c.byAddr[addr] != nil || !c.validFor(r, addr) {
		return c.nak(r, "address is not available to this client")
	}
	if e != nil && e.state == stateBound {
		return c.nak(r, "client holds another address")
	}
	if c.memory[r.client] != addr && !c.cfg.Authoritative {
		// RFC 2131 4.3.2: no record of this client: remain silent.
		return Action{Drop: DropUnknownClient}
	}
	// Our record says the address was this client's and is still free, or
	// we are authoritative and it is free: rebuild the lease without a
	// probe (the client is the one using it).
	if e != nil {
		c.removeEntry(e) // an outstanding offer of another address
	}
	c.takeFree(r.client, addr)
	e = c.addEntry(addr, stateOffered, r.client, Lease{}, now.Add(c.cfg.OfferHold))
	return c.ack(r, e, now)
}

// ack binds e to the client and builds the DHCPACK.
func (c *Core) ack(r *clientMsg, e *leaseEntry, now time.Time) Action {
	lt := c.grantTime(r)
	l := c.leaseFromRequest(r, e.lease)
	l.Addr = e.addr
	c.bind(r.client, l, now.Add(lt))
	c.acks++
	commit := e.lease
	reply := c.newReply(r, replyAck, lt, e.addr)
	return Action{Reply: reply, To: c.dest(r, reply, false), Commit: &commit}
}

func (c *Core) nak(r *clientMsg, why string) Action {
	c.naks++
	reply := c.newReply(r, replyNak, 0, netip.Addr{})
	reply.Options = c.replyOptions(r, replyNak, 0, "", why)
	return Action{Reply: reply, To: c.dest(r, reply, true)}
}

// decline handles DHCPDECLINE (RFC 2131 4.3.3): the client found its address
// in use. Only the client holding the address can decline it (anyone else
// could otherwise take addresses out of the pool).
func (c *Core) decline(r *clientMsg, now time.Time) Action {
	if r.hasServerID && r.serverID != c.server {
		return Action{Drop: DropWrongServer}
	}
	addr := r.requested
	if !addr.IsValid() {
		return Action{Drop: DropMalformed} // RFC 2131 table 5: option 50 MUST be sent
	}
	e := c.byAddr[addr]
	if e == nil || e.client != r.client || (e.state != stateBound && e.state != stateOffered) {
		return Action{Drop: DropNotOurs}
	}
	c.declines++
	return Action{Released: c.quarantine(addr, now)}
}

// release handles DHCPRELEASE (RFC 2131 4.3.4): the address is free again,
// and remembered as the client's.
func (c *Core) release(r *clientMsg) Action {
	if r.hasServerID && r.serverID != c.server {
		return Action{Drop: DropWrongServer}
	}
	e := c.byAddr[r.ciaddr]
	if !r.ciaddr.IsValid() || e == nil || e.client != r.client || e.state != stateBound {
		return Action{Drop: DropNotOurs}
	}
	l := e.lease
	c.removeEntry(e)
	c.remember(r.client, l.Addr)
	c.releases++
	return Action{Released: &l}
}

// inform answers DHCPINFORM (RFC 2131 4.3.5): configuration only, no lease,
// unicast to ciaddr.
func (c *Core) inform(r *clientMsg) Action {
	if !r.ciaddr.IsValid() {
		return Action{Drop: DropMalformed}
	}
	if !c.subnet.Contains(r.ciaddr) {
		return Action{Drop: DropOtherSubnet}
	}
	c.informs++
	reply := c.newReply(r, replyInform, 0, netip.Addr{})
	return Action{Reply: reply, To: c.dest(r, reply, false)}
}

// grantTime is the lease time for r: LeaseTime, or less if the client asked
// for less (RFC 2131 4.3.1), but never under MinLeaseTime.
func (c *Core) grantTime(r *clientMsg) time.Duration {
	lt := c.cfg.LeaseTime
	if r.leaseTime > 0 && r.leaseTime < lt {
		lt = max(r.leaseTime, MinLeaseTime)
	}
	return lt
}

// leaseFromRequest fills the client's details into l, keeping what the
// request does not say (a RENEW often carries no host name).
func (c *Core) leaseFromRequest(r *clientMsg, l Lease) Lease {
	l.MAC = r.mac.String()
	l.ClientID = ""
	if r.id != nil {
		l.ClientID = hex.EncodeToString(r.id)
	}
	if r.hostname != "" {
		l.Hostname = r.hostname
	}
	if r.fqdn != "" {
		l.FQDN = r.fqdn
	}
	if r.vendor != "" {
		l.VendorClass = r.vendor
	}
	l.Reserved = false
	if res, ok := c.resByMAC[l.MAC]; ok && res.Addr == l.Addr && l.Addr.IsValid() {
		l.Reserved = true
		if res.Hostname != "" {
			l.Hostname = res.Hostname
		}
	}
	return l
}

// newReply builds a reply header per RFC 2131 table 3 and its options.
func (c *Core) newReply(r *clientMsg, kind replyKind, lt time.Duration, yiaddr netip.Addr) *dhcp4.Message {
	m := r.msg
	reply := &dhcp4.Message{
		Op:    dhcp4.BootReply,
		HType: dhcp4.HTypeEthernet,
		XID:   m.XID,
		// Only the broadcast bit; the others are reserved and MUST be zero
		// (RFC 2131 2).
		Flags:  m.Flags & dhcp4.FlagBroadcast,
		YIAddr: yiaddr,
		GIAddr: r.giaddr,
		CHAddr: slices.Clone(r.mac),
	}
	switch kind {
	case replyAck, replyInform:
		reply.CIAddr = r.ciaddr // "ciaddr from DHCPREQUEST or 0"; INFORM's ciaddr
	case replyNak:
		if r.giaddr.IsValid() {
			// RFC 2131 4.3.2: a relayed NAK has the broadcast bit set so
			// that the relay broadcasts it to the client.
			reply.Flags |= dhcp4.FlagBroadcast
		}
	}
	if kind != replyNak {
		hostname := ""
		if res, ok := c.resByMAC[r.mac.String()]; ok && res.Addr == yiaddr {
			hostname = res.Hostname
		}
		reply.Options = c.replyOptions(r, kind, lt, hostname, "")
	}
	return reply
}

// dest is where a reply goes (RFC 2131 4.1): through the relay if there is
// one; a NAK is broadcast; to ciaddr if the client has one; broadcast if the
// client asked; else to yiaddr at chaddr.
func (c *Core) dest(r *clientMsg, reply *dhcp4.Message, nak bool) Dest {
	switch {
	case r.giaddr.IsValid():
		return Dest{Kind: DestRelay, Addr: r.giaddr}
	case nak:
		return Dest{Kind: DestBroadcast, Addr: broadcastAll}
	case r.ciaddr.IsValid():
		return Dest{Kind: DestUnicast, Addr: r.ciaddr}
	case r.msg.Flags&dhcp4.FlagBroadcast != 0:
		return Dest{Kind: DestBroadcast, Addr: broadcastAll}
	}
	return Dest{Kind: DestHardware, Addr: reply.YIAddr, HW: slices.Clone(r.mac)}
}

var broadcastAll = netip.AddrFrom4([4]byte{255, 255, 255, 255})
