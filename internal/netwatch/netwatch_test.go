//go:build linux

package netwatch

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHubLatestValue(t *testing.T) {
	var f Fake
	early := f.Subscribe()
	f.Set(Snapshot{"wan": {Name: "wan"}})
	f.Set(Snapshot{"wan": {Name: "wan", Up: true}})
	if got := <-early; !got["wan"].Up {
		t.Fatalf("a slow subscriber got %+v; want only the newest state", got)
	}
	late := f.Subscribe()
	if got := <-late; !got["wan"].Up {
		t.Fatalf("a new subscriber got %+v; want the current state at once", got)
	}
	f.Set(Snapshot{"wan": {Name: "wan", Up: true}}) // no change: nothing sent
	select {
	case s := <-late:
		t.Fatalf("an unchanged state was sent again: %+v", s)
	default:
	}
}

// TestWatcherFollowsAddresses runs the real watcher in a network namespace
// of its own, as the daemon runs: the test re-runs itself there, and
// changes a veth's addresses under the watcher.
func TestWatcherFollowsAddresses(t *testing.T) {
	if os.Getenv("NETWATCH_IN_NETNS") == "1" {
		watchInNetns(t)
		return
	}
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root for a network namespace (and not -short)")
	}
	ns := fmt.Sprintf("nwt-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^TestWatcherFollowsAddresses$", "-test.v")
	cmd.Env = append(os.Environ(), "NETWATCH_IN_NETNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in the namespace: %v\n%s", err, out)
	}
}

func watchInNetns(t *testing.T) {
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	ip("link", "add", "wan", "type", "veth", "peer", "name", "wan-peer")
	ip("link", "set", "wan", "up")
	w := New("wan")
	sub := w.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	want := func(what string, ok func(Snapshot) bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case s := <-sub:
				if ok(s) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: not seen within 5s (last %+v)", what, w.Current())
			}
		}
	}
	has := func(p string) func(Snapshot) bool {
		return func(s Snapshot) bool { return slices.Contains(s["wan"].Addrs, netip.MustParsePrefix(p)) }
	}
	want("the interface, up", func(s Snapshot) bool { return s["wan"].Up && s["wan"].Index > 0 })
	ip("addr", "add", "203.0.113.2/24", "dev", "wan")
	want("the address added", has("203.0.113.2/24"))
	// Deleting a primary address deletes its secondaries too, so the
	// change goes as a DHCP client on the WAN makes it: old out, new in.
	ip("addr", "del", "203.0.113.2/24", "dev", "wan")
	ip("addr", "add", "203.0.113.3/24", "dev", "wan")
	want("the address changed", func(s Snapshot) bool { return has("203.0.113.3/24")(s) && !has("203.0.113.2/24")(s) })
	if p, ok := w.Current()["wan"].IPv4(); !ok || p.Addr() != netip.MustParseAddr("203.0.113.3") {
		t.Errorf("IPv4() = %v, %v", p, ok)
	}
	ip("link", "del", "wan")
	want("the interface gone", func(s Snapshot) bool { _, ok := s["wan"]; return !ok })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
