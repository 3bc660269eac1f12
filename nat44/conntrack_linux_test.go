package nat44

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"gateway/internal/leakcheck"
)

// TestListenStopsUnderFlood: when a consumer that fell behind a flood of
// new flows stops listening, Listen must return: the conntrack library's
// Close waits for its worker, which is then blocked handing over events.
func TestListenStopsUnderFlood(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	ns := newTestNS(t)
	if out, err := exec.Command("ip", "-n", ns.name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	// Our table's ct rules turn conntrack on in the namespace.
	d := newTestNFTables(t, ns)
	if err := d.Apply(&State{WAN: "wan", LANs: []string{"lan"}}); err != nil {
		t.Fatal(err)
	}
	ct := NewKernelConntrack(ns.fd)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- ct.Listen(ctx, func([]FlowEvent) { close(started) }, func(FlowEvent) {
			time.Sleep(time.Millisecond) // a consumer slower than the flood
		})
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not start")
	}
	// Thousands of new flows on loopback inside the namespace: one UDP
	// packet to each of many ports.
	sent := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the namespace
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			sent <- err
			return
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		for p := 10000; p < 14000; p++ {
			c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p)))
		}
		sent <- nil
	}()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the worker fill the channel
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not return after its context ended, under a flood of events")
	}
}

// eventLog collects conntrack events: "new tcp", "destroy udp", ...
type eventLog struct {
	mu     sync.Mutex
	counts map[string]int
	seen   chan struct{} // signalled after each event
}

func newEventLog() *eventLog {
	return &eventLog{counts: map[string]int{}, seen: make(chan struct{}, 1)}
}

func (l *eventLog) add(destroy bool, proto uint8) {
	name := map[uint8]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_ICMPV6: "icmpv6", unix.IPPROTO_ICMP: "icmp"}[proto]
	if name == "" {
		name = "other"
	}
	kind := "new "
	if destroy {
		kind = "destroy "
	}
	l.mu.Lock()
	l.counts[kind+name]++
	l.mu.Unlock()
	select {
	case l.seen <- struct{}{}:
	default:
	}
}

func (l *eventLog) count(what string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[what]
}

func (l *eventLog) snapshot() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.counts {
		out[k] = v
	}
	return out
}

// waitFor waits up to 5s for at least one event what.
func (l *eventLog) waitFor(t *testing.T, what string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for l.count(what) == 0 {
		select {
		case <-l.seen:
		case <-deadline:
			t.Fatalf("no %q event within 5s; saw %v", what, l.snapshot())
		}
	}
}

// rawEvents listens to every new and destroy event in ns, without a
// filter, as any other listener (conntrack -E) would.
func rawEvents(t *testing.T, ns *testNS) *eventLog {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: ns.fd})
	if err != nil {
		t.Fatal(err)
	}
	evs := make(chan conntrack.Event, 1024)
	errs, err := c.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTDestroy})
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	log := newEventLog()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev := <-evs:
				if ev.Flow != nil {
					log.add(ev.Type == conntrack.EventDestroy, ev.Flow.TupleOrig.Proto.Protocol)
				}
			case <-errs:
				return
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		for {
			select {
			case <-closed:
				return
			case <-evs:
			case <-errs:
			}
		}
	})
	return log
}

// ourEvents runs KernelConntrack.Listen in ns until the test ends.
func ourEvents(t *testing.T, ns *testNS) *eventLog {
	t.Helper()
	log := newEventLog()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- NewKernelConntrack(ns.fd).Listen(ctx, func([]FlowEvent) { close(started) }, func(e FlowEvent) {
			log.add(e.Destroy, uint8(e.Proto))
		})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Listen: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	return log
}

// flows makes one TCP connection and one UDP flow from the LAN host
// through the router to the outside host, then flushes the router's
// conntrack table, which destroys them.
func flows(t *testing.T, lab *trafficLab, port uint16) {
	t.Helper()
	if !dialTCP(t, lab.lan, netip.Addr{}, netip.AddrPortFrom(labOut6, 81)) {
		t.Fatal("TCP over IPv6 did not get through")
	}
	if !dialTCP(t, lab.lan, netip.Addr{}, netip.AddrPortFrom(labRouterWAN4, 7)) {
		t.Fatal("TCP to the router did not get through")
	}
	inNS(t, lab.lan, func() {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: labOut4.AsSlice(), Port: int(port)})
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		c.Write([]byte("x"))
	})
}

func flushConntrack(t *testing.T, ns *testNS) {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: ns.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestConntrackEventsOnlyUDP: in the filtering modes that read conntrack
// events, the kernel makes events for UDP flows and none for TCP (the
// event mask that the ctevents chains set); and whatever the kernel
// makes, Listen hands on only the UDP ones (its socket filter). The plain
// mode, which reads no events, is the control: there TCP events exist.
func TestConntrackEventsOnlyUDP(t *testing.T) {
	requireRoot(t)
	lab := newTrafficLab(t)
	serveTCP(t, lab.out, netip.AddrPortFrom(labOut6, 81))
	d := newTestNFTables(t, lab.router)
	for i, tt := range []struct {
		mode      Filtering
		tcpEvents bool
	}{
		{AddressAndPortDependent, true},
		{EndpointIndependent, false},
		{AddressDependent, false},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			if err := d.Apply(labState(tt.mode)); err != nil {
				t.Fatal(err)
			}
			flushConntrack(t, lab.router)
			raw, ours := rawEvents(t, lab.router), ourEvents(t, lab.router)
			flows(t, lab, uint16(9000+i))
			raw.waitFor(t, "new udp")
			ours.waitFor(t, "new udp")
			flushConntrack(t, lab.router)
			raw.waitFor(t, "destroy udp")
			ours.waitFor(t, "destroy udp")
			time.Sleep(100 * time.Millisecond) // events queued after the UDP ones
			rawTCP := raw.count("new tcp") + raw.count("destroy tcp")
			if got := rawTCP > 0; got != tt.tcpEvents {
				t.Errorf("the kernel made TCP events = %v, want %v (events: %v)", got, tt.tcpEvents, raw.snapshot())
			}
			for what, n := range ours.snapshot() {
				if what != "new udp" && what != "destroy udp" {
					t.Errorf("Listen handed on %d %q events: the socket filter let them through", n, what)
				}
			}
		})
	}
}
