package nat44

import (
	"container/heap"
	"fmt"
	"slices"
	"time"
)

// Table is the pure mapping table: no I/O, no clock (callers pass now).
// Lookups are O(1) and expiry is O(log n) through a heap, so the cost of a
// port-mapping request does not grow with the number of mappings.
// A Table is not safe for concurrent use.
type Table struct {
	m   map[Key]Mapping
	exp expiryHeap // the mappings that expire
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{m: make(map[Key]Mapping), exp: expiryHeap{index: make(map[Key]int)}}
}

// Len is the number of mappings.
func (t *Table) Len() int { return len(t.m) }

// Get returns the mapping with key k.
func (t *Table) Get(k Key) (Mapping, bool) {
	m, ok := t.m[k]
	return m, ok
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
	k := m.Key()
	t.m[k] = m
	i, timed := t.exp.index[k]
	switch {
	case timed && m.Permanent():
		heap.Remove(&t.exp, i)
	case timed:
		t.exp.items[i].at = m.Expires
		heap.Fix(&t.exp, i)
	case !m.Permanent():
		heap.Push(&t.exp, expiryItem{key: k, at: m.Expires})
	}
}

// Delete removes the mapping with key k.
func (t *Table) Delete(k Key) (Mapping, error) {
	m, ok := t.m[k]
	if !ok {
		return Mapping{}, fmt.Errorf("%w: %v", ErrNotFound, k)
	}
	delete(t.m, k)
	if i, ok := t.exp.index[k]; ok {
		heap.Remove(&t.exp, i)
	}
	return m, nil
}

// Expire removes and returns the mappings whose time has come.
func (t *Table) Expire(now time.Time) []Mapping {
	var out []Mapping
	for len(t.exp.items) > 0 && !t.exp.items[0].at.After(now) {
		it := heap.Pop(&t.exp).(expiryItem)
		out = append(out, t.m[it.key])
		delete(t.m, it.key)
	}
	if out != nil {
	}
	return out
}

// NextExpiry is when the next mapping expires; ok is false if none does.
func (t *Table) NextExpiry() (at time.Time, ok bool) {
	if len(t.exp.items) == 0 {
		return time.Time{}, false
	}
	return t.exp.items[0].at, true
}

// List returns the mappings ordered by protocol and external port.
func (t *Table) List() []Mapping {
	out := make([]Mapping, 0, len(t.m))
	for _, m := range t.m {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Mapping) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

// All calls fn for every mapping, in no order, without copying the table.
func (t *Table) All(fn func(Mapping)) {
	for _, m := range t.m {
		fn(m)
	}
}

func compareKeys(a, b Key) int {
	if a.Proto != b.Proto {
		return int(a.Proto) - int(b.Proto)
	}
	return int(a.ExternalPort) - int(b.ExternalPort)
}

type expiryItem struct {
	key Key
	at  time.Time
}

// expiryHeap is a min-heap on expiry time. index learns every position
// change, so that an update or removal is O(log n).
type expiryHeap struct {
	items []expiryItem
	index map[Key]int
}

func (h *expiryHeap) Len() int           { return len(h.items) }
func (h *expiryHeap) Less(i, j int) bool { return h.items[i].at.Before(h.items[j].at) }
func (h *expiryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].key] = i
	h.index[h.items[j].key] = j
}
func (h *expiryHeap) Push(x any) {
	it := x.(expiryItem)
	h.index[it.key] = len(h.items)
	h.items = append(h.items, it)
}
func (h *expiryHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	delete(h.index, it.key)
	return it
}
