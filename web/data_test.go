package web

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/dhcp"
	"gateway/internal/events"
	"gateway/internal/throughput"
	"gateway/nat44"
)

type sessionsNAT struct {
	*fakeNAT
	s []nat44.Session
}

func (n sessionsNAT) Sessions() ([]nat44.Session, error) { return n.s, nil }

type leasesDHCP struct {
	fakeDHCP
	l []dhcp.Lease
}

func (d *leasesDHCP) Leases() []dhcp.Lease { return d.l }

// liveBackend is a backend with an event log, throughput samples and a
// neighbour table.
type liveBackend struct {
	nat  sessionsNAT
	dhcp *leasesDHCP
	ring *events.Ring
	up   map[netip.Addr]bool
}

func (b liveBackend) Status() any        { return nil }
func (b liveBackend) NAT() NAT           { return b.nat }
func (b liveBackend) Firewall() Firewall { return b.nat.fakeNAT }
func (b liveBackend) DHCP() DHCP         { return b.dhcp }
func (b liveBackend) Events(after uint64) []events.Event {
	return b.ring.After(after)
}
func (b liveBackend) Throughput() (time.Duration, []throughput.Sample) {
	return 2 * time.Second, []throughput.Sample{{Time: time.Unix(100, 0).UTC(), RX: 8000, TX: 1000}}
}
func (b liveBackend) Online(addrs []netip.Addr) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, a := range addrs {
		out[a] = b.up[a]
	}
	return out
}

func get(t *testing.T, b Backend, path string, v any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	NewAPI(b, nil).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if v != nil && rec.Code == 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, rec.Body)
		}
	}
	return rec.Code
}

func TestLive(t *testing.T) {
	a1, a2 := netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.11")
	b := liveBackend{
		nat: sessionsNAT{fakeNAT: &fakeNAT{t: nat44.NewTable()}, s: []nat44.Session{
			{Proto: nat44.TCP, Internal: netip.AddrPortFrom(a1, 5000)},
			{Proto: nat44.UDP, Internal: netip.AddrPortFrom(a2, 5001)},
			{Proto: nat44.UDP, Internal: netip.AddrPortFrom(a1, 5002)},
		}},
		dhcp: &leasesDHCP{l: []dhcp.Lease{{Addr: a1, MAC: "02:00:00:00:00:01"}, {Addr: a2, MAC: "02:00:00:00:00:02"}}},
		ring: events.New(10, nil),
		up:   map[netip.Addr]bool{a1: true},
	}
	for _, m := range []string{"joined", "opened", "refused"} {
		b.ring.Add(events.KindLease, a1, m)
	}

	t.Run("events after", func(t *testing.T) {
		var es []events.Event
		if code := get(t, b, "/api/v1/events?after=1", &es); code != 200 || len(es) != 2 || es[0].ID != 2 || es[0].Message != "opened" {
			t.Fatalf("events after 1: %d %+v", code, es)
		}
		if code := get(t, b, "/api/v1/events", &es); code != 200 || len(es) != 3 {
			t.Fatalf("all events: %d %+v", code, es)
		}
		if code := get(t, b, "/api/v1/events?after=3", &es); code != 200 || len(es) != 0 {
			t.Fatalf("no new events: %d %+v", code, es)
		}
		if code := get(t, b, "/api/v1/events?after=x", nil); code != 400 {
			t.Fatalf("bad after: %d", code)
		}
	})
	t.Run("throughput", func(t *testing.T) {
		var got struct {
			Interval int `json:"interval"`
			Samples  []struct {
				Time string `json:"time"`
				RX   uint64 `json:"rx_bps"`
				TX   uint64 `json:"tx_bps"`
			} `json:"samples"`
		}
		if code := get(t, b, "/api/v1/throughput", &got); code != 200 || got.Interval != 2 || len(got.Samples) != 1 || got.Samples[0].RX != 8000 || got.Samples[0].Time != "1970-01-01T00:01:40Z" {
			t.Fatalf("throughput: %d %+v", code, got)
		}
	})
	t.Run("leases online", func(t *testing.T) {
		var ls []struct {
			Addr   string `json:"addr"`
			MAC    string `json:"mac"`
			Online bool   `json:"online"`
		}
		get(t, b, "/api/v1/leases", &ls)
		want := []bool{true, false}
		var got []bool
		for _, l := range ls {
			got = append(got, l.Online)
		}
		if diff := cmp.Diff(want, got); diff != "" || ls[0].MAC != "02:00:00:00:00:01" {
			t.Fatalf("online (-want +got):\n%s\n%+v", diff, ls)
		}
	})
	t.Run("sessions per host", func(t *testing.T) {
		var ss []nat44.Session
		if code := get(t, b, "/api/v1/sessions?host=192.168.1.10", &ss); code != 200 || len(ss) != 2 {
			t.Fatalf("sessions of a1: %d %v", code, ss)
		}
		if code := get(t, b, "/api/v1/sessions?host=192.168.1.99", &ss); code != 200 || len(ss) != 0 {
			t.Fatalf("sessions of nobody: %d %v", code, ss)
		}
		if code := get(t, b, "/api/v1/sessions", &ss); code != 200 || len(ss) != 3 {
			t.Fatalf("all sessions: %d %v", code, ss)
		}
		if code := get(t, b, "/api/v1/sessions?host=nope", nil); code != 400 {
			t.Fatalf("bad host: %d", code)
		}
	})
	t.Run("without Live", func(t *testing.T) {
		plain := fakeBackend{nat: &fakeNAT{t: nat44.NewTable()}, dhcp: &fakeDHCP{}}
		if code := get(t, plain, "/api/v1/events", nil); code != 404 {
			t.Errorf("events without a log: %d", code)
		}
	})
}
