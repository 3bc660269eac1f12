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

func goodState(t *testing.T) *nat44.State {
	return &nat44.State{
		WAN: "wan0", LANs: []string{"br-lan"}, WANAddr: wanA, Filtering: nat44.EndpointIndependent,
		Mappings: table(t, nat44.Mapping{Proto: nat44.TCP, ExternalPort: 8080, Internal: lanA, Owner: nat44.OwnerAdmin}),
		Cone:     map[uint16]netip.AddrPort{5000: netip.MustParseAddrPort("192.168.1.12:5000")},
		WANInput: []nat44.Key{{Proto: nat44.UDP, ExternalPort: 3544}},
	}
}

// view is what a test can see of the fake kernel.
type view struct {
	Installed bool
	WANAddr   netip.Addr
	Forwards  map[nat44.Key]netip.AddrPort
	Cone      map[uint16]netip.AddrPort
	Remotes   map[nat44.RemoteKey]netip.AddrPort
	WANInput  []nat44.Key
	Applies   int
}

func look(d *FakeDatapath) view {
	return view{d.Installed(), d.WANAddr(), d.Forwards(), d.Cone(), d.Remotes(), d.WANInput(), d.Applies()}
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
		Installed: true,
		WANAddr:   wanA,
		Forwards:  map[nat44.Key]netip.AddrPort{{Proto: nat44.TCP, ExternalPort: 8080}: lanA},
		Cone:      map[uint16]netip.AddrPort{5000: netip.MustParseAddrPort("192.168.1.12:5000")},
		Remotes:   map[nat44.RemoteKey]netip.AddrPort{},
		WANInput:  []nat44.Key{{Proto: nat44.UDP, ExternalPort: 3544}},
		Applies:   1,
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
