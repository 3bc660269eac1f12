package events

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func ids(es []Event) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestRing(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := New(3, func() time.Time { return t0 })
	if got := r.After(0); len(got) != 0 {
		t.Fatalf("empty ring gave %v", got)
	}
	host := netip.MustParseAddr("192.168.1.10")
	for i := range 5 {
		if id := r.Add(KindMapping, host, fmt.Sprint(i)); id != uint64(i+1) {
			t.Fatalf("Add gave ID %d, want %d", id, i+1)
		}
	}
	tests := []struct {
		after uint64
		want  []uint64
	}{
		{0, []uint64{3, 4, 5}}, // 1 and 2 fell out
		{1, []uint64{3, 4, 5}},
		{3, []uint64{4, 5}},
		{5, []uint64{}},
		{99, []uint64{}}, // a client that saw a later daemon's IDs
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("after ", tt.after), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(r.After(tt.after))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	want := Event{ID: 5, Time: t0, Kind: KindMapping, Host: host, Message: "4"}
	if diff := cmp.Diff(want, r.After(4)[0], cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

func TestRingConcurrent(t *testing.T) {
	r := New(50, nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				r.Add(KindRefused, netip.Addr{}, "x")
				r.After(0)
			}
		})
	}
	wg.Wait()
	got := ids(r.After(0))
	if len(got) != 50 || got[0] != 351 || got[49] != 400 {
		t.Errorf("after 400 adds the ring holds %v", got)
	}
}

func BenchmarkAdd(b *testing.B) {
	r := New(500, nil)
	b.ReportAllocs()
	for b.Loop() {
		r.Add(KindRefused, netip.Addr{}, "host limit")
	}
}
