package nat44

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"testing"
	"time"

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
