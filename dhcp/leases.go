package dhcp

import (
	"container/heap"
	"encoding/hex"
	"net"
	"net/netip"
	"time"
)

// clientKey identifies a client (RFC 2131 4.2): "id:" and the hex of its
// client identifier (option 61) when it sends one, else "hw:" and its chaddr.
type clientKey string

func idKey(id []byte) clientKey             { return clientKey("id:" + hex.EncodeToString(id)) }
func macKey(mac net.HardwareAddr) clientKey { return clientKey("hw:" + mac.String()) }

func parseHex(s string) ([]byte, bool) {
	b, err := hex.DecodeString(s)
	return b, err == nil
}

// entryState is what an address with an entry is doing.
type entryState uint8

const (
	stateProbing     entryState = iota + 1 // held for a client while the server probes it
	stateOffered                           // offered to a client, waiting for its REQUEST
	stateBound                             // leased
	stateQuarantined                       // declined or found in use; no client
	numStates
)

// leaseEntry is an address that is not free: probed, offered, bound or
// quarantined. Reserved addresses without a lease have no entry.
type leaseEntry struct {
	addr    netip.Addr
	state   entryState
	client  clientKey // "" when quarantined
	lease   Lease     // Addr, MAC, names; Expires is kept equal to expires while bound
	expires time.Time
	index   int // position in leaseTable.heap
}

// leaseTable indexes the entries by address, by client and by expiry, and
// remembers each client's last address.
type leaseTable struct {
	byAddr   map[netip.Addr]*leaseEntry
	byClient map[clientKey]*leaseEntry // a client has at most one entry
	heap     entryHeap                 // min-heap on expires: Expire and NextExpiry in O(log n)
	counts   [numStates]int

	// memory is each client's last bound address, kept after the lease
	// ends until the address goes to someone else; memoryAddr is its
	// inverse (one client per address). Only dynamic pool addresses are
	// remembered: reservations need no memory.
	memory     map[clientKey]netip.Addr
	memoryAddr map[netip.Addr]clientKey
}

func newLeaseTable() leaseTable {
	return leaseTable{
		byAddr:     map[netip.Addr]*leaseEntry{},
		byClient:   map[clientKey]*leaseEntry{},
		memory:     map[clientKey]netip.Addr{},
		memoryAddr: map[netip.Addr]clientKey{},
	}
}

type entryHeap []*leaseEntry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*leaseEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// dynamic reports whether a is a pool address that can be handed to anyone:
// in the pool, not reserved, not the server.
func (c *Core) dynamic(a netip.Addr) bool {
	if _, reserved := c.resByAddr[a]; reserved {
		return false
	}
	return a != c.server && c.pool.contains(a)
}

// addEntry puts a new entry on addr, which must have none.
func (c *Core) addEntry(addr netip.Addr, st entryState, client clientKey, l Lease, expires time.Time) *leaseEntry {
	if old := c.byClient[client]; client != "" && old != nil {
		c.removeEntry(old) // a client has one entry: a new one replaces the old
	}
	l.Addr = addr
	e := &leaseEntry{addr: addr, state: st, client: client, lease: l, expires: expires}
	if st == stateBound {
		e.lease.Expires = expires
	}
	c.byAddr[addr] = e
	if client != "" {
		c.byClient[client] = e
	}
	heap.Push(&c.heap, e)
	c.counts[st]++
	c.pool.take(addr)
	return e
}

// removeEntry deletes e and frees its address.
func (c *Core) removeEntry(e *leaseEntry) {
	if c.byAddr[e.addr] != e {
		return
	}
	delete(c.byAddr, e.addr)
	if e.client != "" && c.byClient[e.client] == e {
		delete(c.byClient, e.client)
	}
	if e.index >= 0 {
		heap.Remove(&c.heap, e.index)
	}
	c.counts[e.state]--
	if c.dynamic(e.addr) {
		_, remembered := c.memoryAddr[e.addr]
		c.pool.give(e.addr, remembered)
	}
}

func (c *Core) setState(e *leaseEntry, st entryState, expires time.Time) {
	c.counts[e.state]--
	c.counts[st]++
	e.state = st
	e.expires = expires
	if st == stateBound {
		e.lease.Expires = expires
	}
	heap.Fix(&c.heap, e.index)
}

// bind makes l bound to client until expires, on an address that is free or
// already the client's entry, and remembers the pair.
func (c *Core) bind(client clientKey, l Lease, expires time.Time) *leaseEntry {
	e := c.byAddr[l.Addr]
	if e != nil && e.client == client {
		addr := e.addr
		e.lease = l
		e.lease.Addr = addr
		c.setState(e, stateBound, expires)
	} else {
		e = c.addEntry(l.Addr, stateBound, client, l, expires)
	}
	c.remember(client, e.addr)
	return e
}

// quarantine takes addr away from whoever holds it, for cfg.Quarantine.
// It returns the lease that was bound on it, if any.
func (c *Core) quarantine(addr netip.Addr, now time.Time) *Lease {
	c.forgetAddr(addr)
	until := now.Add(c.cfg.Quarantine)
	e := c.byAddr[addr]
	if e == nil {
		c.addEntry(addr, stateQuarantined, "", Lease{}, until)
		return nil
	}
	var was *Lease
	if e.state == stateBound {
		l := e.lease
		was = &l
	}
	if e.client != "" && c.byClient[e.client] == e {
		delete(c.byClient, e.client)
	}
	e.client = ""
	e.lease = Lease{Addr: addr}
	c.setState(e, stateQuarantined, until)
	return was
}

// remember records that client last held addr (dynamic pool addresses only).
func (c *Core) remember(client clientKey, addr netip.Addr) {
	if !c.dynamic(addr) {
		return
	}
	if old, ok := c.memory[client]; ok && old != addr {
		delete(c.memoryAddr, old)
		c.pool.setRemembered(old, false)
	}
	if other, ok := c.memoryAddr[addr]; ok && other != client {
		delete(c.memory, other)
	}
	c.memory[client] = addr
	c.memoryAddr[addr] = client
	c.pool.setRemembered(addr, true)
}

// forgetAddr drops whatever client remembered addr.
func (c *Core) forgetAddr(addr netip.Addr) {
	if client, ok := c.memoryAddr[addr]; ok {
		delete(c.memoryAddr, addr)
		delete(c.memory, client)
		c.pool.setRemembered(addr, false)
	}
}

// takeFree claims a free address for an entry about to be created: the
// client that remembered it, if another, forgets it.
func (c *Core) takeFree(client clientKey, addr netip.Addr) {
	if other, ok := c.memoryAddr[addr]; ok && other != client {
		c.forgetAddr(addr)
	}
}

// expireUntil ends everything that expires at or before now. Bound leases
// that end are queued for Expire and remembered for their client.
func (c *Core) expireUntil(now time.Time) {
	for len(c.heap) > 0 && !c.heap[0].expires.After(now) {
		e := c.heap[0]
		if e.state == stateBound {
			c.expired = append(c.expired, e.lease)
		}
		client, addr, wasBound := e.client, e.addr, e.state == stateBound
		c.removeEntry(e)
		if wasBound && client != "" {
			c.remember(client, addr)
		}
	}
}
