//go:build linux

package tundev

import (
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// inFreshNetns runs fn on a thread that has a network namespace of its
// own, which vanishes with the thread: the test adds no interface to the
// machine.
func inFreshNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and /dev/net/tun")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// TestOpen runs on every architecture, under qemu-user for mips, mipsle and
// arm in `make test-arch`: it proves that creating a TUN device gets past
// the point where wireguard-go's CreateTUN dies with SIGBUS on MIPS.
func TestOpen(t *testing.T) {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no /dev/net/tun: %v", err)
	}
	inFreshNetns(t, func() {
		dev, err := Open("gwtest0", 1280)
		if err != nil {
			t.Errorf("Open: %v", err)
			return
		}
		defer dev.Close()
		name, err := dev.Name()
		if err != nil || name != "gwtest0" {
			t.Errorf("Name() = %q, %v; want gwtest0", name, err)
		}
		idx, err := Index("gwtest0")
		if err != nil || idx <= 0 {
			t.Errorf("Index = %d, %v", idx, err)
		}
		ifi, err := net.InterfaceByName("gwtest0")
		if err != nil {
			t.Errorf("the device is not there: %v", err)
			return
		}
		if ifi.MTU != 1280 || ifi.Flags&net.FlagUp == 0 || ifi.Index != idx {
			t.Errorf("device %+v: want MTU 1280, up, index %d", ifi, idx)
		}
	})
}

func TestOpenRefusesLongName(t *testing.T) {
	if _, err := Open("a-name-far-too-long-for-linux", 1280); err == nil {
		t.Fatal("accepted a 29-byte interface name")
	}
}
