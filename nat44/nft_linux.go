package nat44

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
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
	rec     nftRecord
	// prints holds a fingerprint of each chain (its hook and its rules'
	// expressions and comments) as read back after the last rebuild, so
	// that Drifted sees a rule edited in place.
	prints map[string][sha256.Size]byte
	stale  bool // the kernel drifted: rebuild on the next Apply
}

// nftRecord is the content of the table's sets and maps as installed.
type nftRecord struct {
	fwd     map[Key]netip.AddrPort
	fwdr    map[Key]remoteDNAT
	cone    map[uint16]netip.AddrPort
	remotes map[RemoteKey]netip.AddrPort
	input   map[Key]bool
	outside map[string]bool
	pin6    map[PinholeKey]bool
	pin6r   map[PinholeKey]bool
	nat66   map[Key]netip.AddrPort
}

func newNFTRecord() nftRecord {
	return nftRecord{
		fwd:     make(map[Key]netip.AddrPort),
		fwdr:    make(map[Key]remoteDNAT),
		cone:    make(map[uint16]netip.AddrPort),
		remotes: make(map[RemoteKey]netip.AddrPort),
		input:   make(map[Key]bool),
		outside: make(map[string]bool),
		pin6:    make(map[PinholeKey]bool),
		pin6r:   make(map[PinholeKey]bool),
		nat66:   make(map[Key]netip.AddrPort),
	}
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
	diffs, err := d.rec.diffs(s, true)
	if err != nil {
		return err
	}
	if d.queue(diffs) == 0 {
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

// mappingsOf is the content of fwd4: the mappings without a remote host.
func mappingsOf(s *State) seq[Key, netip.AddrPort] {
	t := s.Mappings
	if t == nil {
		t = NewTable()
	}
	return seq[Key, netip.AddrPort]{
		all: func(fn func(Key, netip.AddrPort)) {
			t.All(func(m Mapping) {
				if !m.Remote.IsValid() {
					fn(m.Key(), m.Internal)
				}
			})
		},
		get: func(k Key) (netip.AddrPort, bool) {
			m, ok := t.Get(k)
			return m.Internal, ok && !m.Remote.IsValid()
		},
	}
}

// remoteMappingsOf is the content of fwd4r: the mappings with one.
func remoteMappingsOf(s *State) seq[Key, remoteDNAT] {
	t := s.Mappings
	if t == nil {
		t = NewTable()
	}
	return seq[Key, remoteDNAT]{
		all: func(fn func(Key, remoteDNAT)) {
			t.All(func(m Mapping) {
				if m.Remote.IsValid() {
					fn(m.Key(), remoteDNAT{m.Remote, m.Internal})
				}
			})
		},
		get: func(k Key) (remoteDNAT, bool) {
			m, ok := t.Get(k)
			return remoteDNAT{m.Remote, m.Internal}, ok && m.Remote.IsValid()
		},
	}
}

// pinholesOf is the content of pin6 (remote false) or pin6r (remote true).
func pinholesOf(s *State, remote bool) seq[PinholeKey, bool] {
	t := s.Pinholes
	if t == nil {
		t = NewPinholeTable()
	}
	return seq[PinholeKey, bool]{
		all: func(fn func(PinholeKey, bool)) {
			t.All(func(p Pinhole) {
				if p.Remote.IsValid() == remote {
					fn(p.PinholeKey, true)
				}
			})
		},
		get: func(k PinholeKey) (bool, bool) {
			_, ok := t.Get(k)
			return true, ok && k.Remote.IsValid() == remote
		},
	}
}

// nat66Of is the content of nat66: where each port that a ULA host's
// pinhole holds leads, while there is a NAT66 address.
func nat66Of(s *State) seq[Key, netip.AddrPort] {
	t := s.Pinholes
	if t == nil || !s.NAT66Addr.IsValid() {
		t = NewPinholeTable()
	}
	return seq[Key, netip.AddrPort]{
		all: t.NAT66Targets,
		get: t.NAT66Target,
	}
}

// nat66Keys are the keys of nat66 that a change of pinholes ks may touch.
func nat66Keys(ks map[PinholeKey]bool) map[Key]bool {
	out := make(map[Key]bool)
	for k := range ks {
		if IsULA(k.Internal.Addr()) {
			out[k.nat66Key()] = true
		}
	}
	return out
}

func listSeq[K comparable](ks []K) seq[K, bool] {
	m := make(map[K]bool, len(ks))
	for _, k := range ks {
		m[k] = true
	}
	return mapSeq(m)
}

// elemCodec encodes a set's elements and refuses those that do not fit its
// type (val is nil for sets).
type elemCodec[K comparable, V comparable] struct {
	key   func(K, V) []byte
	val   func(V) []byte
	check func(K, V) error
}

var (
	fwdCodec = elemCodec[Key, netip.AddrPort]{
		key: func(k Key, _ netip.AddrPort) []byte { return protoPortKey(k) }, val: addrPortVal,
		check: func(k Key, v netip.AddrPort) error { return checkDNATTarget(k.String(), v) },
	}
	fwdRemoteCodec = elemCodec[Key, remoteDNAT]{
		key: fwdRemoteKey, val: func(v remoteDNAT) []byte { return addrPortVal(v.Internal) },
		check: func(k Key, v remoteDNAT) error {
			if !v.Remote.Is4() || v.Remote.IsUnspecified() {
				return fmt.Errorf("nat44: mapping %v: remote host %v is not an IPv4 host", k, v.Remote)
			}
			return checkDNATTarget(k.String(), v.Internal)
		},
	}
	coneCodec = elemCodec[uint16, netip.AddrPort]{
		key: func(p uint16, _ netip.AddrPort) []byte { return portKey(p) }, val: addrPortVal,
		check: func(p uint16, v netip.AddrPort) error { return checkDNATTarget(fmt.Sprintf("cone port %d", p), v) },
	}
	remotesCodec = elemCodec[RemoteKey, netip.AddrPort]{
		key: func(k RemoteKey, _ netip.AddrPort) []byte { return remoteKeyBytes(k) }, val: addrPortVal,
		check: func(k RemoteKey, v netip.AddrPort) error {
			if !k.Remote.Is4() {
				return fmt.Errorf("nat44: filter entry %v: remote %v is not IPv4", k.ExternalPort, k.Remote)
			}
			return checkDNATTarget(fmt.Sprintf("filter entry %v", k.ExternalPort), v)
		},
	}
	inputCodec = elemCodec[Key, bool]{
		key: func(k Key, _ bool) []byte { return protoPortKey(k) },
		check: func(k Key, _ bool) error {
			if (k.Proto != TCP && k.Proto != UDP) || k.ExternalPort == 0 {
				return fmt.Errorf("nat44: WAN input port %v: want tcp or udp and a port", k)
			}
			return nil
		},
	}
	outsideCodec = elemCodec[string, bool]{
		key: func(n string, _ bool) []byte { return ifname(n) },
		check: func(n string, _ bool) error {
			if n == "" || len(n) >= unix.IFNAMSIZ {
				return fmt.Errorf("nat44: outside interface name %q", n)
			}
			return nil
		},
	}
	nat66Codec = elemCodec[Key, netip.AddrPort]{
		key: func(k Key, _ netip.AddrPort) []byte { return protoPortKey(k) }, val: addr6PortVal,
		check: func(k Key, v netip.AddrPort) error {
			if a := v.Addr(); !IsULA(a) || v.Port() == 0 || (k.Proto != TCP && k.Proto != UDP) || k.ExternalPort == 0 {
				return fmt.Errorf("nat44: NAT66 port %v: target %v is not a ULA address and port", k, v)
			}
			return nil
		},
	}
	pinholeCodec = elemCodec[PinholeKey, bool]{
		key:   func(k PinholeKey, _ bool) []byte { return pinholeElemKey(k) },
		check: func(k PinholeKey, _ bool) error { return checkPinholeElem(k) },
	}
)

// checkDNATTarget refuses a DNAT target that does not fit ipv4_addr .
// inet_service.
func checkDNATTarget(what string, ap netip.AddrPort) error {
	if a := ap.Addr(); !a.Is4() || a.IsUnspecified() || ap.Port() == 0 {
		return fmt.Errorf("nat44: %s: target %v is not an IPv4 address and port", what, ap)
	}
	return nil
}

// checkPinholeElem refuses a pinhole that does not fit ipv6_addr keys: an
// IPv4 (or IPv4-mapped) address would be taken for another IPv6 address.
func checkPinholeElem(k PinholeKey) error {
	if a := k.Internal.Addr(); !a.Is6() || a.Is4In6() || k.Internal.Port() == 0 || (k.Proto != TCP && k.Proto != UDP) {
		return fmt.Errorf("nat44: pinhole %v: want tcp or udp to an IPv6 address and port", k)
	}
	if r := k.Remote; r.IsValid() && (!r.Is6() || r.Is4In6()) {
		return fmt.Errorf("nat44: pinhole %v: remote host is not IPv6", k)
	}
	return nil
}

// elemDiff is the change of one set's elements, computed and checked
// before anything is sent; commit records it as installed.
type elemDiff struct {
	set      string
	add, del []nftables.SetElement
	commit   func()
}

// diff computes the changes that turn applied into want, without
// changing applied. It refuses an element that does not fit the set.
func diffSet[K comparable, V comparable](set string, applied map[K]V, want seq[K, V], c elemCodec[K, V]) (elemDiff, error) {
	d := elemDiff{set: set}
	elem := func(k K, v V) nftables.SetElement {
		e := nftables.SetElement{Key: c.key(k, v)}
		if c.val != nil {
			e.Val = c.val(v)
		}
		return e
	}
	put := make(map[K]V)
	var gone []K
	var err error
	want.all(func(k K, v V) {
		old, ok := applied[k]
		if ok && old == v {
			return
		}
		if e := c.check(k, v); e != nil {
			err = errors.Join(err, e)
			return
		}
		if ok {
			d.del = append(d.del, elem(k, old))
		}
		d.add = append(d.add, elem(k, v))
		put[k] = v
	})
	if err != nil {
		return elemDiff{}, err
	}
	vanished := func(k K, v V) {
		if _, ok := want.get(k); !ok {
			d.del = append(d.del, elem(k, v))
			gone = append(gone, k)
		}
	}
	if want.keys != nil {
		for k := range want.keys {
			if v, ok := applied[k]; ok {
				vanished(k, v)
			}
		}
	} else {
		for k, v := range applied {
			vanished(k, v)
		}
	}
	d.commit = func() {
		maps.Copy(applied, put)
		for _, k := range gone {
			delete(applied, k)
		}
	}
	return d, nil
}

// diffs computes the element changes of every set from r to s; with
// hints, the mappings and pinholes compared are only those that State.
// Changed and State.ChangedPinholes name, when they are not nil.
func (r nftRecord) diffs(s *State, hints bool) ([]elemDiff, error) {
	fwd, fwdr := mappingsOf(s), remoteMappingsOf(s)
	pin, pinr := pinholesOf(s, false), pinholesOf(s, true)
	if hints && s.Changed != nil {
		fwd, fwdr = fwd.only(s.Changed), fwdr.only(s.Changed)
	}
	nat66 := nat66Of(s)
	if hints && s.ChangedPinholes != nil {
		pin, pinr = pin.only(s.ChangedPinholes), pinr.only(s.ChangedPinholes)
		nat66 = nat66.only(nat66Keys(s.ChangedPinholes))
	}
	var out []elemDiff
	var errs []error
	add := func(d elemDiff, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		out = append(out, d)
	}
	add(diffSet(setForward, r.fwd, fwd, fwdCodec))
	add(diffSet(setForwardRemote, r.fwdr, fwdr, fwdRemoteCodec))
	add(diffSet(setCone, r.cone, mapSeq(s.Cone), coneCodec))
	add(diffSet(setRemotes, r.remotes, mapSeq(s.Remotes), remotesCodec))
	add(diffSet(setWANInput, r.input, listSeq(s.WANInput), inputCodec))
	add(diffSet(setOutside, r.outside, listSeq(outsideNames(s)), outsideCodec))
	add(diffSet(setPinholes, r.pin6, pin, pinholeCodec))
	add(diffSet(setPinholesFrom, r.pin6r, pinr, pinholeCodec))
	add(diffSet(setNAT66, r.nat66, nat66, nat66Codec))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// queue sends the changes to the batch and records them; it returns how
// many elements changed.
func (d *NFTables) queue(diffs []elemDiff) int {
	n := 0
	for _, df := range diffs {
		s := d.sets[df.set]
		for c := range chunks(df.del) {
			_ = d.conn.SetDeleteElements(s, c) // errors come back from Flush
		}
		for c := range chunks(df.add) {
			_ = d.conn.SetAddElements(s, c)
		}
		df.commit()
		n += len(df.add) + len(df.del)
	}
	return n
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
// Then it reads the rules back and keeps their fingerprints.
func (d *NFTables) rebuild(s *State) error {
	rs := buildRuleset(s)
	rec := newNFTRecord()
	diffs, err := rec.diffs(s, false)
	if err != nil {
		return err
	}
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
	d.rec = rec
	d.queue(diffs)
	for _, cs := range rs.chains {
		ch := c.AddChain(cs.chain)
		for _, r := range cs.rules {
			c.AddRule(&nftables.Rule{Table: rs.table, Chain: ch, Exprs: r.exprs, UserData: commentData(r.text)})
		}
	}
	if err := c.Flush(); err != nil {
		d.applied = false
		return fmt.Errorf("nat44: install table %s: %w", TableName, err)
	}
	d.applied, d.stale, d.base = true, false, s.base()
	prints, err := d.fingerprints()
	if err != nil {
		d.stale = true // compare with what we read back next time
		return err
	}
	if len(prints) != len(rs.chains) {
		d.stale = true
		return fmt.Errorf("nat44: read back %d chains of table %s, installed %d", len(prints), TableName, len(rs.chains))
	}
	d.prints = prints
	return nil
}

// fingerprints reads our chains and their rules back from the kernel and
// sums each chain up: hook, priority, policy, and each rule's expressions
// (counters zeroed, as traffic moves them) and comment.
func (d *NFTables) fingerprints() (map[string][sha256.Size]byte, error) {
	chains, err := d.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nat44: list chains: %w", err)
	}
	t := newTable()
	out := make(map[string][sha256.Size]byte)
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		rules, err := d.conn.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("nat44: list rules of %s: %w", ch.Name, err)
		}
		p, err := chainFingerprint(ch, rules)
		if err != nil {
			return nil, err
		}
		out[ch.Name] = p
	}
	return out, nil
}

func chainFingerprint(ch *nftables.Chain, rules []*nftables.Rule) ([sha256.Size]byte, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%v|%v|%v|%d\n", ch.Type, ptrValue(ch.Hooknum), ptrValue(ch.Priority), ptrValue(ch.Policy), len(rules))
	field := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, r := range rules {
		field([]byte{byte(len(r.Exprs))})
		for _, e := range r.Exprs {
			if _, ok := e.(*expr.Counter); ok {
				e = &expr.Counter{}
			}
			b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
			if err != nil {
				return [sha256.Size]byte{}, fmt.Errorf("nat44: fingerprint of chain %s: %w", ch.Name, err)
			}
			field(b)
		}
		field(r.UserData)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum, nil
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// Drifted implements Datapath: it reads the table back and compares the
// fingerprint of every chain and every element with what was installed.
func (d *NFTables) Drifted() (bool, error) {
	if !d.applied {
		return false, nil
	}
	if d.stale {
		return true, nil
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
	prints, err := d.fingerprints()
	if err != nil {
		return "", err
	}
	for name, p := range prints {
		want, ok := d.prints[name]
		if !ok {
			return "chain " + name + " added", nil
		}
		if p != want {
			return "chain " + name + " changed", nil
		}
	}
	if len(prints) != len(d.prints) {
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
		want := d.rec.encoded(name)
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

// PinholePackets implements PacketCounter: the packets each pinhole has
// let in, from the counters of the elements of pin6 and pin6r.
func (d *NFTables) PinholePackets() (map[PinholeKey]uint64, error) {
	out := make(map[PinholeKey]uint64)
	for name, recorded := range map[string]map[PinholeKey]bool{setPinholes: d.rec.pin6, setPinholesFrom: d.rec.pin6r} {
		set := d.sets[name]
		if set == nil {
			continue
		}
		byKey := make(map[string]PinholeKey, len(recorded))
		for k := range recorded {
			byKey[string(pinholeElemKey(k))] = k
		}
		elems, err := d.conn.GetSetElements(set)
		if err != nil {
			return nil, fmt.Errorf("nat44: list %s: %w", name, err)
		}
		for _, e := range elems {
			if k, ok := byKey[string(e.Key)]; ok && e.Counter != nil {
				out[k] = e.Counter.Packets
			}
		}
	}
	return out, nil
}

// encoded is the elements of set as the kernel holds them: key to value.
func (r nftRecord) encoded(set string) map[string][]byte {
	out := make(map[string][]byte)
	switch set {
	case setForward:
		encodeInto(out, r.fwd, fwdCodec)
	case setForwardRemote:
		encodeInto(out, r.fwdr, fwdRemoteCodec)
	case setCone:
		encodeInto(out, r.cone, coneCodec)
	case setRemotes:
		encodeInto(out, r.remotes, remotesCodec)
	case setWANInput:
		encodeInto(out, r.input, inputCodec)
	case setOutside:
		encodeInto(out, r.outside, outsideCodec)
	case setPinholes:
		encodeInto(out, r.pin6, pinholeCodec)
	case setPinholesFrom:
		encodeInto(out, r.pin6r, pinholeCodec)
	case setNAT66:
		encodeInto(out, r.nat66, nat66Codec)
	}
	return out
}

func encodeInto[K comparable, V comparable](out map[string][]byte, m map[K]V, c elemCodec[K, V]) {
	for k, v := range m {
		var val []byte
		if c.val != nil {
			val = c.val(v)
		}
		out[string(c.key(k, v))] = val
	}
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
