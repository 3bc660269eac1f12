package nat44

import (
	"net/netip"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

var (
	flowWAN  = netip.MustParseAddr("203.0.113.1")
	flowA    = netip.MustParseAddrPort("192.168.1.10:5000")
	flowB    = netip.MustParseAddrPort("192.168.1.11:5000")
	remote1  = netip.MustParseAddrPort("198.51.100.7:3478")
	remote1b = netip.MustParseAddrPort("198.51.100.7:9999") // same address, another port
	remote2  = netip.MustParseAddrPort("198.51.100.8:3478")
)

const testHold = 2 * time.Minute

func newFlow(internal, remote netip.AddrPort, extPort uint16) *FlowEvent {
	return &FlowEvent{Proto: UDP, Internal: internal, Remote: remote, External: netip.AddrPortFrom(flowWAN, extPort)}
}

func gone(ev *FlowEvent) *FlowEvent {
	d := *ev
	d.Destroy = true
	return &d
}

// flowStep is one event (or, with ev nil, one expiry run) and what the
// tracker holds after it.
type flowStep struct {
	name        string
	at          time.Duration // after t0
	ev          *FlowEvent
	wantChanged bool
	cone        map[uint16]netip.AddrPort
	remotes     map[RemoteKey]netip.AddrPort
	next        time.Duration // when the next hold ends, after t0; 0 for none
}

func runFlowSteps(t *testing.T, ft *flowTracker, steps []flowStep) {
	t.Helper()
	for _, s := range steps {
		now := t0.Add(s.at)
		var changed bool
		if s.ev != nil {
			changed = ft.event(*s.ev, flowWAN, now)
		} else {
			changed = ft.expire(now)
		}
		if changed != s.wantChanged {
			t.Errorf("%s: changed = %v, want %v", s.name, changed, s.wantChanged)
		}
		cone, remotes := ft.maps()
		want := struct {
			Cone    map[uint16]netip.AddrPort
			Remotes map[RemoteKey]netip.AddrPort
		}{s.cone, s.remotes}
		if want.Cone == nil {
			want.Cone = map[uint16]netip.AddrPort{}
		}
		if want.Remotes == nil {
			want.Remotes = map[RemoteKey]netip.AddrPort{}
		}
		got := struct {
			Cone    map[uint16]netip.AddrPort
			Remotes map[RemoteKey]netip.AddrPort
		}{cone, remotes}
		if diff := gocmp.Diff(want, got, netipComparers); diff != "" {
			t.Errorf("%s: maps (-want +got):\n%s", s.name, diff)
		}
		at, ok := ft.next()
		switch {
		case s.next == 0 && ok:
			t.Errorf("%s: next hold ends at +%v, want none", s.name, at.Sub(t0))
		case s.next != 0 && (!ok || !at.Equal(t0.Add(s.next))):
			t.Errorf("%s: next = +%v, %v; want +%v", s.name, at.Sub(t0), ok, s.next)
		}
	}
}

func TestFlowTrackerEndpointIndependent(t *testing.T) {
	a1 := newFlow(flowA, remote1, 5000)
	a2 := newFlow(flowA, remote2, 5000)
	b1 := newFlow(flowB, remote1, 5000)
	open := map[uint16]netip.AddrPort{5000: flowA}
	steps := []flowStep{
		{name: "new flow opens the port", ev: a1, wantChanged: true, cone: open},
		{name: "a second flow shares it", ev: a2, cone: open},
		{name: "one flow ends", at: time.Second, ev: gone(a1), cone: open},
		{name: "an unknown flow's end is ignored", at: time.Second, ev: gone(newFlow(flowA, remote1, 6000)), cone: open},
		{name: "the last flow ends: hold starts", at: 10 * time.Second, ev: gone(a2), cone: open, next: 10*time.Second + testHold},
		{name: "a duplicate destroy does not go below zero", at: 11 * time.Second, ev: gone(a2), cone: open, next: 10*time.Second + testHold},
		{name: "held just before the end", at: 10*time.Second + testHold - time.Nanosecond, cone: open, next: 10*time.Second + testHold},
		{name: "gone at the end of the hold", at: 10*time.Second + testHold, wantChanged: true},
		{name: "nothing more to expire", at: time.Hour},
		{name: "opens again", at: time.Hour, ev: a1, wantChanged: true, cone: open},
		{name: "ends again", at: time.Hour, ev: gone(a1), cone: open, next: time.Hour + testHold},
		{name: "a new flow in the hold cancels it", at: time.Hour + time.Minute, ev: a2, cone: open},
		{name: "no expiry while it lives", at: 5 * time.Hour, cone: open},
		{name: "a new owner replaces", at: 5 * time.Hour, ev: b1, wantChanged: true, cone: map[uint16]netip.AddrPort{5000: flowB}},
		{name: "the old owner's end is ignored", at: 5 * time.Hour, ev: gone(a2), cone: map[uint16]netip.AddrPort{5000: flowB}},
		{name: "the new owner's end holds", at: 5 * time.Hour, ev: gone(b1), cone: map[uint16]netip.AddrPort{5000: flowB}, next: 5*time.Hour + testHold},
	}
	runFlowSteps(t, newFlowTracker(EndpointIndependent, testHold), steps)
}

func TestFlowTrackerAddressDependent(t *testing.T) {
	a1 := newFlow(flowA, remote1, 5000)
	a1b := newFlow(flowA, remote1b, 5000)
	a2 := newFlow(flowA, remote2, 5000)
	k1 := RemoteKey{remote1.Addr(), 5000}
	k2 := RemoteKey{remote2.Addr(), 5000}
	one := map[RemoteKey]netip.AddrPort{k1: flowA}
	both := map[RemoteKey]netip.AddrPort{k1: flowA, k2: flowA}
	steps := []flowStep{
		{name: "new flow opens for its remote address", ev: a1, wantChanged: true, remotes: one},
		{name: "another port of that address shares it", ev: a1b, remotes: one},
		{name: "another address opens its own", ev: a2, wantChanged: true, remotes: both},
		{name: "one of the shared flows ends", at: time.Second, ev: gone(a1), remotes: both},
		{name: "the last flow of an address ends", at: 2 * time.Second, ev: gone(a1b), remotes: both, next: 2*time.Second + testHold},
		{name: "held", at: time.Minute, remotes: both, next: 2*time.Second + testHold},
		{name: "that address goes after the hold", at: 2*time.Second + testHold, wantChanged: true, remotes: map[RemoteKey]netip.AddrPort{k2: flowA}},
		{name: "a new owner replaces", at: time.Hour, ev: newFlow(flowB, remote2, 5000), wantChanged: true, remotes: map[RemoteKey]netip.AddrPort{k2: flowB}},
	}
	runFlowSteps(t, newFlowTracker(AddressDependent, testHold), steps)
}

func TestFlowTrackerAddressAndPortDependent(t *testing.T) {
	// Plain conntrack filters: the tracker opens nothing.
	a1 := newFlow(flowA, remote1, 5000)
	steps := []flowStep{
		{name: "new flow", ev: a1},
		{name: "destroy", ev: gone(a1)},
		{name: "expire", at: time.Hour},
	}
	runFlowSteps(t, newFlowTracker(AddressAndPortDependent, testHold), steps)
}

func TestFlowTrackerIgnores(t *testing.T) {
	base := *newFlow(flowA, remote1, 5000)
	tests := []struct {
		name string
		wan  netip.Addr
		edit func(*FlowEvent)
	}{
		{"TCP", flowWAN, func(ev *FlowEvent) { ev.Proto = TCP }},
		{"another WAN address", flowWAN, func(ev *FlowEvent) { ev.External = netip.MustParseAddrPort("198.51.100.1:5000") }},
		{"not translated (LAN to LAN)", flowWAN, func(ev *FlowEvent) { ev.External = netip.MustParseAddrPort("192.168.1.10:5000") }},
		{"the router's own flow", flowWAN, func(ev *FlowEvent) { ev.Internal = netip.AddrPortFrom(flowWAN, 5000) }},
		{"external port 0", flowWAN, func(ev *FlowEvent) { ev.External = netip.AddrPortFrom(flowWAN, 0) }},
		{"no WAN address", netip.Addr{}, func(*FlowEvent) {}},
		{"unsolicited destroy", flowWAN, func(ev *FlowEvent) { ev.Destroy = true }},
	}
	for _, mode := range []Filtering{EndpointIndependent, AddressDependent} {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				ft := newFlowTracker(mode, testHold)
				ev := base
				tt.edit(&ev)
				if ft.event(ev, tt.wan, t0) {
					t.Errorf("event %+v changed the maps", ev)
				}
				cone, remotes := ft.maps()
				if len(cone)+len(remotes) != 0 {
					t.Errorf("event %+v opened %v %v", ev, cone, remotes)
				}
				if _, ok := ft.next(); ok {
					t.Errorf("event %+v started a hold", ev)
				}
			})
		}
	}
}

func TestFlowTrackerReset(t *testing.T) {
	ft := newFlowTracker(EndpointIndependent, testHold)
	ft.event(*newFlow(flowA, remote1, 5000), flowWAN, t0)
	ft.event(*newFlow(flowB, remote1, 5001), flowWAN, t0)
	ft.event(*gone(newFlow(flowB, remote1, 5001)), flowWAN, t0)
	ft.reset(AddressDependent)
	cone, remotes := ft.maps()
	if len(cone)+len(remotes) != 0 {
		t.Errorf("reset kept %v %v", cone, remotes)
	}
	if _, ok := ft.next(); ok {
		t.Error("reset kept a hold")
	}
	// The flows of before the reset are gone: their ends change nothing.
	if ft.event(*gone(newFlow(flowA, remote1, 5000)), flowWAN, t0) {
		t.Error("a destroy of a flow from before the reset changed the maps")
	}
	// The tracker now works in the new mode.
	if !ft.event(*newFlow(flowA, remote1, 5000), flowWAN, t0) {
		t.Error("a new flow after the reset changed nothing")
	}
	cone, remotes = ft.maps()
	want := map[RemoteKey]netip.AddrPort{{remote1.Addr(), 5000}: flowA}
	if len(cone) != 0 {
		t.Errorf("after reset to address-dependent, cone = %v", cone)
	}
	if diff := gocmp.Diff(want, remotes, netipComparers); diff != "" {
		t.Errorf("remotes (-want +got):\n%s", diff)
	}
}
