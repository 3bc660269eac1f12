package nat44

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// trafficLab is four network namespaces: a router, whose table the test
// programs, between a LAN host and two outside hosts, one behind the WAN
// and one behind a second outside interface (a tunnel, as 6to4 or Teredo
// would be). Addresses are from the documentation ranges.
//
//	lan (eth0) ── (lan0) router (wan0) ── (eth0) out
//	                            (tun6) ── (eth0) tun
type trafficLab struct {
	router, lan, out, tun *testNS
}

var (
	labRouterWAN4 = netip.MustParseAddr("203.0.113.1")
	labOut4       = netip.MustParseAddr("203.0.113.2")
	labOut4b      = netip.MustParseAddr("203.0.113.3") // another remote host
	labLAN4       = netip.MustParseAddr("192.168.77.2")
	labLAN6       = netip.MustParseAddr("2001:db8:1::2")
	labOut6       = netip.MustParseAddr("2001:db8:ff::2")
	labOut6b      = netip.MustParseAddr("2001:db8:ff::3")
	labTun6       = netip.MustParseAddr("2001:db8:fe::2")
)

func newTrafficLab(t *testing.T) *trafficLab {
	t.Helper()
	l := &trafficLab{router: newTestNS(t), lan: newTestNS(t), out: newTestNS(t), tun: newTestNS(t)}
	ip := func(ns *testNS, args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %s: %v\n%s", ns.name, strings.Join(args, " "), err, out)
		}
	}
	ip(l.router, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", l.lan.name)
	ip(l.router, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", l.out.name)
	ip(l.router, "link", "add", "tun6", "type", "veth", "peer", "name", "eth0", "netns", l.tun.name)
	for _, a := range [][]string{
		{"lan0", "192.168.77.1/24"}, {"lan0", "2001:db8:1::1/64"},
		{"wan0", "203.0.113.1/24"}, {"wan0", "2001:db8:ff::1/64"},
		{"tun6", "2001:db8:fe::1/64"},
	} {
		ip(l.router, "addr", "add", a[1], "dev", a[0], "nodad")
	}
	for _, a := range []string{"192.168.77.2/24", "2001:db8:1::2/64"} {
		ip(l.lan, "addr", "add", a, "dev", "eth0", "nodad")
	}
	for _, a := range []string{"203.0.113.2/24", "203.0.113.3/24", "2001:db8:ff::2/64", "2001:db8:ff::3/64"} {
		ip(l.out, "addr", "add", a, "dev", "eth0", "nodad")
	}
	ip(l.tun, "addr", "add", "2001:db8:fe::2/64", "dev", "eth0", "nodad")
	for _, ns := range []*testNS{l.router, l.lan, l.out, l.tun} {
		ip(ns, "link", "set", "lo", "up")
	}
	for _, n := range []string{"lan0", "wan0", "tun6"} {
		ip(l.router, "link", "set", n, "up")
	}
	for _, ns := range []*testNS{l.lan, l.out, l.tun} {
		ip(ns, "link", "set", "eth0", "up")
	}
	ip(l.lan, "route", "add", "default", "via", "192.168.77.1")
	ip(l.lan, "-6", "route", "add", "default", "via", "2001:db8:1::1")
	ip(l.out, "-6", "route", "add", "2001:db8:1::/64", "via", "2001:db8:ff::1")
	ip(l.tun, "-6", "route", "add", "2001:db8:1::/64", "via", "2001:db8:fe::1")
	if out, err := exec.Command("ip", "netns", "exec", l.router.name, "sh", "-c",
		"echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding").CombinedOutput(); err != nil {
		t.Fatalf("router forwarding: %v\n%s", err, out)
	}
	l.waitReady(t)
	return l
}

// waitReady waits until TCP gets through each way that the tests use,
// before any table is installed: the first packets over new veths wait for
// neighbour discovery, longer than a test's dial.
func (l *trafficLab) waitReady(t *testing.T) {
	t.Helper()
	probes := []struct {
		from, to *testNS
		src, dst netip.Addr
	}{
		{l.lan, l.out, netip.Addr{}, labOut6},
		{l.out, l.lan, labOut6, labLAN6},
		{l.out, l.lan, labOut6b, labLAN6},
		{l.tun, l.lan, labTun6, labLAN6},
		{l.out, l.router, labOut4, labRouterWAN4},
		{l.out, l.router, labOut4b, labRouterWAN4},
		{l.lan, l.router, netip.Addr{}, labRouterWAN4},
	}
	serveTCP(t, l.lan, netip.AddrPortFrom(labLAN6, 7))
	serveTCP(t, l.out, netip.AddrPortFrom(labOut6, 7))
	serveTCP(t, l.router, netip.AddrPortFrom(labRouterWAN4, 7))
	for _, p := range probes {
		dst := netip.AddrPortFrom(p.dst, 7)
		deadline := time.Now().Add(10 * time.Second)
		for !dialTCP(t, p.from, p.src, dst) {
			if time.Now().After(deadline) {
				t.Fatalf("the lab is not ready: no TCP from %v in %s to %v after 10s", p.src, p.from.name, dst)
			}
		}
	}
}

// labState is the router's State in the lab.
func labState(f Filtering) *State {
	return &State{WAN: "wan0", LANs: []string{"lan0"}, WANAddr: labRouterWAN4, Filtering: f, Outside: []string{"tun6"}}
}

// inNS runs fn on a thread in ns and waits for it. Sockets that fn opens
// stay in ns whichever goroutine uses them afterwards.
func inNS(t *testing.T, ns *testNS, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns %s: %v", ns.name, err)
			return
		}
		fn()
	}()
	<-done
}

// serveTCP accepts connections on addr in ns until the test ends.
func serveTCP(t *testing.T, ns *testNS, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	inNS(t, ns, func() {
		var err error
		if ln, err = net.Listen("tcp", addr.String()); err != nil {
			t.Errorf("listen %v in %s: %v", addr, ns.name, err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// dialTCP reports whether a TCP connection from src in ns to dst gets
// through, waiting at most 700ms for the handshake.
func dialTCP(t *testing.T, ns *testNS, src netip.Addr, dst netip.AddrPort) bool {
	t.Helper()
	ok := false
	inNS(t, ns, func() {
		d := net.Dialer{Timeout: 700 * time.Millisecond}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err := d.DialContext(context.Background(), "tcp", dst.String())
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Logf("dial %v from %v in %s: %v", dst, src, ns.name, err)
			}
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 2)
		_, err = c.Read(b)
		ok = err == nil && string(b) == "hi"
	})
	return ok
}

// TestIPv6FilterTraffic sends real packets through the RFC 6092 filter:
// inbound TCP to a LAN host is dropped from every outside interface until
// a pinhole lets it in, and dropped again once the pinhole goes; outbound
// TCP and its replies pass.
func TestIPv6FilterTraffic(t *testing.T) {
	requireRoot(t)
	lab := newTrafficLab(t)
	d := newTestNFTables(t, lab.router)
	s := labState(AddressAndPortDependent)
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	web := netip.AddrPortFrom(labLAN6, 80)
	serveTCP(t, lab.lan, web)
	serveTCP(t, lab.out, netip.AddrPortFrom(labOut6, 81))
	handles := readTable(t, lab.router).Handles

	if !dialTCP(t, lab.lan, netip.Addr{}, netip.AddrPortFrom(labOut6, 81)) {
		t.Error("outbound TCP from the LAN did not get through")
	}
	reach := func(what string, ns *testNS, src netip.Addr, want bool) {
		t.Helper()
		if got := dialTCP(t, ns, src, web); got != want {
			t.Errorf("%s: inbound TCP from %v reached the LAN host = %v, want %v", what, src, got, want)
		}
	}
	reach("no pinhole", lab.out, labOut6, false)
	reach("no pinhole, from the tunnel", lab.tun, labTun6, false)

	open := PinholeKey{Proto: TCP, Internal: web}
	s.Pinholes = pinholeTable(t, Pinhole{PinholeKey: open, Owner: OwnerUPnP})
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	reach("pinhole", lab.out, labOut6, true)
	reach("pinhole, from the tunnel", lab.tun, labTun6, true)
	// The pinhole counted what it let in: the SYN of each connection (the
	// rest of a connection is established traffic, accepted before).
	if counts, err := d.PinholePackets(); err != nil || counts[open] < 2 {
		t.Errorf("PinholePackets = %v, %v; want at least 2 for %v", counts, err, open)
	}

	s.Pinholes.Delete(open)
	s.ChangedPinholes = map[PinholeKey]bool{open: true}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	reach("pinhole removed", lab.out, labOut6, false)

	from := PinholeKey{Proto: TCP, Internal: web, Remote: labOut6}
	s.Pinholes = pinholeTable(t, Pinhole{PinholeKey: from, Owner: OwnerPCP})
	s.ChangedPinholes = map[PinholeKey]bool{from: true}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	reach("pinhole for its remote host", lab.out, labOut6, true)
	reach("pinhole for another remote host", lab.out, labOut6b, false)
	if counts, err := d.PinholePackets(); err != nil || counts[from] == 0 || len(counts) != 1 {
		t.Errorf("PinholePackets = %v, %v; want a count for %v only", counts, err, from)
	}
	reach("pinhole for another remote host, from the tunnel", lab.tun, labTun6, false)

	// Without the tunnel in @outside, it would be the LAN's back door:
	// the set is what closes it, and it changes without a rebuild.
	s.Outside = nil
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	reach("the tunnel left out of @outside", lab.tun, labTun6, true)
	s.Outside = []string{"tun6"}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	reach("the tunnel back in @outside", lab.tun, labTun6, false)
	if got := readTable(t, lab.router).Handles; got.Table != handles.Table {
		t.Errorf("pinholes or @outside rebuilt the table (handle %d, was %d)", got.Table, handles.Table)
	}
}

// TestIPv6PacketTooBig: an ICMPv6 packet-too-big about a LAN host's flow
// reaches it (RFC 4890 section 4.3.1); one about no flow does not (RFC
// 6092 REC-5).
func TestIPv6PacketTooBig(t *testing.T) {
	requireRoot(t)
	lab := newTrafficLab(t)
	d := newTestNFTables(t, lab.router)
	if err := d.Apply(labState(AddressAndPortDependent)); err != nil {
		t.Fatal(err)
	}
	var lanICMP, outICMP net.PacketConn
	var udp *net.UDPConn
	inNS(t, lab.lan, func() {
		var err error
		if lanICMP, err = net.ListenPacket("ip6:ipv6-icmp", labLAN6.String()); err != nil {
			t.Error(err)
			return
		}
		udp, err = net.DialUDP("udp6", &net.UDPAddr{IP: labLAN6.AsSlice(), Port: 5000}, &net.UDPAddr{IP: labOut6.AsSlice(), Port: 5001})
		if err != nil {
			t.Error(err)
		}
	})
	inNS(t, lab.out, func() {
		var err error
		if outICMP, err = net.ListenPacket("ip6:ipv6-icmp", labOut6.String()); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	defer lanICMP.Close()
	defer outICMP.Close()
	defer udp.Close()
	// The LAN host's flow: one datagram out.
	if _, err := udp.Write(make([]byte, 1400)); err != nil {
		t.Fatal(err)
	}
	tooBig := func(dport uint16) []byte {
		// ICMPv6 type 2, code 0, checksum (the kernel fills it), MTU 1280,
		// then the start of the packet that was too big: an IPv6 header
		// from the LAN host to the outside host and a UDP header.
		b := []byte{2, 0, 0, 0, 0, 0, 5, 0}
		ip6 := make([]byte, 40)
		ip6[0] = 0x60
		ip6[4], ip6[5] = 0x05, 0x80 // payload length 1408
		ip6[6], ip6[7] = unix.IPPROTO_UDP, 64
		copy(ip6[8:24], labLAN6.AsSlice())
		copy(ip6[24:40], labOut6.AsSlice())
		b = append(b, ip6...)
		return append(b, 0x13, 0x88, byte(dport>>8), byte(dport), 0x05, 0x80, 0, 0)
	}
	got := func() bool {
		t.Helper()
		buf := make([]byte, 2000)
		deadline := time.Now().Add(700 * time.Millisecond)
		for {
			lanICMP.SetReadDeadline(deadline)
			n, _, err := lanICMP.ReadFrom(buf)
			if err != nil {
				return false
			}
			if n >= 8 && buf[0] == 2 {
				return true
			}
		}
	}
	dst := &net.IPAddr{IP: labLAN6.AsSlice()}
	if _, err := outICMP.WriteTo(tooBig(5001), dst); err != nil {
		t.Fatal(err)
	}
	if !got() {
		t.Error("a packet-too-big about the LAN host's flow did not reach it")
	}
	if _, err := outICMP.WriteTo(tooBig(5999), dst); err != nil {
		t.Fatal(err)
	}
	if got() {
		t.Error("a packet-too-big about no flow reached the LAN host")
	}
}

// TestRemoteFilteredMappingTraffic: a mapping for one remote host is
// reachable from that host and not from another.
func TestRemoteFilteredMappingTraffic(t *testing.T) {
	requireRoot(t)
	lab := newTrafficLab(t)
	d := newTestNFTables(t, lab.router)
	s := labState(AddressAndPortDependent)
	s.Mappings = mappingTable(t,
		Mapping{Proto: TCP, ExternalPort: 8080, Internal: netip.AddrPortFrom(labLAN4, 80), Remote: labOut4, Owner: OwnerPCP},
		Mapping{Proto: TCP, ExternalPort: 8081, Internal: netip.AddrPortFrom(labLAN4, 80), Owner: OwnerStatic},
	)
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	serveTCP(t, lab.lan, netip.AddrPortFrom(labLAN4, 80))
	for _, tt := range []struct {
		name string
		src  netip.Addr
		port uint16
		want bool
	}{
		{"its remote host", labOut4, 8080, true},
		{"another remote host", labOut4b, 8080, false},
		{"a mapping for anyone", labOut4b, 8081, true},
	} {
		if got := dialTCP(t, lab.out, tt.src, netip.AddrPortFrom(labRouterWAN4, tt.port)); got != tt.want {
			t.Errorf("%s: %v to port %d reached the LAN host = %v, want %v", tt.name, tt.src, tt.port, got, tt.want)
		}
	}
	// The remote host changes: the old one is out, the new one in.
	s.Mappings.Replace(Mapping{Proto: TCP, ExternalPort: 8080, Internal: netip.AddrPortFrom(labLAN4, 80), Remote: labOut4b, Owner: OwnerPCP})
	s.Changed = map[Key]bool{{TCP, 8080}: true}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if dialTCP(t, lab.out, labOut4, netip.AddrPortFrom(labRouterWAN4, 8080)) {
		t.Error("the old remote host still reaches the mapping")
	}
	if !dialTCP(t, lab.out, labOut4b, netip.AddrPortFrom(labRouterWAN4, 8080)) {
		t.Error("the new remote host does not reach the mapping")
	}
}
