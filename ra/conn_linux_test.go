package ra

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"gateway/internal/testenv"
	"gateway/ra/ndpwire"
)

// hostSocket is a raw ICMPv6 socket in a test host's namespace: it sends
// what a host (or an off-link attacker) would and sees the RAs.
type hostSocket struct {
	pc  *ipv6.PacketConn
	ifi *net.Interface
}

func openHostSocket(t *testing.T, ns netns, iface string) hostSocket {
	t.Helper()
	type res struct {
		h   hostSocket
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open(filepath.Join("/run/netns", string(ns)))
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: err}
			return
		}
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			ch <- res{err: err}
			return
		}
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			ch <- res{err: err}
			return
		}
		pc := ipv6.NewPacketConn(c)
		var fl ipv6.ICMPFilter
		fl.SetAll(true)
		fl.Accept(ipv6.ICMPTypeRouterAdvertisement)
		if err := pc.SetICMPFilter(&fl); err != nil {
			ch <- res{err: err}
			return
		}
		if err := pc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst, true); err != nil {
			ch <- res{err: err}
			return
		}
		ch <- res{h: hostSocket{pc, ifi}}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.h.pc.Close() })
	return r.h
}

func (h hostSocket) send(t *testing.T, b []byte, dst netip.Addr, hop int) {
	t.Helper()
	cm := &ipv6.ControlMessage{HopLimit: hop, IfIndex: h.ifi.Index, Src: net.ParseIP("fe80::2")}
	if _, err := h.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: strconv.Itoa(h.ifi.Index)}); err != nil {
		t.Fatalf("send to %v: %v", dst, err)
	}
}

type readRS struct {
	b   []byte
	hop int
	src netip.Addr
	err error
}

// TestConn checks the socket against the kernel: solicitations to
// all-routers and to our link-local address come in with their hop limit
// and source, other ICMPv6 is filtered out, and RAs leave from our
// link-local address with hop limit 255 and a checksum the host's
// kernel accepts.
func TestConn(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "ip", "iproute2")

	r, h := newNetns(t, "cr"), newNetns(t, "ch")
	// The host sends no solicitations of its own: this test's are the
	// only ones.
	h.sysctl(t, "net/ipv6/conf/default/router_solicitations", "0")
	run(t, "ip", "-n", string(r), "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", string(h))
	r.exec(t, "ip", "link", "set", "lan0", "addr", "02:00:00:00:00:01")
	r.exec(t, "ip", "addr", "add", "fe80::1/64", "dev", "lan0")
	h.exec(t, "ip", "addr", "add", "fe80::2/64", "dev", "eth0")
	r.exec(t, "ip", "link", "set", "lan0", "up")
	h.exec(t, "ip", "link", "set", "eth0", "up")

	// Until linkwatch sees the carrier (up to a second), the host has
	// no multicast route.
	waitFor(t, 5*time.Second, func() string {
		if out := h.exec(t, "ip", "-6", "route", "show", "table", "local", "dev", "eth0"); !strings.Contains(out, "ff00::/8") {
			return "no multicast route on the host:\n" + out
		}
		return ""
	})
	var c conn
	waitFor(t, 5*time.Second, func() string {
		var err error
		if c, err = listenIn(r, "lan0"); err != nil {
			return err.Error()
		}
		return ""
	})
	if got := c.HardwareAddr().String(); got != "02:00:00:00:00:01" {
		t.Errorf("hardware address %s", got)
	}
	reads := make(chan readRS, 10)
	go func() {
		for {
			b := make([]byte, 1500)
			n, hop, src, err := c.ReadRS(b)
			reads <- readRS{b[:n], hop, src, err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close() })

	host := openHostSocket(t, h, "eth0")
	rs, err := ndpwire.RouterSolicitation{Options: []ndpwire.Option{
		ndpwire.SourceLinkLayerAddress{Addr: net.HardwareAddr{2, 0, 0, 0, 0, 2}}}}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The socket is bound to one of lan0's link-local addresses (the
	// kernel's own or fe80::1): unicast goes there.
	ll, allRouters := c.(*icmpConn).addr, netip.MustParseAddr("ff02::2")
	if !ll.IsLinkLocalUnicast() {
		t.Fatalf("bound to %v", ll)
	}
	host.send(t, []byte{128, 0, 0, 0, 0, 1, 0, 1}, ll, 255)         // an echo request: filtered
	host.send(t, []byte{200, 0, 0, 0, 0, 0, 0, 0}, allRouters, 255) // an unknown type: filtered
	host.send(t, rs, allRouters, 64)                                // off-link: read, hop limit 64
	host.send(t, rs, ll, 255)                                       // unicast
	host.send(t, rs, allRouters, 255)                               // multicast
	for i, want := range []int{64, 255, 255} {
		select {
		case got := <-reads:
			if got.err != nil {
				t.Fatalf("read %d: %v", i, got.err)
			}
			// The kernel filled in the checksum; the rest is the host's.
			if got.hop != want || got.src != netip.MustParseAddr("fe80::2") || len(got.b) != len(rs) ||
				string(got.b[:2]) != string(rs[:2]) || string(got.b[4:]) != string(rs[4:]) {
				t.Errorf("read %d: hop %d from %v, %x; want hop %d from fe80::2, %x", i, got.hop, got.src, got.b, want, rs)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("solicitation %d not read", i)
		}
	}
	select {
	case got := <-reads:
		t.Errorf("read more than the solicitations: %x", got.b)
	case <-time.After(200 * time.Millisecond):
	}

	ra, err := buildRA(raParams{MAC: c.HardwareAddr(), Lifetime: 1800 * time.Second},
		[]entry{{Prefix: netip.MustParsePrefix("2001:db8:1::/64")}}, true, false, time.Now()).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range []netip.Addr{netip.MustParseAddr("fe80::2"), allNodes} {
		if err := c.WriteRA(ra, dst); err != nil {
			t.Fatalf("write to %v: %v", dst, err)
		}
		host.pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1500)
		n, cm, from, err := host.pc.ReadFrom(b)
		if err != nil {
			t.Fatalf("host reads no RA sent to %v: %v", dst, err)
		}
		if cm == nil || cm.HopLimit != 255 || !cm.Dst.Equal(dst.AsSlice()) || !from.(*net.IPAddr).IP.Equal(ll.AsSlice()) {
			t.Errorf("RA to %v arrived as %+v from %v; want hop limit 255 from %v", dst, cm, from, ll)
		}
		// The kernel filled in the checksum (it checked it on
		// receipt); the rest is ours.
		if b[2] == 0 && b[3] == 0 || string(b[4:n]) != string(ra[4:]) {
			t.Errorf("RA to %v arrived as %x, sent %x", dst, b[:n], ra)
		}
		if _, err := ndp.ParseMessage(b[:n]); err != nil {
			t.Errorf("RA to %v: %v", dst, err)
		}
	}
}
