package facts

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/internal/leakcheck"
)

func TestLatestValueNoBacklog(t *testing.T) {
	tp := NewTopic(func(a, b int) bool { return a == b })
	if _, ok := tp.Get(); ok {
		t.Fatal("a new topic has a value")
	}
	c, cancel := tp.Subscribe()
	defer cancel()
	for i := 1; i <= 100; i++ {
		tp.Publish(i) // the subscriber reads none of them yet
	}
	if got := <-c; got != 100 {
		t.Fatalf("slow subscriber got %d; want only the newest, 100", got)
	}
	select {
	case v := <-c:
		t.Fatalf("backlog: %d", v)
	default:
	}
	if tp.Publish(100) {
		t.Fatal("publishing the same value reported a change")
	}
	select {
	case v := <-c:
		t.Fatalf("an unchanged value was delivered: %d", v)
	default:
	}
	late, cancel2 := tp.Subscribe()
	if got := <-late; got != 100 {
		t.Fatalf("late subscriber got %d; want the current 100", got)
	}
	cancel2()
	tp.Publish(101)
	select {
	case v := <-late:
		t.Fatalf("cancelled subscriber got %d", v)
	default:
	}
}

func TestWait(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		b := NewBoard()
		lan := "br-lan"
		got := make(chan netip.Prefix, 1)
		go func() {
			v, err := b.LAN.Wait(t.Context(), func(l LAN) bool { _, ok := l.IPv4(lan); return ok })
			if err != nil {
				t.Error(err)
			}
			p, _ := v.IPv4(lan)
			got <- p
		}()
		b.LAN.Publish(LAN{Addrs: map[string][]netip.Prefix{lan: {netip.MustParsePrefix("fe80::1/64")}}})
		synctest.Wait()
		select {
		case p := <-got:
			t.Fatalf("Wait returned %v before the LAN had an IPv4 address", p)
		default:
		}
		b.LAN.Publish(LAN{Addrs: map[string][]netip.Prefix{lan: {netip.MustParsePrefix("192.168.1.1/24"), netip.MustParsePrefix("fe80::1/64")}}})
		if p := <-got; p != netip.MustParsePrefix("192.168.1.1/24") {
			t.Fatalf("Wait = %v", p)
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := b.WAN.Wait(ctx, func(w WAN) bool { return w.Addr.IsValid() }); err == nil {
			t.Fatal("Wait on a topic without a value returned without error")
		}
	})
}

func TestLANPrefixes(t *testing.T) {
	l := LAN{Addrs: map[string][]netip.Prefix{
		"br-lan": {netip.MustParsePrefix("192.168.1.1/24"), netip.MustParsePrefix("2001:db8:1::1/64"), netip.MustParsePrefix("fe80::1/64")},
		"eth2":   {netip.MustParsePrefix("192.168.1.2/24"), netip.MustParsePrefix("10.0.0.1/8")},
	}}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	if diff := cmp.Diff(want, l.Prefixes(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if !l.Equal(LAN{Addrs: map[string][]netip.Prefix{"br-lan": l.Addrs["br-lan"], "eth2": l.Addrs["eth2"]}}) {
		t.Fatal("Equal of equal values is false")
	}
}
