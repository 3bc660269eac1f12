package dhcp

import (
	"gateway/dhcp/dhcp4"

	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkAllocate measures one new client's full exchange (DISCOVER,
// probe result, DISCOVER, REQUEST, RELEASE) while `leases` other clients
// hold leases. The per-op cost should not grow with the number of leases:
// the free address is found through the pool's bitmaps, not by scanning.
// "words/op" is the number of bitmap words read per op.
func BenchmarkAllocate(b *testing.B) {
	for _, bc := range []struct {
		name   string
		prefix string
		start  string
		end    string
		leases int
	}{
		{"leases=1000", "10.0.0.1/16", "10.0.0.10", "10.0.255.254", 1000},
		{"leases=10000", "10.0.0.1/16", "10.0.0.10", "10.0.255.254", 10000},
		// 10,000 leases in a pool of 10,100: 99% full.
		{"leases=10000/pool=99%", "10.0.0.1/18", "10.0.0.2", "10.0.39.117", 10000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCore(b, CoreConfig{
				ServerAddr: netip.MustParsePrefix(bc.prefix),
				PoolStart:  ip(bc.start), PoolEnd: ip(bc.end),
			})
			for i := range bc.leases {
				bindClient(b, c, &client{mac: benchMAC(1, i)}, t0)
			}
			if s := c.Stats(); s.Bound != bc.leases {
				b.Fatalf("setup: %d leases", s.Bound)
			}
			// Every op is a new client. Its messages are built once and
			// re-addressed, so that the benchmark measures the core rather
			// than dhcpv4.New (which reads crypto/rand).
			k := &client{mac: benchMAC(2, 0)}
			disc, sel, rel := toMsg(k.discover()), toMsg(k.selecting(c.server, ip(bc.start))), toMsg(k.release(c.server, ip(bc.start)))
			steps := c.pool.free.steps + c.pool.fresh.steps
			now := t0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				m := benchMAC(2, i)
				i++
				disc.CHAddr, sel.CHAddr, rel.CHAddr = m, m, m
				now = now.Add(time.Millisecond)
				a := c.Handle(disc, now)
				if a.Probe.IsValid() {
					c.ProbeDone(a.Probe, false, now)
					a = c.Handle(disc, now)
				}
				if a.Reply == nil {
					b.Fatalf("no offer: %+v", summarize(asResult(a)))
				}
				y := a.Reply.YIAddr
				sel.Set(dhcp4.AddrOption(optRequestedIP, y))
				if a := c.Handle(sel, now); a.Commit == nil {
					b.Fatalf("no ack: %+v", summarize(asResult(a)))
				}
				rel.CIAddr = y
				if a := c.Handle(rel, now); a.Released == nil {
					b.Fatalf("no release: %+v", summarize(asResult(a)))
				}
			}
			b.ReportMetric(float64(c.pool.free.steps+c.pool.fresh.steps-steps)/float64(i), "words/op")
			if s := c.Stats(); s.Bound != bc.leases {
				b.Fatalf("after: %d leases", s.Bound)
			}
		})
	}
}

func benchMAC(group byte, i int) net.HardwareAddr {
	return net.HardwareAddr{2, group, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

// BenchmarkPick isolates the allocator: one pick and its undo on a pool with
// `used` of its addresses taken.
func BenchmarkPick(b *testing.B) {
	for _, used := range []int{1000, 10000, 60000} {
		b.Run(fmt.Sprintf("used=%d", used), func(b *testing.B) {
			p := newAddrPool(ip("10.0.0.10"), ip("10.0.255.254"))
			for i := range used {
				a, _ := p.pick(hashKey(macKey(benchMAC(1, i))))
				p.take(a)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				a, ok := p.pick(hashKey(macKey(benchMAC(2, i))))
				if !ok {
					b.Fatal("pool full")
				}
				p.take(a)
				p.give(a, false)
				i++
			}
		})
	}
}
