package ra

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
)

var (
	t0      = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	prefixA = netip.MustParsePrefix("2001:db8:a::/64")
	prefixB = netip.MustParsePrefix("2001:db8:b::/64")
	mac     = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
)

func pio(p netip.Prefix, valid, preferred time.Duration) *ndp.PrefixInformation {
	return &ndp.PrefixInformation{PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: true,
		ValidLifetime: valid, PreferredLifetime: preferred, Prefix: p.Addr()}
}

func TestBuildRA(t *testing.T) {
	dns := netip.MustParseAddr("2001:db8::53")
	full := raParams{MAC: mac, MTU: 1480, RDNSS: []netip.Addr{dns}, DNSSL: []string{"lan"},
		Routes: []netip.Prefix{netip.MustParsePrefix("fd00:1::/48")}, Lifetime: 1800 * time.Second}
	tests := []struct {
		name    string
		p       raParams
		entries []entry
		def     bool
		final   bool
		want    *ndp.RouterAdvertisement
	}{
		{
			name:    "default route, every option, our caps",
			p:       full,
			entries: []entry{{Prefix: prefixA}},
			def:     true,
			want: &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: 1800 * time.Second, Options: []ndp.Option{
				&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac},
				ndp.NewMTU(1480),
				pio(prefixA, ValidLimit, PreferredLimit),
				&ndp.RouteInformation{PrefixLength: 48, Preference: ndp.Medium, RouteLifetime: 1800 * time.Second, Prefix: netip.MustParseAddr("fd00:1::")},
				&ndp.RecursiveDNSServer{Lifetime: 1800 * time.Second, Servers: []netip.Addr{dns}},
				&ndp.DNSSearchList{Lifetime: 1800 * time.Second, DomainNames: []string{"lan"}},
			}},
		},
		{
			name:    "no default route: router lifetime 0, no options configured",
			p:       raParams{Lifetime: 1800 * time.Second},
			entries: []entry{{Prefix: prefixA}},
			want:    &ndp.RouterAdvertisement{CurrentHopLimit: 64, Options: []ndp.Option{pio(prefixA, ValidLimit, PreferredLimit)}},
		},
		{
			name: "long intervals: lifetimes within the RFC 9096 bounds",
			p:    raParams{RDNSS: []netip.Addr{dns}, Lifetime: 3 * 1800 * time.Second},
			def:  true,
			want: &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: PreferredLimit, Options: []ndp.Option{
				&ndp.RecursiveDNSServer{Lifetime: ValidLimit, Servers: []netip.Addr{dns}},
			}},
		},
		{
			name: "nothing at all: a harmless RA",
			p:    raParams{Lifetime: 1800 * time.Second},
			want: &ndp.RouterAdvertisement{CurrentHopLimit: 64},
		},
		{
			name: "never beyond the uplink's lifetimes, preferred never beyond valid",
			p:    raParams{Lifetime: 1800 * time.Second},
			entries: []entry{
				{Prefix: prefixA, Valid: t0.Add(1000*time.Second + 500*time.Millisecond), Preferred: t0.Add(2000 * time.Second)},
				{Prefix: prefixB, Valid: t0.Add(100 * 24 * time.Hour), Preferred: t0.Add(600 * time.Second)},
			},
			def: true,
			want: &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: 1800 * time.Second, Options: []ndp.Option{
				pio(prefixA, 1000*time.Second, 1000*time.Second),
				pio(prefixB, ValidLimit, 600*time.Second),
			}},
		},
		{
			name:    "withdrawn prefix: preferred 0, valid counting down",
			p:       raParams{Lifetime: 1800 * time.Second},
			entries: []entry{{Prefix: prefixA, Expires: t0.Add(4000 * time.Second)}, {Prefix: prefixB}},
			def:     true,
			want: &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: 1800 * time.Second, Options: []ndp.Option{
				pio(prefixA, 4000*time.Second, 0),
				pio(prefixB, ValidLimit, PreferredLimit),
			}},
		},
		{
			name:    "final: router lifetime 0, prefixes deprecated, routes withdrawn",
			p:       raParams{Routes: full.Routes, Lifetime: 1800 * time.Second},
			entries: []entry{{Prefix: prefixA}},
			def:     true,
			final:   true,
			want: &ndp.RouterAdvertisement{CurrentHopLimit: 64, Options: []ndp.Option{
				pio(prefixA, ValidLimit, 0),
				&ndp.RouteInformation{PrefixLength: 48, Preference: ndp.Medium, Prefix: netip.MustParseAddr("fd00:1::")},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := buildRA(tt.p, tt.entries, tt.def, tt.final, t0)
			// Through the wire, as a host sees it: decoded by
			// mdlayher/ndp, an independent implementation.
			b, err := got.Append(nil)
			if err != nil {
				t.Fatalf("append: %v", err)
			}
			m, err := ndp.ParseMessage(b)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, m, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("RA (-want +got):\n%s", diff)
			}
			// And the bytes are those ndp, which ra used before
			// ndpwire, marshals for the RA we want.
			if want, err := ndp.MarshalMessage(tt.want); err != nil || !bytes.Equal(b, want) {
				t.Errorf("bytes differ from ndp's (%v):\nours  %x\nndp's %x", err, b, want)
			}
		})
	}
}

func TestTableRenumbering(t *testing.T) {
	var tb table
	if c := tb.set([]Prefix{{Prefix: prefixA}}, t0); c != material {
		t.Fatalf("first set: %v, want material", c)
	}
	if c := tb.set([]Prefix{{Prefix: prefixA}}, t0.Add(time.Second)); c != unchanged {
		t.Errorf("same set: %v, want unchanged", c)
	}
	t1 := t0.Add(time.Hour)
	tb.set([]Prefix{{Prefix: prefixB}}, t1)
	at := func(d time.Duration) map[netip.Prefix][2]time.Duration {
		m := map[netip.Prefix][2]time.Duration{}
		now := t1.Add(d)
		tb.expire(now)
		for _, e := range tb.entries {
			v, p := e.lifetimes(now)
			m[e.Prefix] = [2]time.Duration{v, p}
		}
		return m
	}
	steps := []struct {
		after time.Duration
		want  map[netip.Prefix][2]time.Duration
	}{
		{0, map[netip.Prefix][2]time.Duration{prefixA: {ValidLimit, 0}, prefixB: {ValidLimit, PreferredLimit}}},
		{1000 * time.Second, map[netip.Prefix][2]time.Duration{prefixA: {ValidLimit - 1000*time.Second, 0}, prefixB: {ValidLimit, PreferredLimit}}},
		{ValidLimit, map[netip.Prefix][2]time.Duration{prefixB: {ValidLimit, PreferredLimit}}},
	}
	for _, s := range steps {
		if diff := cmp.Diff(s.want, at(s.after)); diff != "" {
			t.Errorf("after %v (-want +got):\n%s", s.after, diff)
		}
	}
}

func TestTableWithdrawnBeforeUplinkExpiry(t *testing.T) {
	var tb table
	tb.set([]Prefix{{Prefix: prefixA, Valid: t0.Add(600 * time.Second)}}, t0)
	tb.set(nil, t0)
	if got, want := tb.entries[0].Expires, t0.Add(600*time.Second); !got.Equal(want) {
		t.Errorf("withdrawn prefix expires %v, want the uplink's %v", got, want)
	}
}

func TestTableBound(t *testing.T) {
	var tb table
	for i := range 40 {
		p := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i)}), 64)
		tb.set([]Prefix{{Prefix: p}}, t0.Add(time.Duration(i)*time.Second))
	}
	if len(tb.entries) != maxPrefixes {
		t.Fatalf("%d prefixes, want %d", len(tb.entries), maxPrefixes)
	}
	active := 0
	for _, e := range tb.entries {
		if e.active() {
			active++
		}
	}
	if active != 1 {
		t.Errorf("%d active prefixes, want the current one", active)
	}
}

func TestTableRestore(t *testing.T) {
	saved := []entry{
		{Prefix: prefixA}, // active when we stopped
		{Prefix: prefixB, Expires: t0.Add(time.Minute)},                                   // withdrawn, one minute left
		{Prefix: netip.MustParsePrefix("2001:db8:c::/64"), Expires: t0.Add(-time.Second)}, // over
		{Prefix: netip.MustParsePrefix("2001:db8:d::/64"), Valid: t0.Add(time.Hour)},      // the uplink's hour
	}
	var tb table
	tb.restore(saved, t0)
	want := []entry{
		{Prefix: prefixA, Expires: t0.Add(ValidLimit)},
		{Prefix: prefixB, Expires: t0.Add(time.Minute)},
		{Prefix: netip.MustParsePrefix("2001:db8:d::/64"), Valid: t0.Add(time.Hour), Expires: t0.Add(time.Hour)},
	}
	if diff := cmp.Diff(want, tb.entries, cmp.Comparer(entry.equal)); diff != "" {
		t.Errorf("restored (-want +got):\n%s", diff)
	}
	// The same prefix in the first Advert: active again, preferred.
	tb.set([]Prefix{{Prefix: prefixA}}, t0)
	if v, p := tb.entries[0].lifetimes(t0); v != ValidLimit || p != PreferredLimit {
		t.Errorf("re-advertised prefix: valid %v preferred %v", v, p)
	}
}

func TestTableChange(t *testing.T) {
	day := t0.Add(24 * time.Hour)
	tests := []struct {
		name     string
		from, to []Prefix
		want     change
	}{
		{"same", []Prefix{{Prefix: prefixA, Valid: day}}, []Prefix{{Prefix: prefixA, Valid: day}}, unchanged},
		{"renewal recomputed a second later", []Prefix{{Prefix: prefixA, Valid: day}}, []Prefix{{Prefix: prefixA, Valid: day.Add(time.Second)}}, drift},
		{"renewal", []Prefix{{Prefix: prefixA, Valid: day, Preferred: day}}, []Prefix{{Prefix: prefixA, Valid: day.Add(time.Hour), Preferred: day.Add(time.Hour)}}, later},
		{"deadline removed", []Prefix{{Prefix: prefixA, Valid: day}}, []Prefix{{Prefix: prefixA}}, later},
		{"lifetime cut", []Prefix{{Prefix: prefixA, Valid: day}}, []Prefix{{Prefix: prefixA, Valid: t0.Add(time.Hour)}}, material},
		{"deadline added", []Prefix{{Prefix: prefixA}}, []Prefix{{Prefix: prefixA, Preferred: day}}, material},
		{"prefix added", []Prefix{{Prefix: prefixA}}, []Prefix{{Prefix: prefixA}, {Prefix: prefixB}}, material},
		{"prefix withdrawn", []Prefix{{Prefix: prefixA}, {Prefix: prefixB}}, []Prefix{{Prefix: prefixB}}, material},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tb table
			tb.set(tt.from, t0)
			if got := tb.set(tt.to, t0); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
