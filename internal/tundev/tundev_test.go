//go:build linux

package tundev

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"gateway/internal/testenv"
)

// inFreshNetns runs fn on a thread that has a network namespace of its
// own, which vanishes with the thread: the test adds no interface to the
// machine.
func inFreshNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root for a network namespace and /dev/net/tun")
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
	testenv.Device(t, "/dev/net/tun")
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
		// Read the device back with ioctls: under qemu-user, big-endian
		// rtnetlink (what net.InterfaceByName uses) is mistranslated.
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(s)
		ifr, _ := unix.NewIfreq("gwtest0")
		if err := unix.IoctlIfreq(s, unix.SIOCGIFMTU, ifr); err != nil || ifr.Uint32() != 1280 {
			t.Errorf("MTU = %d, %v; want 1280", ifr.Uint32(), err)
		}
		ifr, _ = unix.NewIfreq("gwtest0")
		if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil || ifr.Uint16()&unix.IFF_UP == 0 {
			t.Errorf("flags = %#x, %v; want up", ifr.Uint16(), err)
		}
	})
}

func TestOpenRefusesLongName(t *testing.T) {
	if _, err := Open("a-name-far-too-long-for-linux", 1280); err == nil {
		t.Fatal("accepted a 29-byte interface name")
	}
}
