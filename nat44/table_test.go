package nat44

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

var netipComparers = gocmp.Options{
	gocmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	gocmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	hostA = netip.MustParseAddrPort("192.168.1.10:80")
	hostB = netip.MustParseAddrPort("192.168.1.11:80")
)

func tcp(port uint16, internal netip.AddrPort) Mapping {
	return Mapping{Proto: TCP, ExternalPort: port, Internal: internal, Owner: OwnerUPnP}
}

func udp(port uint16, internal netip.AddrPort) Mapping {
	return Mapping{Proto: UDP, ExternalPort: port, Internal: internal, Owner: OwnerUPnP}
}

// until returns m expiring at t0+d.
func until(m Mapping, d time.Duration) Mapping {
	m.Expires = t0.Add(d)
	return m
}

func mustPut(t *testing.T, tb *Table, now time.Time, ms ...Mapping) {
	t.Helper()
	for _, m := range ms {
		if err := tb.Put(m, now); err != nil {
			t.Fatalf("Put(%v): %v", m.Key(), err)
		}
	}
}

func TestTableListOrder(t *testing.T) {
	tb := NewTable()
	mustPut(t, tb, t0, udp(53, hostA), tcp(443, hostA), udp(5, hostB), tcp(80, hostB), tcp(65535, hostA), udp(1, hostA))
	var got []Key
	for _, m := range tb.List() {
		got = append(got, m.Key())
	}
	want := []Key{{TCP, 80}, {TCP, 443}, {TCP, 65535}, {UDP, 1}, {UDP, 5}, {UDP, 53}}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("List order (-want +got):\n%s", diff)
	}
	if tb.Len() != len(want) {
		t.Errorf("Len = %d, want %d", tb.Len(), len(want))
	}
	if got := NewTable().List(); got == nil || len(got) != 0 {
		t.Errorf("List of an empty table = %#v, want an empty slice", got)
	}
}

func TestTablePut(t *testing.T) {
	existing := until(tcp(8080, hostA), time.Hour)
	existing.Description = "game"
	tests := []struct {
		name    string
		put     Mapping
		wantErr error
		want    Mapping // what Get(8080) returns afterwards
	}{
		{
			name:    "another internal endpoint conflicts",
			put:     until(tcp(8080, hostB), 2*time.Hour),
			wantErr: ErrConflict,
			want:    existing,
		},
		{
			name:    "another port of the same host conflicts",
			put:     tcp(8080, netip.AddrPortFrom(hostA.Addr(), 81)),
			wantErr: ErrConflict,
			want:    existing,
		},
		{
			name: "the same endpoint renews expiry, owner and description",
			put:  Mapping{Proto: TCP, ExternalPort: 8080, Internal: hostA, Expires: t0.Add(3 * time.Hour), Owner: OwnerPCP, Description: "renewed"},
			want: Mapping{Proto: TCP, ExternalPort: 8080, Internal: hostA, Expires: t0.Add(3 * time.Hour), Owner: OwnerPCP, Description: "renewed"},
		},
		{
			name: "the same endpoint can make it permanent",
			put:  tcp(8080, hostA),
			want: tcp(8080, hostA),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := NewTable()
			mustPut(t, tb, t0, existing, udp(8080, hostB))
			err := tb.Put(tt.put, t0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put = %v, want %v", err, tt.wantErr)
			}
			got, _ := tb.Get(Key{TCP, 8080})
			if diff := gocmp.Diff(tt.want, got, netipComparers); diff != "" {
				t.Errorf("Get(tcp/8080) (-want +got):\n%s", diff)
			}
			if got, ok := tb.Get(Key{UDP, 8080}); !ok || got.Internal != hostB {
				t.Errorf("udp/8080 was disturbed: %+v, %v", got, ok)
			}
			if tb.Len() != 2 {
				t.Errorf("Len = %d, want 2", tb.Len())
			}
		})
	}
}

func TestTableInvalid(t *testing.T) {
	good := until(tcp(8080, hostA), time.Hour)
	tests := []struct {
		name   string
		edit   func(*Mapping)
		reason string // in the error text
	}{
		{"protocol", func(m *Mapping) { m.Proto = 1 }, "protocol 1"},
		{"external port 0", func(m *Mapping) { m.ExternalPort = 0 }, "external port 0"},
		{"internal port 0", func(m *Mapping) { m.Internal = netip.AddrPortFrom(hostA.Addr(), 0) }, "internal port 0"},
		{"no internal address", func(m *Mapping) { m.Internal = netip.AddrPort{} }, "not IPv4"},
		{"IPv6 internal", func(m *Mapping) { m.Internal = netip.MustParseAddrPort("[2001:db8::1]:80") }, "not IPv4"},
		{"IPv4-mapped IPv6 internal", func(m *Mapping) { m.Internal = netip.MustParseAddrPort("[::ffff:192.168.1.10]:80") }, "not IPv4"},
		{"multicast internal", func(m *Mapping) { m.Internal = netip.MustParseAddrPort("239.1.2.3:80") }, "cannot receive"},
		{"loopback internal", func(m *Mapping) { m.Internal = netip.MustParseAddrPort("127.0.0.1:80") }, "cannot receive"},
		{"unspecified internal", func(m *Mapping) { m.Internal = netip.MustParseAddrPort("0.0.0.0:80") }, "cannot receive"},
		{"broadcast internal", func(m *Mapping) { m.Internal = netip.MustParseAddrPort("255.255.255.255:80") }, "cannot receive"},
		{"long description", func(m *Mapping) { m.Description = strings.Repeat("x", 257) }, "description"},
		{"expires now", func(m *Mapping) { m.Expires = t0 }, "past"},
		{"expired", func(m *Mapping) { m.Expires = t0.Add(-time.Second) }, "past"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			tt.edit(&m)
			tb := NewTable()
			err := tb.Put(m, t0)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Put = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Put error %q does not say %q", err, tt.reason)
			}
			if tb.Len() != 0 {
				t.Errorf("an invalid mapping went in: %v", tb.List())
			}
			if _, ok := tb.NextExpiry(); ok {
				t.Errorf("an invalid mapping reached the expiry heap")
			}
			if tt.reason == "past" {
				return // Replace does not judge expiry: Expire removes it
			}
			if _, _, err := tb.Replace(m); !errors.Is(err, ErrInvalid) {
				t.Errorf("Replace = %v, want ErrInvalid", err)
			}
			if tb.Len() != 0 {
				t.Errorf("an invalid mapping went in through Replace: %v", tb.List())
			}
		})
	}
	// Several problems are reported together.
	err := NewTable().Put(Mapping{Proto: 9, Internal: netip.MustParseAddrPort("[::1]:0")}, t0)
	for _, want := range []string{"protocol 9", "external port 0", "not IPv4", "internal port 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

func TestTableReplace(t *testing.T) {
	tb := NewTable()
	mustPut(t, tb, t0, until(tcp(80, hostA), time.Hour))
	static := tcp(80, hostB)
	static.Owner = OwnerStatic
	old, replaced, err := tb.Replace(static)
	if err != nil || !replaced {
		t.Fatalf("Replace = %v, %v, %v; want the old mapping", old, replaced, err)
	}
	if diff := gocmp.Diff(until(tcp(80, hostA), time.Hour), old, netipComparers); diff != "" {
		t.Errorf("displaced mapping (-want +got):\n%s", diff)
	}
	if _, ok := tb.NextExpiry(); ok {
		t.Errorf("the permanent replacement left the old expiry in the heap")
	}
	_, replaced, err = tb.Replace(udp(80, hostA))
	if err != nil || replaced {
		t.Errorf("Replace of a free key = %v, %v; want nothing displaced", replaced, err)
	}
	if diff := gocmp.Diff([]Mapping{static, udp(80, hostA)}, tb.List(), netipComparers); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestTableDelete(t *testing.T) {
	tb := NewTable()
	mustPut(t, tb, t0, until(tcp(80, hostA), time.Hour), tcp(81, hostA))
	if _, err := tb.Delete(Key{UDP, 80}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete(missing) = %v, want ErrNotFound", err)
	}
	m, err := tb.Delete(Key{TCP, 80})
	if err != nil || m.Internal != hostA {
		t.Errorf("Delete = %+v, %v", m, err)
	}
	if _, err := tb.Delete(Key{TCP, 80}); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if got := tb.Expire(t0.Add(2 * time.Hour)); len(got) != 0 {
		t.Errorf("a deleted mapping expired: %v", got)
	}
	if tb.Len() != 1 {
		t.Errorf("Len = %d, want 1", tb.Len())
	}
}

func TestTableExpire(t *testing.T) {
	tb := NewTable()
	mustPut(t, tb, t0,
		until(tcp(1, hostA), 30*time.Minute),
		until(udp(2, hostA), 10*time.Minute),
		tcp(3, hostA), // permanent
		until(tcp(4, hostB), 20*time.Minute),
		until(udp(5, hostB), 20*time.Minute),
		until(tcp(6, hostB), time.Hour),
	)
	keys := func(ms []Mapping) []Key {
		var out []Key
		for _, m := range ms {
			out = append(out, m.Key())
		}
		return out
	}
	steps := []struct {
		at   time.Duration
		want []Key
	}{
		{0, nil},
		{10*time.Minute - time.Nanosecond, nil},
		{10 * time.Minute, []Key{{UDP, 2}}}, // due at exactly its time
		{10 * time.Minute, nil},             // and only once
		{25 * time.Minute, []Key{{TCP, 4}, {UDP, 5}}},
		{24 * time.Hour, []Key{{TCP, 1}, {TCP, 6}}},
		{1000 * time.Hour, nil},
	}
	for _, s := range steps {
		got := tb.Expire(t0.Add(s.at))
		// Equal expiries come in any order.
		slices.SortStableFunc(got, func(a, b Mapping) int {
			return cmp.Or(a.Expires.Compare(b.Expires), compareKeys(a.Key(), b.Key()))
		})
		if diff := gocmp.Diff(s.want, keys(got)); diff != "" {
			t.Errorf("Expire(+%v) (-want +got):\n%s", s.at, diff)
		}
	}
	if diff := gocmp.Diff([]Mapping{tcp(3, hostA)}, tb.List(), netipComparers); diff != "" {
		t.Errorf("left after expiry (-want +got):\n%s", diff)
	}
}

func TestTableNextExpiry(t *testing.T) {
	type step struct {
		name string
		do   func(t *testing.T, tb *Table)
		want time.Duration // after t0; -1 for none
	}
	put := func(m Mapping) func(*testing.T, *Table) {
		return func(t *testing.T, tb *Table) { t.Helper(); mustPut(t, tb, t0, m) }
	}
	steps := []step{
		{"empty", func(*testing.T, *Table) {}, -1},
		{"permanent", put(tcp(1, hostA)), -1},
		{"permanent to timed", put(until(tcp(1, hostA), time.Hour)), time.Hour},
		{"a later one", put(until(tcp(2, hostA), 2*time.Hour)), time.Hour},
		{"an earlier one", put(until(tcp(3, hostA), 30*time.Minute)), 30 * time.Minute},
		{"refresh the earliest later", put(until(tcp(3, hostA), 3*time.Hour)), time.Hour},
		{"refresh the latest earlier", put(until(tcp(3, hostA), 10*time.Minute)), 10 * time.Minute},
		{"timed to permanent", put(tcp(3, hostA)), time.Hour},
		{"replace timed by permanent", func(t *testing.T, tb *Table) { tb.Replace(tcp(1, hostB)) }, 2 * time.Hour},
		{"replace permanent by timed", func(t *testing.T, tb *Table) { tb.Replace(until(tcp(1, hostA), 5*time.Minute)) }, 5 * time.Minute},
		{"delete the earliest", func(t *testing.T, tb *Table) { tb.Delete(Key{TCP, 1}) }, 2 * time.Hour},
		{"delete a permanent", func(t *testing.T, tb *Table) { tb.Delete(Key{TCP, 3}) }, 2 * time.Hour},
		{"refused conflict changes nothing", func(t *testing.T, tb *Table) { tb.Put(until(tcp(2, hostB), time.Minute), t0) }, 2 * time.Hour},
		{"expire before it", func(t *testing.T, tb *Table) { tb.Expire(t0.Add(time.Hour)) }, 2 * time.Hour},
		{"expire it", func(t *testing.T, tb *Table) { tb.Expire(t0.Add(2 * time.Hour)) }, -1},
	}
	tb := NewTable()
	for _, s := range steps {
		s.do(t, tb)
		at, ok := tb.NextExpiry()
		if s.want < 0 {
			if ok {
				t.Errorf("after %s: NextExpiry = %v, want none", s.name, at.Sub(t0))
			}
			continue
		}
		if !ok || !at.Equal(t0.Add(s.want)) {
			t.Errorf("after %s: NextExpiry = +%v, %v; want +%v", s.name, at.Sub(t0), ok, s.want)
		}
	}
}

// model is the obvious table: a map, and a scan for every question.
type model map[Key]Mapping

func (md model) put(m Mapping, now time.Time) error {
	if m.Validate() != nil || (!m.Permanent() && !m.Expires.After(now)) {
		return ErrInvalid
	}
	if old, ok := md[m.Key()]; ok && old.Internal != m.Internal {
		return ErrConflict
	}
	md[m.Key()] = m
	return nil
}

func (md model) expire(now time.Time) []Mapping {
	var out []Mapping
	for k, m := range md {
		if !m.Permanent() && !m.Expires.After(now) {
			out = append(out, m)
			delete(md, k)
		}
	}
	slices.SortFunc(out, byExpiryThenKey)
	return out
}

func (md model) next() (time.Time, bool) {
	var at time.Time
	for _, m := range md {
		if !m.Permanent() && (at.IsZero() || m.Expires.Before(at)) {
			at = m.Expires
		}
	}
	return at, !at.IsZero()
}

func (md model) list() []Mapping {
	out := make([]Mapping, 0, len(md))
	for _, m := range md {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Mapping) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

func byExpiryThenKey(a, b Mapping) int {
	return cmp.Or(a.Expires.Compare(b.Expires), compareKeys(a.Key(), b.Key()))
}

// TestTableAgainstModel runs thousands of random operations on the table
// and on the model and compares every answer.
func TestTableAgainstModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0x6e61743434))
	internals := []netip.AddrPort{hostA, hostB, netip.MustParseAddrPort("192.168.1.12:5000")}
	randMapping := func(now time.Time) Mapping {
		m := Mapping{
			Proto:        []Proto{TCP, UDP}[r.IntN(2)],
			ExternalPort: uint16(1 + r.IntN(24)), // few keys: many collisions
			Internal:     internals[r.IntN(len(internals))],
			Owner:        []Owner{OwnerUPnP, OwnerPCP, OwnerNATPMP}[r.IntN(3)],
		}
		switch r.IntN(10) {
		case 0, 1, 2: // permanent
		case 3: // in the past, or now
			m.Expires = now.Add(-time.Duration(r.IntN(3)) * time.Second)
		default: // whole seconds, so that equal expiries happen
			m.Expires = now.Add(time.Duration(1+r.IntN(120)) * time.Second)
		}
		return m
	}
	tb, md := NewTable(), model{}
	now := t0
	const ops = 20000
	for i := range ops {
		switch op := r.IntN(100); {
		case op < 45:
			m := randMapping(now)
			err, want := tb.Put(m, now), md.put(m, now)
			if !errors.Is(err, want) || (err == nil) != (want == nil) {
				t.Fatalf("op %d: Put(%+v) = %v, model says %v", i, m, err, want)
			}
		case op < 55:
			m := randMapping(now)
			old, replaced, err := tb.Replace(m)
			wantOld, wantReplaced := md[m.Key()]
			md[m.Key()] = m
			if err != nil || replaced != wantReplaced || old != wantOld {
				t.Fatalf("op %d: Replace(%+v) = %+v, %v, %v; model says %+v, %v", i, m, old, replaced, err, wantOld, wantReplaced)
			}
		case op < 70:
			k := Key{[]Proto{TCP, UDP}[r.IntN(2)], uint16(1 + r.IntN(24))}
			got, err := tb.Delete(k)
			want, ok := md[k]
			delete(md, k)
			if (err == nil) != ok || got != want {
				t.Fatalf("op %d: Delete(%v) = %+v, %v; model has %+v, %v", i, k, got, err, want, ok)
			}
		case op < 85:
			now = now.Add(time.Duration(r.IntN(30)) * time.Second)
			got, want := tb.Expire(now), md.expire(now)
			if !slices.IsSortedFunc(got, func(a, b Mapping) int { return a.Expires.Compare(b.Expires) }) {
				t.Fatalf("op %d: Expire returned mappings out of expiry order: %v", i, got)
			}
			slices.SortStableFunc(got, byExpiryThenKey)
			if diff := gocmp.Diff(want, got, netipComparers); diff != "" {
				t.Fatalf("op %d: Expire(%v) (-model +table):\n%s", i, now.Sub(t0), diff)
			}
		default:
			k := Key{[]Proto{TCP, UDP}[r.IntN(2)], uint16(1 + r.IntN(24))}
			got, ok := tb.Get(k)
			want, wantOK := md[k]
			if ok != wantOK || got != want {
				t.Fatalf("op %d: Get(%v) = %+v, %v; model has %+v, %v", i, k, got, ok, want, wantOK)
			}
		}
		at, ok := tb.NextExpiry()
		wantAt, wantOK := md.next()
		if ok != wantOK || !at.Equal(wantAt) {
			t.Fatalf("op %d: NextExpiry = %v, %v; model says %v, %v", i, at, ok, wantAt, wantOK)
		}
		if tb.Len() != len(md) {
			t.Fatalf("op %d: Len = %d, model has %d", i, tb.Len(), len(md))
		}
		if len(tb.exp.items) != len(tb.exp.index) {
			t.Fatalf("op %d: heap has %d items but %d index entries", i, len(tb.exp.items), len(tb.exp.index))
		}
		if i%100 == 0 {
			if diff := gocmp.Diff(md.list(), tb.List(), netipComparers); diff != "" {
				t.Fatalf("op %d: List (-model +table):\n%s", i, diff)
			}
		}
	}
}

// TestPinholeTableNAT66Target: the port of ULA hosts' pinholes leads to
// one of them, the oldest (lowest ID) when pinholes opened before NAT66
// share it, and follows deletions and expiry; global hosts are not in it.
func TestPinholeTableNAT66Target(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ap := netip.MustParseAddrPort
	tb := NewPinholeTable()
	put := func(p Pinhole) Pinhole {
		t.Helper()
		got, err := tb.Put(p, t0)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	a := put(Pinhole{PinholeKey: PinholeKey{Proto: TCP, Internal: ap("[fd00::a]:80")}, Owner: OwnerUPnP})
	b := put(Pinhole{PinholeKey: PinholeKey{Proto: TCP, Internal: ap("[fd00::b]:80")}, Owner: OwnerUPnP, Expires: t0.Add(time.Minute)})
	put(Pinhole{PinholeKey: PinholeKey{Proto: UDP, Internal: ap("[2001:db8::c]:80")}, Owner: OwnerUPnP})
	k := Key{TCP, 80}
	if got, ok := tb.NAT66Target(k); !ok || got != a.Internal {
		t.Errorf("target %v, %v; want the oldest, %v", got, ok, a.Internal)
	}
	if _, ok := tb.NAT66Target(Key{UDP, 80}); ok {
		t.Errorf("a global host's pinhole is a NAT66 target")
	}
	if _, err := tb.Delete(a.Key()); err != nil {
		t.Fatal(err)
	}
	if got, ok := tb.NAT66Target(k); !ok || got != b.Internal {
		t.Errorf("after the delete: target %v, %v; want %v", got, ok, b.Internal)
	}
	tb.Expire(t0.Add(time.Hour))
	if got, ok := tb.NAT66Target(k); ok {
		t.Errorf("after expiry: target %v", got)
	}
	n := 0
	tb.NAT66Targets(func(Key, netip.AddrPort) { n++ })
	if n != 0 {
		t.Errorf("NAT66Targets lists %d, want none", n)
	}
	for _, tt := range []struct {
		a    string
		want bool
	}{{"fd00::1", true}, {"fc00::1", true}, {"fe80::1", false}, {"2001:db8::1", false}, {"::ffff:10.0.0.1", false}, {"10.0.0.1", false}} {
		if got := IsULA(netip.MustParseAddr(tt.a)); got != tt.want {
			t.Errorf("IsULA(%s) = %v", tt.a, got)
		}
	}
}
