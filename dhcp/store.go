package dhcp

import (
	"net/netip"
	"sync"
	"time"

	"gateway/internal/journal"
)

// Write-ahead headroom: how leases reach the journal without wearing the
// flash.
//
// A lease record carries an expiry later than the one granted: the granted
// expiry plus a headroom H. A renewal whose new expiry is still covered by
// the record on disk needs no write, and its ACK leaves at once: the ACK
// promises no more than the disk holds. A renewal past it is written, with
// a fresh headroom, before its ACK. Whenever a record is written, every
// lease renewed since its own record was written rides along in the same
// fsync (a top-up). So a client needs a write only if no write at all
// happened since its previous renewal: with H above T1, a LAN of any size
// costs about one fsync per T1, not one per renewal.
//
// After a crash a lease may live up to H longer than promised, never
// shorter. A new binding (a client getting an address it did not hold), a
// RELEASE and a DECLINE are written at once. A clean shutdown writes the
// true expiries.

// storeRecord is one line of the lease journal.
type storeRecord struct {
	Lease   *Lease      `json:"lease,omitempty"`
	Release *netip.Addr `json:"release,omitempty"`
}

// leaseStore is the lease journal and what it holds per address. Its
// fields are guarded by *mu (the Server's mutex), held by every method
// ending in Locked; the batcher's callbacks take it themselves.
type leaseStore struct {
	mu       *sync.Mutex
	j        *journal.Journal
	b        *journal.Batcher
	headroom time.Duration // Config.LeaseHeadroom

	// disk is, per address, the binding whose record is in the journal.
	// Invariant: the journal, replayed, holds for every address in disk a
	// lease of that binding expiring no earlier than its durable time.
	disk map[netip.Addr]*diskLease
	// stale holds the entries ACKed past their record's headroom since
	// the record was written: the next write tops them up.
	stale map[netip.Addr]*diskLease
}

// diskLease is one address's record in the journal.
type diskLease struct {
	key      string        // the binding: MAC and client identifier
	lease    Lease         // the lease as last ACKed, with its true expiry
	headroom time.Duration // what the next record adds to lease.Expires
	durable  time.Time     // expiry of the record on disk (fsynced)
	written  time.Time     // expiry of the latest record handed to the batcher
	pending  *diskWrite    // that record, until it is on disk
}

// diskWrite is one record on its way to disk, and the replies that wait
// for it.
type diskWrite struct {
	d       *diskLease
	expires time.Time
	waiting []func(error)
}

func bindingKey(l Lease) string { return l.MAC + "/" + l.ClientID }

// newLeaseStore starts from the leases restored into the core: their
// stored expiries are on disk.
func newLeaseStore(mu *sync.Mutex, j *journal.Journal, headroom time.Duration, restored []Lease, compact func() []any) *leaseStore {
	st := &leaseStore{
		mu:       mu,
		j:        j,
		headroom: headroom,
		disk:     make(map[netip.Addr]*diskLease, len(restored)),
		stale:    make(map[netip.Addr]*diskLease),
	}
	for _, l := range restored {
		st.disk[l.Addr] = &diskLease{key: bindingKey(l), lease: l, durable: l.Expires, written: l.Expires}
	}
	st.b = journal.NewBatcher(j, len(restored), compact)
	return st
}

// headroomFor is the headroom of a lease granted for lt.
func (st *leaseStore) headroomFor(lt time.Duration) time.Duration {
	switch {
	case st.headroom < 0:
		return 0
	case st.headroom > 0:
		return st.headroom
	}
	return lt / 4 * 3
}

// commitLocked makes l, just ACKed at now, as durable as the ACK needs. It
// returns false if the journal already covers l: send the ACK now. Else
// done runs once l is on disk (or with the error that kept it off), and
// the ACK waits for it.
func (st *leaseStore) commitLocked(l Lease, now time.Time, done func(error)) bool {
	d := st.disk[l.Addr]
	if d == nil || d.key != bindingKey(l) {
		d = &diskLease{key: bindingKey(l)} // a new binding: nothing of it is on disk
		st.disk[l.Addr] = d
		delete(st.stale, l.Addr)
	}
	d.lease = l
	d.headroom = st.headroomFor(l.Expires.Sub(now))
	switch {
	case !l.Expires.After(d.durable):
		st.markLocked(d)
		return false
	case d.pending != nil && !l.Expires.After(d.pending.expires):
		d.pending.waiting = append(d.pending.waiting, done)
		st.markLocked(d)
		return true
	}
	w := st.writeLocked(d)
	w.waiting = append(w.waiting, done)
	writes := []*diskWrite{w}
	for _, o := range st.stale {
		if o.lease.Expires.After(now) {
			writes = append(writes, st.writeLocked(o))
		}
	}
	clear(st.stale)
	recs := make([]any, len(writes))
	for i, w := range writes {
		l := w.d.lease
		l.Expires = w.expires
		recs[i] = storeRecord{Lease: &l}
	}
	st.b.Submit(func(err error) { st.written(writes, err) }, recs...)
	return true
}

// markLocked queues d for a top-up if the lease now reaches past its
// record's headroom.
func (st *leaseStore) markLocked(d *diskLease) {
	if d.lease.Expires.Add(d.headroom).After(d.written) {
		st.stale[d.lease.Addr] = d
	}
}

// writeLocked makes the record of d, with its headroom.
func (st *leaseStore) writeLocked(d *diskLease) *diskWrite {
	w := &diskWrite{d: d, expires: d.lease.Expires.Add(d.headroom)}
	d.written, d.pending = w.expires, w
	delete(st.stale, d.lease.Addr)
	return w
}

// written is the batcher's callback for records: it moves their entries'
// durable expiries and releases the replies that waited for them.
func (st *leaseStore) written(writes []*diskWrite, err error) {
	var waiting []func(error)
	st.mu.Lock()
	for _, w := range writes {
		d := w.d
		current := st.disk[d.lease.Addr] == d
		if current && err == nil && w.expires.After(d.durable) {
			d.durable = w.expires
		}
		if d.pending == w {
			d.pending = nil
			if err != nil {
				d.written = d.durable
				if current {
					st.markLocked(d)
				}
			}
		}
		waiting = append(waiting, w.waiting...)
	}
	st.mu.Unlock()
	for _, done := range waiting {
		if done != nil {
			done(err)
		}
	}
}

// releaseLocked writes that addr is no longer leased. Nobody waits for it.
func (st *leaseStore) releaseLocked(addr netip.Addr) {
	delete(st.disk, addr)
	delete(st.stale, addr)
	st.b.Submit(nil, storeRecord{Release: &addr})
}

// liveRecordsLocked is the journal's content after a compaction: the
// core's leases, each with the expiry its record has or will have. Entries
// of addresses the core no longer leases are forgotten, since their
// records go.
func (st *leaseStore) liveRecordsLocked(leases []Lease) []any {
	out := make([]any, len(leases))
	keep := make(map[netip.Addr]bool, len(leases))
	for i := range leases {
		l := &leases[i]
		if d := st.disk[l.Addr]; d != nil && d.key == bindingKey(*l) {
			keep[l.Addr] = true
			if d.written.After(l.Expires) {
				l.Expires = d.written
			}
		}
		out[i] = storeRecord{Lease: l}
	}
	for a := range st.disk {
		if !keep[a] {
			delete(st.disk, a)
			delete(st.stale, a)
		}
	}
	return out
}

// closeExactLocked rewrites the journal with the true expiries of leases
// and closes it; the batcher must have stopped. It is the clean shutdown.
func (st *leaseStore) closeExactLocked(leases []Lease) error {
	recs := make([]any, len(leases))
	for i := range leases {
		recs[i] = storeRecord{Lease: &leases[i]}
	}
	err := st.j.Compact(recs)
	st.j.Close()
	return err
}
