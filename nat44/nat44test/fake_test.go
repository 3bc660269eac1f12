package nat44test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/nat44"
)

var netipComparers = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

var (
	now  = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	wanA = netip.MustParseAddr("203.0.113.1")
	lanA = netip.MustParseAddrPort("192.168.1.10:80")
	lanB = netip.MustParseAddrPort("192.168.1.11:22")
)

func table(t *testing.T, ms ...nat44.Mapping) *nat44.Table {
	t.Helper()
	tb := nat44.NewTable()
	for _, m := range ms {
		if err := tb.Put(m, now); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

var (
	pinA = nat44.PinholeKey{Proto: nat44.TCP, Internal: netip.MustParseAddrPort("[2001:db8:1::10]:443")}
	pinB = nat44.PinholeKey{Proto: nat44.UDP, Internal: netip.MustParseAddrPort("[2001:db8:1::11]:9000"), Remote: netip.MustParseAddr("2001:db8:ff::9")}
)

func pinholes(t *testing.T, ks ...nat44.PinholeKey) *nat44.PinholeTable {
	t.Helper()
	tb := nat44.NewPinholeTable()
	for _, k := range ks {
		if _, err := tb.Put(nat44.Pinhole{PinholeKey: k, Owner: nat44.OwnerUPnP}, now); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

func goodState(t *testing.T) *nat44.State {
	return &nat44.State{
		WAN: "wan0", LANs: []string{"br-lan"}, WANAddr: wanA, Filtering: nat44.EndpointIndependent,
		Mappings: table(t, nat44.Mapping{Proto: nat44.TCP, ExternalPort: 8080, Internal: lanA, Owner: nat44.OwnerAdmin}),
		Cone:     map[uint16]netip.AddrPort{5000: netip.MustParseAddrPort("192.168.1.12:5000")},
		WANInput: []nat44.Key{{Proto: nat44.UDP, ExternalPort: 3544}},
		Outside:  []string{"tun6to4"},
		Pinholes: pinholes(t, pinA),
	}
}

// view is what a test can see of the fake kernel.
type view struct {
	Installed      bool
	WANAddr        netip.Addr
	Forwards       map[nat44.Key]netip.AddrPort
	ForwardRemotes map[nat44.Key]netip.Addr
	Cone           map[uint16]netip.AddrPort
	Remotes        map[nat44.RemoteKey]netip.AddrPort
	WANInput       []nat44.Key
	Outside        []string
	Pinholes       []nat44.PinholeKey
	Applies        int
}

func look(d *FakeDatapath) view {
	return view{d.Installed(), d.WANAddr(), d.Forwards(), d.ForwardRemotes(), d.Cone(), d.Remotes(), d.WANInput(), d.Outside(), d.Pinholes(), d.Applies()}
}

func TestFakeDatapathApply(t *testing.T) {
	d := NewFakeDatapath()
	if got := look(d); got.Installed || got.Applies != 0 || len(got.Forwards) != 0 {
		t.Fatalf("new datapath is not empty: %+v", got)
	}
	if err := d.Apply(goodState(t)); err != nil {
		t.Fatal(err)
	}
	want := view{
		Installed:      true,
		WANAddr:        wanA,
		Forwards:       map[nat44.Key]netip.AddrPort{{Proto: nat44.TCP, ExternalPort: 8080}: lanA},
		ForwardRemotes: map[nat44.Key]netip.Addr{},
		Cone:           map[uint16]netip.AddrPort{5000: netip.MustParseAddrPort("192.168.1.12:5000")},
		Remotes:        map[nat44.RemoteKey]netip.AddrPort{},
		WANInput:       []nat44.Key{{Proto: nat44.UDP, ExternalPort: 3544}},
		Outside:        []string{"tun6to4", "wan0"},
		Pinholes:       []nat44.PinholeKey{pinA},
		Applies:        1,
	}
	if diff := cmp.Diff(want, look(d), netipComparers); diff != "" {
		t.Fatalf("after Apply (-want +got):\n%s", diff)
	}
	if err := d.Apply(goodState(t)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, look(d), netipComparers); diff != "" {
		t.Fatalf("a second Apply of the same state changed something (-want +got):\n%s", diff)
	}
	if ap, ok := d.Lookup(nat44.TCP, 8080); !ok || ap != lanA {
		t.Errorf("Lookup(tcp, 8080) = %v, %v; want %v, true", ap, ok, lanA)
	}
	if _, ok := d.Lookup(nat44.UDP, 8080); ok {
		t.Errorf("Lookup(udp, 8080) found a mapping of tcp/8080")
	}

	// The state it holds is a copy: editing the service's table after Apply
	// does not reach the kernel.
	s := goodState(t)
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	s.Mappings.Put(nat44.Mapping{Proto: nat44.TCP, ExternalPort: 22, Internal: lanB, Owner: nat44.OwnerAdmin}, now)
	if _, ok := d.Lookup(nat44.TCP, 22); ok {
		t.Errorf("the datapath sees a mapping that was never applied")
	}
}

func TestFakeDatapathRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(*nat44.State)
	}{
		{"IPv6 WAN address", func(s *nat44.State) { s.WANAddr = netip.MustParseAddr("2001:db8::1") }},
		{"IPv4-mapped WAN address", func(s *nat44.State) { s.WANAddr = netip.MustParseAddr("::ffff:203.0.113.1") }},
		{"no WAN name", func(s *nat44.State) { s.WAN = "" }},
		{"WAN name too long", func(s *nat44.State) { s.WAN = "a-very-long-interface" }},
		{"no LAN", func(s *nat44.State) { s.LANs = nil }},
		{"unknown filtering", func(s *nat44.State) { s.Filtering = 9 }},
		{"IPv6 cone target", func(s *nat44.State) { s.Cone[5001] = netip.MustParseAddrPort("[2001:db8::2]:5001") }},
		{"cone port 0", func(s *nat44.State) { s.Cone[0] = lanA }},
		{"IPv6 remote", func(s *nat44.State) {
			s.Remotes = map[nat44.RemoteKey]netip.AddrPort{{Remote: netip.MustParseAddr("2001:db8::9"), ExternalPort: 5000}: lanA}
		}},
		{"wan_input protocol", func(s *nat44.State) { s.WANInput = append(s.WANInput, nat44.Key{Proto: 1, ExternalPort: 7}) }},
		{"wan_input port 0", func(s *nat44.State) { s.WANInput = append(s.WANInput, nat44.Key{Proto: nat44.UDP}) }},
		{"outside name too long", func(s *nat44.State) { s.Outside = []string{"a-very-long-tunnel"} }},
		{"empty outside name", func(s *nat44.State) { s.Outside = []string{""} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewFakeDatapath()
			if err := d.Apply(goodState(t)); err != nil {
				t.Fatal(err)
			}
			before := look(d)
			bad := goodState(t)
			bad.Mappings.Delete(nat44.Key{Proto: nat44.TCP, ExternalPort: 8080}) // a change that must not land
			tt.edit(bad)
			if err := d.Apply(bad); !errors.Is(err, ErrRefused) {
				t.Fatalf("Apply(invalid) = %v, want ErrRefused", err)
			}
			if diff := cmp.Diff(before, look(d), netipComparers); diff != "" {
				t.Errorf("a refused Apply changed the kernel (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFakeDatapathFailNext(t *testing.T) {
	d := NewFakeDatapath()
	if err := d.Apply(goodState(t)); err != nil {
		t.Fatal(err)
	}
	before := look(d)
	boom := errors.New("ENOBUFS")
	d.FailNext(boom)
	s := goodState(t)
	s.WANAddr = netip.MustParseAddr("198.51.100.1")
	if err := d.Apply(s); !errors.Is(err, boom) {
		t.Fatalf("Apply after FailNext = %v, want %v", err, boom)
	}
	if diff := cmp.Diff(before, look(d), netipComparers); diff != "" {
		t.Errorf("a failed Apply changed the kernel (-want +got):\n%s", diff)
	}
	if err := d.Apply(s); err != nil {
		t.Fatalf("FailNext failed more than one Apply: %v", err)
	}
	if got := d.WANAddr(); got != s.WANAddr {
		t.Errorf("WANAddr = %v, want %v", got, s.WANAddr)
	}
}

func TestFakeDatapathTamper(t *testing.T) {
	d := NewFakeDatapath()
	d.Tamper() // nothing installed: nothing to tamper with
	if drifted, _ := d.Drifted(); drifted {
		t.Fatal("Drifted before any Apply")
	}
	if err := d.Apply(goodState(t)); err != nil {
		t.Fatal(err)
	}
	d.Tamper()
	if drifted, err := d.Drifted(); !drifted || err != nil {
		t.Fatalf("Drifted after Tamper = %v, %v; want true", drifted, err)
	}
	if d.Installed() {
		t.Error("Installed after Tamper")
	}
	if _, ok := d.Lookup(nat44.TCP, 8080); ok {
		t.Error("the mapping survived Tamper")
	}
	if drifted, _ := d.Drifted(); !drifted {
		t.Error("Drifted forgot the drift before any Apply")
	}
	if err := d.Apply(goodState(t)); err != nil {
		t.Fatal(err)
	}
	if drifted, _ := d.Drifted(); drifted {
		t.Error("Drifted after the rebuild")
	}
	if got := d.Applies(); got != 2 {
		t.Errorf("Applies = %d, want 2: the rebuild after Tamper changes the kernel", got)
	}
	if _, ok := d.Lookup(nat44.TCP, 8080); !ok {
		t.Error("the rebuild did not restore the mapping")
	}
}

func TestFakeDatapathClose(t *testing.T) {
	d := NewFakeDatapath()
	if err := d.Apply(goodState(t)); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d.Installed() || len(d.Forwards()) != 0 {
		t.Errorf("Close left the table: %+v", look(d))
	}
	if err := d.Apply(goodState(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
}

func TestFakeConntrack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewFakeConntrack()
		ev := nat44.FlowEvent{Proto: nat44.UDP, Internal: lanA, External: netip.AddrPortFrom(wanA, 80), Remote: netip.MustParseAddrPort("198.51.100.7:3478")}

		// Nobody listens: Emit gives up with its context.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		if err := c.Emit(ctx, ev); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Emit without a listener = %v, want DeadlineExceeded", err)
		}
		cancel()

		var got []nat44.FlowEvent
		lctx, stop := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			done <- c.Listen(lctx, func([]nat44.FlowEvent) {}, func(ev nat44.FlowEvent) { got = append(got, ev) })
		}()
		destroy := ev
		destroy.Destroy = true
		for _, e := range []nat44.FlowEvent{ev, destroy} {
			if err := c.Emit(t.Context(), e); err != nil {
				t.Fatal(err)
			}
		}
		// Emit returned after fn did: got is complete without waiting.
		if diff := cmp.Diff([]nat44.FlowEvent{ev, destroy}, got, netipComparers); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		stop()
		if err := <-done; err != nil {
			t.Errorf("Listen = %v", err)
		}
	})
}

func TestFakeConntrackSessions(t *testing.T) {
	c := NewFakeConntrack()
	out := nat44.Session{Proto: nat44.TCP, Internal: lanA, External: netip.AddrPortFrom(wanA, 40000), Remote: netip.MustParseAddrPort("198.51.100.7:443"), State: "established"}
	other := out
	other.External = netip.MustParseAddrPort("198.51.100.1:40000")
	c.SetSessions([]nat44.Session{out, other})
	got, err := c.Sessions(wanA)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]nat44.Session{out}, got, netipComparers); diff != "" {
		t.Errorf("Sessions(%v) (-want +got):\n%s", wanA, diff)
	}
}

// TestFakeDatapathHonoursHints: with State.Changed or ChangedPinholes set,
// only the keys they name reach the fake, as only they reach the kernel;
// a key left out stays stale until an Apply without hints.
func TestFakeDatapathHonoursHints(t *testing.T) {
	d := NewFakeDatapath()
	s := goodState(t)
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	k22, k23, k8080 := nat44.Key{Proto: nat44.TCP, ExternalPort: 22}, nat44.Key{Proto: nat44.TCP, ExternalPort: 23}, nat44.Key{Proto: nat44.TCP, ExternalPort: 8080}
	for _, m := range []nat44.Mapping{
		{Proto: nat44.TCP, ExternalPort: 22, Internal: lanB, Owner: nat44.OwnerAdmin},
		{Proto: nat44.TCP, ExternalPort: 23, Internal: lanB, Owner: nat44.OwnerAdmin},
	} {
		if err := s.Mappings.Put(m, now); err != nil {
			t.Fatal(err)
		}
	}
	s.Mappings.Delete(k8080)
	if _, err := s.Pinholes.Put(nat44.Pinhole{PinholeKey: pinB, Owner: nat44.OwnerPCP}, now); err != nil {
		t.Fatal(err)
	}
	s.Pinholes.Delete(pinA)
	s.Changed = map[nat44.Key]bool{k22: true}                 // 23 and 8080 forgotten
	s.ChangedPinholes = map[nat44.PinholeKey]bool{pinB: true} // pinA forgotten
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	want := map[nat44.Key]netip.AddrPort{k22: lanB, k8080: lanA}
	if diff := cmp.Diff(want, d.Forwards(), netipComparers); diff != "" {
		t.Errorf("with Changed={tcp/22}, forwards (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]nat44.PinholeKey{pinA, pinB}, d.Pinholes(), netipComparers); diff != "" {
		t.Errorf("with ChangedPinholes={B}, pinholes (-want +got):\n%s", diff)
	}
	applies := d.Applies()
	s.Changed, s.ChangedPinholes = map[nat44.Key]bool{}, map[nat44.PinholeKey]bool{}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if d.Applies() != applies {
		t.Errorf("an Apply with empty hints changed the kernel")
	}
	s.Changed, s.ChangedPinholes = nil, nil
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	want = map[nat44.Key]netip.AddrPort{k22: lanB, k23: lanB}
	if diff := cmp.Diff(want, d.Forwards(), netipComparers); diff != "" {
		t.Errorf("without hints, forwards (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]nat44.PinholeKey{pinB}, d.Pinholes(), netipComparers); diff != "" {
		t.Errorf("without hints, pinholes (-want +got):\n%s", diff)
	}

	// A rebuild (here after Tamper) reads everything, hints or not.
	s.Mappings.Delete(k23)
	d.Tamper()
	s.Changed = map[nat44.Key]bool{}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[nat44.Key]netip.AddrPort{k22: lanB}, d.Forwards(), netipComparers); diff != "" {
		t.Errorf("rebuild with Changed={}: forwards (-want +got):\n%s", diff)
	}
	// So does a change of base.
	s.Mappings.Delete(k22)
	s.WANAddr = netip.MustParseAddr("198.51.100.1")
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if got := d.Forwards(); len(got) != 0 {
		t.Errorf("new base with Changed={}: forwards = %v, want none", got)
	}
}

// TestFakeDatapathRemoteHost: a mapping with a remote host answers that
// host alone, as fwd4r does.
func TestFakeDatapathRemoteHost(t *testing.T) {
	d := NewFakeDatapath()
	s := goodState(t)
	remote, other := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")
	if err := s.Mappings.Put(nat44.Mapping{Proto: nat44.UDP, ExternalPort: 3074, Internal: lanB, Remote: remote, Owner: nat44.OwnerPCP}, now); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if ap, ok := d.LookupFrom(remote, nat44.UDP, 3074); !ok || ap != lanB {
		t.Errorf("LookupFrom(its remote) = %v, %v; want %v", ap, ok, lanB)
	}
	if ap, ok := d.LookupFrom(other, nat44.UDP, 3074); ok {
		t.Errorf("LookupFrom(another remote) = %v; want no DNAT", ap)
	}
	if ap, ok := d.Lookup(nat44.UDP, 3074); ok {
		t.Errorf("Lookup (anyone) = %v; want no DNAT", ap)
	}
	if ap, ok := d.LookupFrom(other, nat44.TCP, 8080); !ok || ap != lanA {
		t.Errorf("LookupFrom(anyone) of a mapping for anyone = %v, %v", ap, ok)
	}
	if diff := cmp.Diff(map[nat44.Key]netip.Addr{{Proto: nat44.UDP, ExternalPort: 3074}: remote}, d.ForwardRemotes(), netipComparers); diff != "" {
		t.Errorf("ForwardRemotes (-want +got):\n%s", diff)
	}
	// The remote host goes: the mapping answers anyone.
	s.Mappings.Replace(nat44.Mapping{Proto: nat44.UDP, ExternalPort: 3074, Internal: lanB, Owner: nat44.OwnerPCP})
	s.Changed = map[nat44.Key]bool{{Proto: nat44.UDP, ExternalPort: 3074}: true}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if ap, ok := d.Lookup(nat44.UDP, 3074); !ok || ap != lanB {
		t.Errorf("after the remote host went, Lookup = %v, %v", ap, ok)
	}
	if got := d.ForwardRemotes(); len(got) != 0 {
		t.Errorf("ForwardRemotes = %v, want none", got)
	}
}

// TestFakeDatapathPinholesAndOutside: pinholes admit as pin6 and pin6r
// do; @outside holds the WAN and State.Outside and follows them.
func TestFakeDatapathPinholesAndOutside(t *testing.T) {
	d := NewFakeDatapath()
	s := goodState(t)
	s.Pinholes = pinholes(t, pinA, pinB)
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	anyone, other := netip.MustParseAddr("2001:db8:ee::1"), netip.MustParseAddr("2001:db8:ee::2")
	for _, tt := range []struct {
		name     string
		remote   netip.Addr
		proto    nat44.Proto
		internal netip.AddrPort
		want     bool
	}{
		{"pinhole for anyone", anyone, nat44.TCP, pinA.Internal, true},
		{"other protocol", anyone, nat44.UDP, pinA.Internal, false},
		{"other port", anyone, nat44.TCP, netip.AddrPortFrom(pinA.Internal.Addr(), 444), false},
		{"pinhole for its remote", pinB.Remote, nat44.UDP, pinB.Internal, true},
		{"pinhole for another remote", other, nat44.UDP, pinB.Internal, false},
	} {
		if got := d.Admits(tt.remote, tt.proto, tt.internal); got != tt.want {
			t.Errorf("%s: Admits = %v, want %v", tt.name, got, tt.want)
		}
	}
	if diff := cmp.Diff([]string{"tun6to4", "wan0"}, d.Outside()); diff != "" {
		t.Errorf("Outside (-want +got):\n%s", diff)
	}
	applies := d.Applies()
	s.Outside = []string{"tun6to4", "teredo"}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"teredo", "tun6to4", "wan0"}, d.Outside()); diff != "" {
		t.Errorf("Outside after a tunnel came (-want +got):\n%s", diff)
	}
	if d.Applies() != applies+1 {
		t.Errorf("Applies = %d, want %d", d.Applies(), applies+1)
	}
}
