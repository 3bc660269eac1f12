package gateway

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"gateway/internal/events"
	"gateway/nat44"
)

func TestOnlineFrom(t *testing.T) {
	arp := `IP address       HW type     Flags       HW address            Mask     Device
192.168.1.10     0x1         0x2         02:00:00:00:00:01     *        br-lan
192.168.1.11     0x1         0x0         00:00:00:00:00:00     *        br-lan
192.168.1.12     0x1         0x6         02:00:00:00:00:03     *        br-lan
10.0.0.1         0x1         0x2         02:00:00:00:00:04     *        eth0
`
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	got := onlineFrom(strings.NewReader(arp), []netip.Addr{a("192.168.1.10"), a("192.168.1.11"), a("192.168.1.12"), a("192.168.1.13")})
	want := map[netip.Addr]bool{a("192.168.1.10"): true, a("192.168.1.11"): false, a("192.168.1.12"): true, a("192.168.1.13"): false}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMappingEvents(t *testing.T) {
	ev := events.New(10, nil)
	m := nat44.Mapping{Proto: nat44.UDP, ExternalPort: 3478, Internal: netip.MustParseAddrPort("192.168.1.10:3478"), Owner: nat44.OwnerPCP, Description: "game"}
	mappingEvent(ev, nat44.Event{Kind: nat44.MappingAdded, Mapping: m})
	mappingEvent(ev, nat44.Event{Kind: nat44.MappingRenewed, Mapping: m}) // not news
	mappingEvent(ev, nat44.Event{Kind: nat44.MappingRemoved, Mapping: m, Reason: "expired"})
	var got []string
	for _, e := range ev.After(0) {
		if e.Kind != events.KindMapping || e.Host != m.Internal.Addr() {
			t.Errorf("event %+v: want a mapping event of the host", e)
		}
		got = append(got, e.Message)
	}
	want := []string{`pcp opened udp port 3478 to 192.168.1.10:3478 ("game")`, "udp port 3478 to 192.168.1.10:3478 closed (expired)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	d := &Daemon{panel: panelData{events: events.New(10, nil)}}
	d.mapRefused(nat44.Request{Owner: nat44.OwnerUPnP, Client: netip.MustParseAddr("192.168.1.11"), Proto: nat44.TCP, ExternalPort: 22}, nat44.ErrNotAllowed)
	d.mapRefused(nat44.Request{Owner: nat44.OwnerUPnP}, nil)            // granted
	d.mapRefused(nat44.Request{Owner: nat44.OwnerUPnP}, nat44.ErrNoWAN) // not a refusal
	es := d.panel.events.After(0)
	if len(es) != 1 || es[0].Kind != events.KindRefused || es[0].Host != netip.MustParseAddr("192.168.1.11") || !strings.Contains(es[0].Message, "tcp port 22 refused") {
		t.Errorf("refusal events %+v", es)
	}
	(&Daemon{}).mapRefused(nat44.Request{}, nat44.ErrNotAllowed) // no log: no panic
}
