package netconf

import (
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"gateway/internal/testenv"
)

// inNewNetns moves the calling goroutine's thread, locked for good, into a
// fresh network namespace with an interface "d0" (one end of a veth pair).
// It runs off the test goroutine: errors are reported with t.Error.
func inNewNetns(t *testing.T) bool {
	t.Helper()
	runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Error(err)
		return false
	}
	for _, args := range [][]string{{"link", "add", "d0", "type", "veth", "peer", "name", "d1"}, {"link", "set", "d0", "up"}, {"link", "set", "d1", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Errorf("ip %v: %v: %s", args, err, out)
			return false
		}
	}
	return true
}

func TestAddDelAddr(t *testing.T) {
	testenv.Root(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !inNewNetns(t) {
			return
		}
		p6 := netip.MustParsePrefix("2001:db8:1:1::1/64")
		p4 := netip.MustParsePrefix("192.168.7.1/24")
		for _, p := range []netip.Prefix{p6, p4, p6} { // a second add is success
			if err := AddAddr("d0", p); err != nil {
				t.Error(err)
				return
			}
		}
		got, err := Addrs("d0")
		if err != nil || !slices.Contains(got, p6) || !slices.Contains(got, p4) {
			t.Errorf("Addrs = %v, %v; want %v and %v", got, err, p6, p4)
		}
		// Usable at once: not tentative.
		out, _ := exec.Command("ip", "-6", "addr", "show", "dev", "d0", "scope", "global", "tentative").CombinedOutput()
		if len(out) != 0 {
			t.Errorf("tentative addresses: %s", out)
		}
		for _, p := range []netip.Prefix{p6, p6} { // removing one not there is success
			if err := DelAddr("d0", p); err != nil {
				t.Error(err)
			}
		}
		if got, _ := Addrs("d0"); slices.Contains(got, p6) {
			t.Errorf("after DelAddr: %v", got)
		}
		if err := AddAddr("nonexistent0", p6); err == nil {
			t.Error("AddAddr on a missing interface: no error")
		}
	}()
	<-done
}

func TestSourceSpecificRoute(t *testing.T) {
	testenv.Root(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !inNewNetns(t) {
			return
		}
		src := netip.MustParsePrefix("fd00:1:2:3::/64")
		def := netip.MustParsePrefix("::/0")
		show := func() string {
			out, _ := exec.Command("ip", "-6", "route", "show", "from", "fd00:1:2:3::/64").CombinedOutput()
			return string(out)
		}
		for range 2 { // a second add replaces
			if err := AddRoute("d0", def, src); err != nil {
				t.Error(err)
				return
			}
		}
		if got := show(); got != "default from fd00:1:2:3::/64 dev d0 proto static metric 1024 pref medium\n" {
			t.Errorf("route after add: %q", got)
		}
		for range 2 { // removing one not there is success
			if err := DelRoute("d0", def, src); err != nil {
				t.Error(err)
			}
		}
		if got := show(); got != "" {
			t.Errorf("route after delete: %q", got)
		}
		if err := AddRoute("d0", netip.MustParsePrefix("10.0.0.0/8"), netip.Prefix{}); err == nil {
			t.Error("an IPv4 route was taken")
		}
	}()
	<-done
}
