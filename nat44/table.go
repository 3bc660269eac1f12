package nat44

import (
	"container/heap"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Table is the pure mapping table: no I/O, no clock (callers pass now).
// Lookups by key are O(1), by internal host O(that host's mappings), the
// free-port search O(1) word reads (a bitmap with a summary level per
// protocol) and expiry O(log n) through a heap, so the cost of a
// port-mapping request does not grow with the number of mappings.
// A Table is not safe for concurrent use.
type Table struct {
	store[Key, Mapping]
	used map[Proto]*portSet // external ports held, per protocol
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{store: newStore[Key, Mapping](), used: map[Proto]*portSet{TCP: new(portSet), UDP: new(portSet)}}
}

// Put adds m, or refreshes it when the same internal endpoint already holds
// the key (a renewal changes expiry, owner and description). A key held by
// another internal endpoint is refused with ErrConflict, as is a mapping that
// expired already.
func (t *Table) Put(m Mapping, now time.Time) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if !m.Permanent() && !m.Expires.After(now) {
		return fmt.Errorf("%w %v: expires in the past", ErrInvalid, m.Key())
	}
	k := m.Key()
	if old, ok := t.m[k]; ok && old.Internal != m.Internal {
		return fmt.Errorf("%w: %v is mapped to %v (%s)", ErrConflict, k, old.Internal, old.Owner)
	}
	t.set(m)
	return nil
}

// Replace installs m whatever holds its key (the administrator's static
// forwards win over dynamic mappings) and returns the mapping it displaced.
func (t *Table) Replace(m Mapping) (old Mapping, replaced bool, err error) {
	if err := m.Validate(); err != nil {
		return Mapping{}, false, err
	}
	old, replaced = t.m[m.Key()]
	t.set(m)
	return old, replaced, nil
}

func (t *Table) set(m Mapping) {
	t.store.set(m)
	t.used[m.Proto].add(m.ExternalPort)
}

// Delete removes the mapping with key k.
func (t *Table) Delete(k Key) (Mapping, error) {
	m, ok := t.store.delete(k)
	if !ok {
		return Mapping{}, fmt.Errorf("%w: %v", ErrNotFound, k)
	}
	t.used[k.Proto].remove(k.ExternalPort)
	return m, nil
}

// Expire removes and returns the mappings whose time has come.
func (t *Table) Expire(now time.Time) []Mapping {
	gone := t.store.expire(now)
	for _, m := range gone {
		t.used[m.Proto].remove(m.ExternalPort)
	}
	return gone
}

// Taken reports whether the external port of k is held.
func (t *Table) Taken(k Key) bool {
	s := t.used[k.Proto]
	return s != nil && s.has(k.ExternalPort)
}

// Nearest returns the free external port of proto in [lo, hi] closest to
// want (the higher one on a tie), skipping the ports reserved holds; ok is
// false when the range has none. It reads O(1) bitmap words per port that
// reserved refuses.
func (t *Table) Nearest(proto Proto, want, lo, hi uint16, reserved func(uint16) bool) (port uint16, ok bool) {
	s := t.used[proto]
	if s == nil || lo > hi || lo == 0 {
		return 0, false
	}
	want = min(max(want, lo), hi)
	up, down := int(want), int(want)
	upOK, downOK := true, true
	for upOK || downOK {
		if upOK {
			up = s.nextFree(up, int(hi))
			if up < 0 {
				upOK = false
			}
		}
		if downOK {
			down = s.prevFree(down, int(lo))
			if down < 0 {
				downOK = false
			}
		}
		// Take the closer candidate; refused by reserved, step past it.
		switch {
		case upOK && (!downOK || up-int(want) <= int(want)-down):
			if !reserved(uint16(up)) {
				return uint16(up), true
			}
			if up++; up > int(hi) {
				upOK = false
			}
		case downOK:
			if !reserved(uint16(down)) {
				return uint16(down), true
			}
			if down--; down < int(lo) {
				downOK = false
			}
		}
	}
	return 0, false
}

// List returns the mappings ordered by protocol and external port.
func (t *Table) List() []Mapping {
	out := t.store.list()
	slices.SortFunc(out, func(a, b Mapping) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

// ByHost returns the mappings of internal host h, ordered as List.
func (t *Table) ByHost(h netip.Addr) []Mapping {
	out := t.store.byHostList(h)
	slices.SortFunc(out, func(a, b Mapping) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

func compareKeys(a, b Key) int {
	if a.Proto != b.Proto {
		return int(a.Proto) - int(b.Proto)
	}
	return int(a.ExternalPort) - int(b.ExternalPort)
}

// PinholeTable is the pure table of IPv6 pinholes, with the same
// complexity as Table. It gives each pinhole a UniqueID.
type PinholeTable struct {
	store[PinholeKey, Pinhole]
	ids    map[uint16]PinholeKey
	nextID uint16
	// ula indexes the pinholes of ULA hosts by protocol and port: under
	// NAT66 they share one external address, so a port is one host's.
	ula map[Key]map[PinholeKey]struct{}
}

// NewPinholeTable returns an empty table.
func NewPinholeTable() *PinholeTable {
	return &PinholeTable{store: newStore[PinholeKey, Pinhole](), ids: make(map[uint16]PinholeKey), nextID: 1, ula: make(map[Key]map[PinholeKey]struct{})}
}

// IsULA reports whether a is a unique local IPv6 address (fc00::/7, RFC
// 4193): a LAN numbered from one reaches the internet only through NAT66.
func IsULA(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && a.As16()[0]&0xfe == 0xfc
}

// nat66Key is the external protocol and port of a pinhole under NAT66:
// the internal port, as for any pinhole.
func (k PinholeKey) nat66Key() Key { return Key{k.Proto, k.Internal.Port()} }

func (t *PinholeTable) indexULA(k PinholeKey) {
	if !IsULA(k.Internal.Addr()) {
		return
	}
	ks := t.ula[k.nat66Key()]
	if ks == nil {
		ks = make(map[PinholeKey]struct{})
		t.ula[k.nat66Key()] = ks
	}
	ks[k] = struct{}{}
}

func (t *PinholeTable) unindexULA(k PinholeKey) {
	if ks := t.ula[k.nat66Key()]; ks != nil {
		delete(ks, k)
		if len(ks) == 0 {
			delete(t.ula, k.nat66Key())
		}
	}
}

// NAT66Target is where inbound k (protocol and port on the NAT66
// address) goes: the ULA endpoint of the pinholes on that port. Should two
// ULA hosts hold the port (pinholes opened before NAT66 was on), the one
// with the lowest ID, the oldest, has it.
func (t *PinholeTable) NAT66Target(k Key) (netip.AddrPort, bool) {
	var best Pinhole
	for pk := range t.ula[k] {
		if p := t.m[pk]; best.ID == 0 || p.ID < best.ID {
			best = p
		}
	}
	return best.Internal, best.ID != 0
}

// NAT66Targets calls fn for each protocol and port that a ULA host's
// pinhole holds, with its NAT66Target, in no order.
func (t *PinholeTable) NAT66Targets(fn func(Key, netip.AddrPort)) {
	for k := range t.ula {
		if ap, ok := t.NAT66Target(k); ok {
			fn(k, ap)
		}
	}
}

// Put adds or renews p (a renewal keeps the ID). A new pinhole gets a
// free ID, unless p.ID is set and free (a pinhole read back from disk).
// It refuses an invalid or expired pinhole.
func (t *PinholeTable) Put(p Pinhole, now time.Time) (Pinhole, error) {
	if err := p.Validate(); err != nil {
		return Pinhole{}, err
	}
	if !p.Permanent() && !p.Expires.After(now) {
		return Pinhole{}, fmt.Errorf("%w %v: expires in the past", ErrInvalid, p.PinholeKey)
	}
	if old, ok := t.m[p.PinholeKey]; ok {
		p.ID = old.ID
	} else {
		if _, taken := t.ids[p.ID]; p.ID == 0 || taken {
			id, ok := t.freeID()
			if !ok {
				return Pinhole{}, fmt.Errorf("%w: no free pinhole ID", ErrTableFull)
			}
			p.ID = id
		}
		t.ids[p.ID] = p.PinholeKey
		t.indexULA(p.PinholeKey)
	}
	t.set(p)
	return p, nil
}

func (t *PinholeTable) freeID() (uint16, bool) {
	for range 1 << 16 {
		id := t.nextID
		t.nextID++
		if t.nextID == 0 {
			t.nextID = 1
		}
		if _, taken := t.ids[id]; !taken && id != 0 {
			return id, true
		}
	}
	return 0, false
}

// ByID returns the pinhole with UniqueID id.
func (t *PinholeTable) ByID(id uint16) (Pinhole, bool) {
	k, ok := t.ids[id]
	if !ok {
		return Pinhole{}, false
	}
	return t.Get(k)
}

// Delete removes the pinhole with key k.
func (t *PinholeTable) Delete(k PinholeKey) (Pinhole, error) {
	p, ok := t.store.delete(k)
	if !ok {
		return Pinhole{}, fmt.Errorf("%w: pinhole %v", ErrNotFound, k)
	}
	delete(t.ids, p.ID)
	t.unindexULA(k)
	return p, nil
}

// Expire removes and returns the pinholes whose time has come.
func (t *PinholeTable) Expire(now time.Time) []Pinhole {
	gone := t.store.expire(now)
	for _, p := range gone {
		delete(t.ids, p.ID)
		t.unindexULA(p.PinholeKey)
	}
	return gone
}

// List returns the pinholes ordered by ID.
func (t *PinholeTable) List() []Pinhole {
	out := t.store.list()
	slices.SortFunc(out, func(a, b Pinhole) int { return int(a.ID) - int(b.ID) })
	return out
}

// ByHost returns the pinholes of internal host h, ordered by ID.
func (t *PinholeTable) ByHost(h netip.Addr) []Pinhole {
	out := t.store.byHostList(h)
	slices.SortFunc(out, func(a, b Pinhole) int { return int(a.ID) - int(b.ID) })
	return out
}

// entry is what a store holds: a mapping or a pinhole.
type entry[K comparable] interface {
	Key() K
	Host() netip.Addr
	expiry() time.Time
}

func (m Mapping) expiry() time.Time { return m.Expires }
func (p Pinhole) expiry() time.Time { return p.Expires }

// Key is the pinhole's identity in its table.
func (p Pinhole) Key() PinholeKey { return p.PinholeKey }

// store is what Table and PinholeTable share: entries by key, by internal
// host, and by expiry.
type store[K comparable, V entry[K]] struct {
	m      map[K]V
	byHost map[netip.Addr]map[K]struct{}
	exp    expiryHeap[K] // the entries that expire
}

func newStore[K comparable, V entry[K]]() store[K, V] {
	return store[K, V]{m: make(map[K]V), byHost: make(map[netip.Addr]map[K]struct{}), exp: expiryHeap[K]{index: make(map[K]int)}}
}

// Len is the number of entries.
func (s *store[K, V]) Len() int { return len(s.m) }

// Get returns the entry with key k.
func (s *store[K, V]) Get(k K) (V, bool) {
	v, ok := s.m[k]
	return v, ok
}

// HostLen is the number of entries of internal host h.
func (s *store[K, V]) HostLen(h netip.Addr) int { return len(s.byHost[h]) }

// All calls fn for every entry, in no order, without copying the table.
func (s *store[K, V]) All(fn func(V)) {
	for _, v := range s.m {
		fn(v)
	}
}

// NextExpiry is when the next entry expires; ok is false if none does.
func (s *store[K, V]) NextExpiry() (at time.Time, ok bool) {
	if len(s.exp.items) == 0 {
		return time.Time{}, false
	}
	return s.exp.items[0].at, true
}

func (s *store[K, V]) set(v V) {
	k := v.Key()
	if old, ok := s.m[k]; ok && old.Host() != v.Host() {
		s.unindex(k, old.Host())
	}
	s.m[k] = v
	hk := s.byHost[v.Host()]
	if hk == nil {
		hk = make(map[K]struct{})
		s.byHost[v.Host()] = hk
	}
	hk[k] = struct{}{}
	at := v.expiry()
	i, timed := s.exp.index[k]
	switch {
	case timed && at.IsZero():
		heap.Remove(&s.exp, i)
	case timed:
		s.exp.items[i].at = at
		heap.Fix(&s.exp, i)
	case !at.IsZero():
		heap.Push(&s.exp, expiryItem[K]{key: k, at: at})
	}
}

func (s *store[K, V]) unindex(k K, h netip.Addr) {
	if hk := s.byHost[h]; hk != nil {
		delete(hk, k)
		if len(hk) == 0 {
			delete(s.byHost, h)
		}
	}
}

func (s *store[K, V]) delete(k K) (V, bool) {
	v, ok := s.m[k]
	if !ok {
		return v, false
	}
	delete(s.m, k)
	s.unindex(k, v.Host())
	if i, ok := s.exp.index[k]; ok {
		heap.Remove(&s.exp, i)
	}
	return v, true
}

func (s *store[K, V]) expire(now time.Time) []V {
	var out []V
	for len(s.exp.items) > 0 && !s.exp.items[0].at.After(now) {
		it := heap.Pop(&s.exp).(expiryItem[K])
		v := s.m[it.key]
		out = append(out, v)
		delete(s.m, it.key)
		s.unindex(it.key, v.Host())
	}
	return out
}

func (s *store[K, V]) list() []V {
	out := make([]V, 0, len(s.m))
	for _, v := range s.m {
		out = append(out, v)
	}
	return out
}

func (s *store[K, V]) byHostList(h netip.Addr) []V {
	hk := s.byHost[h]
	out := make([]V, 0, len(hk))
	for k := range hk {
		out = append(out, s.m[k])
	}
	return out
}

type expiryItem[K comparable] struct {
	key K
	at  time.Time
}

// expiryHeap is a min-heap on expiry time. index learns every position
// change, so that an update or removal is O(log n).
type expiryHeap[K comparable] struct {
	items []expiryItem[K]
	index map[K]int
}

func (h *expiryHeap[K]) Len() int           { return len(h.items) }
func (h *expiryHeap[K]) Less(i, j int) bool { return h.items[i].at.Before(h.items[j].at) }
func (h *expiryHeap[K]) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].key] = i
	h.index[h.items[j].key] = j
}
func (h *expiryHeap[K]) Push(x any) {
	it := x.(expiryItem[K])
	h.index[it.key] = len(h.items)
	h.items = append(h.items, it)
}
func (h *expiryHeap[K]) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	delete(h.index, it.key)
	return it
}
