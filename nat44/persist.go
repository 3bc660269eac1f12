package nat44

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"gateway/internal/journal"
)

// stateFile is the mapping journal in the state directory.
const stateFile = "mappings.jsonl"

// record is one line of the state journal.
type record struct {
	Put   *Mapping    `json:"put,omitempty"`
	Del   *Key        `json:"del,omitempty"`
	Pin   *Pinhole    `json:"pin,omitempty"`
	Unpin *PinholeKey `json:"unpin,omitempty"`
	Epoch *epoch      `json:"epoch,omitempty"`
}

// epoch is when the mapping state began (RFC 6887 §8.5, RFC 6886 §3.6):
// it restarts when the state is lost or the external address changes.
type epoch struct {
	Start time.Time  `json:"start"`
	WAN   netip.Addr `json:"wan,omitzero"`
}

// stateStore keeps the mappings, pinholes and epoch in a group-committed
// journal. Records of timed entries carry their expiry plus the headroom,
// and durable remembers that expiry: a renewal that stays inside it needs
// no write, so a client renewing every two minutes costs a write per
// headroom, not per request. The maps are guarded by NAT.mu.
type stateStore struct {
	j           *journal.Journal
	batcher     *journal.Batcher
	durable     map[Key]time.Time // expiry on disk of each dynamic mapping; zero: permanent
	durablePins map[PinholeKey]time.Time
	// renewed and renewedPins hold the entries renewed inside their
	// headroom since their last record: the next write tops them up in
	// the same fsync, so that clients renewing on different schedules
	// share writes instead of each costing its own.
	renewed     map[Key]bool
	renewedPins map[PinholeKey]bool
}

// openStore replays path into n's tables and epoch. An entry that expired
// while the daemon was down is dropped; a missing epoch (new or lost
// state) starts one now.
func openStore(path string, n *NAT) (*stateStore, error) {
	now := n.clock.Now()
	st := &stateStore{
		durable: make(map[Key]time.Time), durablePins: make(map[PinholeKey]time.Time),
		renewed: make(map[Key]bool), renewedPins: make(map[PinholeKey]bool),
	}
	hadEpoch := false
	j, err := journal.Open(path, func(b []byte) error {
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		switch {
		case r.Put != nil:
			m := *r.Put
			k := m.Key()
			if m.Owner == OwnerStatic {
				return nil // the config's, not the journal's
			}
			if !m.Permanent() && !m.Expires.After(now) {
				if _, err := n.table.Delete(k); err == nil {
					delete(st.durable, k)
				}
				return nil // expired while we were down
			}
			if _, _, err := n.table.Replace(m); err != nil {
				return err
			}
			st.durable[k] = m.Expires
		case r.Del != nil:
			n.table.Delete(*r.Del)
			delete(st.durable, *r.Del)
		case r.Pin != nil:
			p := *r.Pin
			if !p.Permanent() && !p.Expires.After(now) {
				n.pins.Delete(p.Key())
				delete(st.durablePins, p.Key())
				return nil
			}
			if _, err := n.pins.Put(p, now); err != nil {
				return err
			}
			st.durablePins[p.Key()] = p.Expires
		case r.Unpin != nil:
			n.pins.Delete(*r.Unpin)
			delete(st.durablePins, *r.Unpin)
		case r.Epoch != nil:
			n.epoch, hadEpoch = *r.Epoch, true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nat44: load mappings: %w", err)
	}
	st.j = j
	if !hadEpoch {
		n.epoch = epoch{Start: now}
		if err := j.Append(record{Epoch: &n.epoch}); err != nil {
			j.Close()
			return nil, fmt.Errorf("nat44: %w", err)
		}
	}
	st.batcher = journal.NewBatcher(j, n.table.Len()+n.pins.Len()+1, n.liveRecords)
	if c := n.table.Len() + n.pins.Len(); c > 0 {
		n.log.Info("mappings restored", slog.Int("mappings", n.table.Len()), slog.Int("pinholes", n.pins.Len()), slog.String("file", path))
	}
	return st, nil
}

// close writes recs as the whole journal (the exact state, on a clean
// stop) and closes it.
func (st *stateStore) close(recs []any) error {
	st.batcher.Flush()
	err := st.j.Compact(recs)
	if cerr := st.j.Close(); err == nil {
		err = cerr
	}
	return err
}

// liveRecords is the state as records, for compaction: what is on disk
// now, headroom included.
func (n *NAT) liveRecords() []any {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.liveRecordsLocked(false)
}

// liveRecordsLocked lists the epoch, the dynamic mappings and the pinholes
// as records; exact writes the promised expiries, else the durable ones.
func (n *NAT) liveRecordsLocked(exact bool) []any {
	ep := n.epoch
	out := []any{record{Epoch: &ep}}
	n.table.All(func(m Mapping) {
		if m.Owner == OwnerStatic {
			return
		}
		if d, ok := n.store.durable[m.Key()]; ok && !exact && !m.Permanent() && d.After(m.Expires) {
			m.Expires = d
		}
		out = append(out, record{Put: &m})
	})
	n.pins.All(func(p Pinhole) {
		if d, ok := n.store.durablePins[p.Key()]; ok && !exact && !p.Permanent() && d.After(p.Expires) {
			p.Expires = d
		}
		out = append(out, record{Pin: &p})
	})
	return out
}

// putRecordLocked returns the record that makes m durable, or none when
// the disk already covers it: m differs from old only by an expiry that
// the record on disk reaches.
func (n *NAT) putRecordLocked(m, old Mapping, had bool) []any {
	if n.store == nil || m.Owner == OwnerStatic {
		return nil
	}
	k := m.Key()
	d, onDisk := n.store.durable[k]
	if had && onDisk && sameButExpiry(old, m) && covered(m.Expires, d) {
		n.counters.WritesSaved++
		if !m.Permanent() {
			n.store.renewed[k] = true
		}
		return nil
	}
	delete(n.store.renewed, k)
	return []any{n.mappingRecordLocked(m)}
}

// mappingRecordLocked is m's record with the headroom, noted as durable.
func (n *NAT) mappingRecordLocked(m Mapping) record {
	if !m.Permanent() {
		m.Expires = m.Expires.Add(n.cfg.Headroom)
	}
	n.store.durable[m.Key()] = m.Expires
	return record{Put: &m}
}

// pinholeRecordLocked is p's record with the headroom, noted as durable.
func (n *NAT) pinholeRecordLocked(p Pinhole) record {
	if !p.Permanent() {
		p.Expires = p.Expires.Add(n.cfg.Headroom)
	}
	n.store.durablePins[p.Key()] = p.Expires
	return record{Pin: &p}
}

// topUpsLocked returns fresh records of the entries renewed inside their
// headroom since their last record, to go with a write that happens
// anyway.
func (n *NAT) topUpsLocked() []any {
	var out []any
	for k := range n.store.renewed {
		if m, ok := n.table.Get(k); ok && m.Owner != OwnerStatic {
			out = append(out, n.mappingRecordLocked(m))
		}
	}
	for k := range n.store.renewedPins {
		if p, ok := n.pins.Get(k); ok {
			out = append(out, n.pinholeRecordLocked(p))
		}
	}
	clear(n.store.renewed)
	clear(n.store.renewedPins)
	return out
}

// covered reports whether the record on disk, expiring at onDisk (zero:
// permanent), already promises an entry expiring at expires.
func covered(expires, onDisk time.Time) bool {
	if expires.IsZero() || onDisk.IsZero() {
		return expires.IsZero() && onDisk.IsZero()
	}
	return !expires.After(onDisk)
}

func sameButExpiry(a, b Mapping) bool {
	a.Expires, b.Expires = time.Time{}, time.Time{}
	return a == b
}

func samePinButExpiry(a, b Pinhole) bool {
	a.Expires, b.Expires = time.Time{}, time.Time{}
	return a == b
}

// delRecordLocked returns the record that removes m from disk.
func (n *NAT) delRecordLocked(m Mapping) []any {
	if n.store == nil || m.Owner == OwnerStatic {
		return nil
	}
	k := m.Key()
	delete(n.store.durable, k)
	delete(n.store.renewed, k)
	return []any{record{Del: &k}}
}

// pinRecordLocked is putRecordLocked for pinholes.
func (n *NAT) pinRecordLocked(p, old Pinhole, had bool) []any {
	if n.store == nil {
		return nil
	}
	k := p.Key()
	d, onDisk := n.store.durablePins[k]
	if had && onDisk && samePinButExpiry(old, p) && covered(p.Expires, d) {
		n.counters.WritesSaved++
		if !p.Permanent() {
			n.store.renewedPins[k] = true
		}
		return nil
	}
	delete(n.store.renewedPins, k)
	return []any{n.pinholeRecordLocked(p)}
}

func (n *NAT) unpinRecordLocked(p Pinhole) []any {
	if n.store == nil {
		return nil
	}
	k := p.Key()
	delete(n.store.durablePins, k)
	delete(n.store.renewedPins, k)
	return []any{record{Unpin: &k}}
}

// submitLocked queues recs for the journal, in the order of the table's
// changes, and returns a function that waits until they are durable. The
// wait happens without the lock: no fsync under the table lock, and one
// fsync serves every request that queued meanwhile.
func (n *NAT) submitLocked(recs []any) (wait func() error) {
	if n.store == nil || len(recs) == 0 {
		return func() error { return nil }
	}
	recs = append(recs, n.topUpsLocked()...)
	n.counters.Writes += uint64(len(recs))
	done := make(chan error, 1)
	n.store.batcher.Submit(func(err error) {
		if err != nil {
			n.mu.Lock()
			n.counters.PersistError++
			// What durable says may not be on disk: write again next
			// time.
			clear(n.store.durable)
			clear(n.store.durablePins)
			n.mu.Unlock()
			n.log.Error("save mappings", slog.Any("err", err))
		}
		done <- err
	}, recs...)
	running := n.running
	return func() error {
		if !running {
			n.store.batcher.Flush() // no Run to write it: write it now
		}
		return <-done
	}
}
