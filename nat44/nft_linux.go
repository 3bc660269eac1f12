package nat44

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemChunk bounds the elements per netlink message: the element list is
// one nested attribute, whose length field is 16 bits.
const elemChunk = 512

// NFTables is the Linux Datapath: one inet table programmed over netlink.
type NFTables struct {
	conn *nftables.Conn
	ns   []nftables.ConnOption // the namespace, to open more connections in it
	sets map[string]*nftables.Set

	// What the last successful Apply installed.
	applied bool
	base    base
	fwd     map[Key]netip.AddrPort
	cone    map[uint16]netip.AddrPort
	remotes map[RemoteKey]netip.AddrPort
	input   map[Key]bool
	rules   map[string]int // rules per chain
	stale   bool           // the kernel drifted: rebuild on the next Apply
}

// NewNFTables returns a datapath for the current network namespace, or for
// the one netnsFD refers to when it is not -1 (tests program a namespace
// of their own this way).
func NewNFTables(netnsFD int) (*NFTables, error) {
	var ns []nftables.ConnOption
	if netnsFD >= 0 {
		ns = append(ns, nftables.WithNetNSFd(netnsFD))
	}
	c, err := nftables.New(append(ns, nftables.AsLasting(), nftables.WithSockOptions(bigBuffers))...)
	if err != nil {
		return nil, fmt.Errorf("nat44: nftables: %w", err)
	}
	return &NFTables{conn: c, ns: ns}, nil
}

// bigBuffers lets a batch of ten thousand elements go out in one sendmsg
// and its acknowledgements come back without ENOBUFS. The FORCE variants
// pass the system-wide caps; as root they are allowed.
func bigBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 16<<20); e != nil {
				serr = e
			}
		}
	})
	if err != nil {
		return err
	}
	if serr != nil { // not privileged: settle for the ordinary limits
		_ = c.SetWriteBuffer(4 << 20)
		_ = c.SetReadBuffer(4 << 20)
	}
	return nil
}

// Apply implements Datapath.
func (d *NFTables) Apply(s *State) error {
	if !d.applied || d.stale || s.base() != d.base {
		return d.rebuild(s)
	}
	n := 0
	fwd := mappingsOf(s)
	if s.Changed != nil {
		fwd = fwd.only(s.Changed)
	}
	n += diffInto(d, setForward, d.fwd, fwd, protoPortKey, addrPortVal)
	n += diffInto(d, setCone, d.cone, mapSeq(s.Cone), portKey, addrPortVal)
	n += diffInto(d, setRemotes, d.remotes, mapSeq(s.Remotes), remoteKeyBytes, addrPortVal)
	n += diffInto(d, setWANInput, d.input, inputSeq(s.WANInput), protoPortKey, nil)
	if n == 0 {
		return nil
	}
	if err := d.conn.Flush(); err != nil {
		// The kernel refused the batch as a whole, but our record of it was
		// already updated: rebuild from scratch next time.
		d.stale = true
		return fmt.Errorf("nat44: update maps: %w", err)
	}
	return nil
}

// seq is a read-only view of desired elements: iteration plus lookup.
// keys, when not nil, limits the comparison to those keys (see
// State.Changed).
type seq[K comparable, V comparable] struct {
	all  func(func(K, V))
	get  func(K) (V, bool)
	keys map[K]bool
}

// only restricts a comparison to keys.
func (q seq[K, V]) only(keys map[K]bool) seq[K, V] {
	q.keys = keys
	q.all = func(fn func(K, V)) {
		for k := range keys {
			if v, ok := q.get(k); ok {
				fn(k, v)
			}
		}
	}
	return q
}

func mapSeq[K comparable, V comparable](m map[K]V) seq[K, V] {
	return seq[K, V]{
		all: func(fn func(K, V)) {
			for k, v := range m {
				fn(k, v)
			}
		},
		get: func(k K) (V, bool) { v, ok := m[k]; return v, ok },
	}
}

func mappingsOf(s *State) seq[Key, netip.AddrPort] {
	t := s.Mappings
	if t == nil {
		t = NewTable()
	}
	return seq[Key, netip.AddrPort]{
		all: func(fn func(Key, netip.AddrPort)) { t.All(func(m Mapping) { fn(m.Key(), m.Internal) }) },
		get: func(k Key) (netip.AddrPort, bool) { m, ok := t.Get(k); return m.Internal, ok },
	}
}

func inputSeq(ks []Key) seq[Key, bool] {
	m := make(map[Key]bool, len(ks))
	for _, k := range ks {
		m[k] = true
	}
	return mapSeq(m)
}

// diffInto queues the element changes that turn applied into want, records
// them in applied, and returns how many it queued. val is nil for sets.
func diffInto[K comparable, V comparable](d *NFTables, set string, applied map[K]V, want seq[K, V], key func(K) []byte, val func(V) []byte) int {
	var add, del []nftables.SetElement
	elem := func(k K, v V) nftables.SetElement {
		e := nftables.SetElement{Key: key(k)}
		if val != nil {
			e.Val = val(v)
		}
		return e
	}
	want.all(func(k K, v V) {
		old, ok := applied[k]
		if ok && old == v {
			return
		}
		if ok {
			del = append(del, elem(k, old))
		}
		add = append(add, elem(k, v))
		applied[k] = v
	})
	gone := func(k K, v V) {
		if _, ok := want.get(k); !ok {
			del = append(del, elem(k, v))
			delete(applied, k)
		}
	}
	if want.keys != nil {
		for k := range want.keys {
			if v, ok := applied[k]; ok {
				gone(k, v)
			}
		}
	} else {
		for k, v := range applied {
			gone(k, v)
		}
	}
	s := d.sets[set]
	for c := range chunks(del) {
		_ = d.conn.SetDeleteElements(s, c) // errors come back from Flush
	}
	for c := range chunks(add) {
		_ = d.conn.SetAddElements(s, c)
	}
	return len(add) + len(del)
}

func chunks(es []nftables.SetElement) func(func([]nftables.SetElement) bool) {
	return func(yield func([]nftables.SetElement) bool) {
		for len(es) > 0 {
			n := min(len(es), elemChunk)
			if !yield(es[:n]) {
				return
			}
			es = es[n:]
		}
	}
}

// rebuild replaces the whole table in one transaction: the kernel never
// runs with half a ruleset, and existing connections keep their NAT.
func (d *NFTables) rebuild(s *State) error {
	rs := buildRuleset(s)
	c := d.conn
	c.AddTable(rs.table) // so that the delete below cannot fail
	c.DelTable(rs.table)
	c.AddTable(rs.table)
	d.sets = make(map[string]*nftables.Set)
	for _, set := range rs.sets {
		if err := c.AddSet(set, nil); err != nil {
			return fmt.Errorf("nat44: set %s: %w", set.Name, err)
		}
		d.sets[set.Name] = set
	}
	d.fwd = make(map[Key]netip.AddrPort)
	d.cone = make(map[uint16]netip.AddrPort)
	d.remotes = make(map[RemoteKey]netip.AddrPort)
	d.input = make(map[Key]bool)
	diffInto(d, setForward, d.fwd, mappingsOf(s), protoPortKey, addrPortVal)
	diffInto(d, setCone, d.cone, mapSeq(s.Cone), portKey, addrPortVal)
	diffInto(d, setRemotes, d.remotes, mapSeq(s.Remotes), remoteKeyBytes, addrPortVal)
	diffInto(d, setWANInput, d.input, inputSeq(s.WANInput), protoPortKey, nil)
	d.rules = make(map[string]int)
	for _, cs := range rs.chains {
		ch := c.AddChain(cs.chain)
		for _, r := range cs.rules {
			c.AddRule(&nftables.Rule{Table: rs.table, Chain: ch, Exprs: r.exprs, UserData: commentData(r.text)})
		}
		d.rules[cs.chain.Name] = len(cs.rules)
	}
	if err := c.Flush(); err != nil {
		d.applied = false
		return fmt.Errorf("nat44: install table %s: %w", TableName, err)
	}
	d.applied, d.stale, d.base = true, false, s.base()
	return nil
}

// Drifted implements Datapath: it reads the table back and compares chains,
// rule counts and every element with what was installed.
func (d *NFTables) Drifted() (bool, error) {
	if !d.applied {
		return false, nil
	}
	drift, err := d.compare()
	if err != nil {
		return false, err
	}
	if drift != "" {
		d.stale = true
		return true, nil
	}
	return false, nil
}

// compare says what differs between the kernel and the record, or "".
func (d *NFTables) compare() (string, error) {
	t := newTable()
	chains, err := d.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return "", fmt.Errorf("nat44: list chains: %w", err)
	}
	found := 0
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		want, ok := d.rules[ch.Name]
		if !ok {
			return "chain " + ch.Name + " added", nil
		}
		rules, err := d.conn.GetRules(t, ch)
		if err != nil {
			return "", fmt.Errorf("nat44: list rules: %w", err)
		}
		if len(rules) != want {
			return fmt.Sprintf("chain %s has %d rules, want %d", ch.Name, len(rules), want), nil
		}
		found++
	}
	if found != len(d.rules) {
		return "chains missing", nil
	}
	for name, set := range d.sets {
		got, err := d.conn.GetSetElements(set)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return "set " + name + " missing", nil
			}
			return "", fmt.Errorf("nat44: list %s: %w", name, err)
		}
		want := d.encoded(name)
		if len(got) != len(want) {
			return fmt.Sprintf("set %s has %d elements, want %d", name, len(got), len(want)), nil
		}
		for _, e := range got {
			v, ok := want[string(e.Key)]
			if !ok || !bytes.Equal(v, e.Val) {
				return "set " + name + " element changed", nil
			}
		}
	}
	return "", nil
}

func (d *NFTables) encoded(set string) map[string][]byte {
	out := make(map[string][]byte)
	switch set {
	case setForward:
		for k, v := range d.fwd {
			out[string(protoPortKey(k))] = addrPortVal(v)
		}
	case setCone:
		for k, v := range d.cone {
			out[string(portKey(k))] = addrPortVal(v)
		}
	case setRemotes:
		for k, v := range d.remotes {
			out[string(remoteKeyBytes(k))] = addrPortVal(v)
		}
	case setWANInput:
		for k := range d.input {
			out[string(protoPortKey(k))] = nil
		}
	}
	return out
}

// WatchDrift implements DriftWatcher with the nftables monitor: a
// generation committed by a thread of another process that touched our
// table, or that touched set elements (whose events name no table), is
// reported.
func (d *NFTables) WatchDrift(ctx context.Context, changed func()) error {
	// The monitor needs a socket of its own: on the shared one its reader
	// would take the acknowledgements that Apply waits for. It must not be
	// a lasting one either, or closing the monitor would not close it.
	// A 10,000-element batch is 10,000 events: a big buffer rides it out.
	mc, err := nftables.New(append(d.ns, nftables.WithSockOptions(bigBuffers))...)
	if err != nil {
		return fmt.Errorf("nat44: nftables monitor: %w", err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(64))
	events, err := mc.AddGenerationalMonitor(mon)
	if err != nil {
		return fmt.Errorf("nat44: nftables monitor: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { mon.Close() })
	defer stop()
	for ev := range events {
		if ev.GeneratedBy != nil && ev.GeneratedBy.Error != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("nat44: nftables monitor: %w", ev.GeneratedBy.Error)
		}
		if ev.GeneratedBy == nil || ours(ev.GeneratedBy) || !touchesTable(ev.Changes) {
			continue
		}
		changed()
	}
	return nil
}

// ours reports whether a generation was committed by one of our threads:
// the kernel names the thread, not the process.
func ours(gen *nftables.MonitorEvent) bool {
	g, ok := gen.Data.(*nftables.GenMsg)
	if !ok {
		return false
	}
	if int(g.ProcPID) == os.Getpid() {
		return true
	}
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(int(g.ProcPID)))
	return err == nil
}

func touchesTable(changes []*nftables.MonitorEvent) bool {
	for _, c := range changes {
		var t *nftables.Table
		switch v := c.Data.(type) {
		case *nftables.Table:
			t = v
		case *nftables.Chain:
			t = v.Table
		case *nftables.Rule:
			t = v.Table
		case *nftables.Set:
			t = v.Table
		default:
			return true
		}
		if t == nil || t.Name == TableName {
			return true
		}
	}
	return false
}

// Close implements Datapath: the table goes, with everything in it.
func (d *NFTables) Close() error {
	defer d.conn.CloseLasting()
	if !d.applied {
		return nil
	}
	d.conn.DelTable(newTable())
	d.applied = false
	if err := d.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nat44: remove table: %w", err)
	}
	return nil
}
