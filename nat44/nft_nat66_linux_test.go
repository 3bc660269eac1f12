package nat44

import (
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// The NAT66 lab: the trafficLab's LAN numbered from a ULA as well, and its
// tunnel interface (tun6) standing in for the Teredo device, whose one
// global address (the router's 2001:db8:fe::1) the LAN shares.
var (
	labRouterULA = netip.MustParseAddr("fd77:1::1")
	labLANULA    = netip.MustParseAddr("fd77:1::2")
	labNAT66     = netip.MustParseAddr("2001:db8:fe::1")
	labTun6b     = netip.MustParseAddr("2001:db8:fe::3") // another host beyond the tunnel
)

func newNAT66Lab(t *testing.T) *trafficLab {
	t.Helper()
	lab := newTrafficLab(t)
	for _, c := range [][]string{
		{"-n", lab.router.name, "addr", "add", "fd77:1::1/64", "dev", "lan0", "nodad"},
		{"-n", lab.lan.name, "addr", "add", "fd77:1::2/64", "dev", "eth0", "nodad"},
		{"-n", lab.tun.name, "addr", "add", "2001:db8:fe::3/64", "dev", "eth0", "nodad"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", c, err, out)
		}
	}
	// Neighbour discovery for the new addresses, before any table.
	serveTCP(t, lab.router, netip.AddrPortFrom(labRouterULA, 7))
	serveTCP(t, lab.router, netip.AddrPortFrom(labNAT66, 7))
	for _, p := range []struct {
		from     *testNS
		src, dst netip.Addr
	}{{lab.lan, labLANULA, labRouterULA}, {lab.tun, labTun6b, labNAT66}, {lab.tun, labTun6, labNAT66}} {
		deadline := time.Now().Add(10 * time.Second)
		for !dialTCP(t, p.from, p.src, netip.AddrPortFrom(p.dst, 7)) {
			if time.Now().After(deadline) {
				t.Fatalf("the NAT66 lab is not ready: no TCP from %v to %v after 10s", p.src, p.dst)
			}
		}
	}
	return lab
}

// TestNAT66Traffic: with NAT66 on the tunnel, a ULA host's outbound IPv6
// leaves from the tunnel's address; inbound to that address reaches the
// ULA host's listener only through a pinhole of that host on the port
// (for its remote host only, when it names one), and no longer once the
// pinhole goes.
func TestNAT66Traffic(t *testing.T) {
	requireRoot(t)
	lab := newNAT66Lab(t)
	d := newTestNFTables(t, lab.router)
	s := labState(AddressAndPortDependent)
	s.NAT66 = []string{"tun6"}
	s.NAT66Addr = labNAT66
	s.LAN6 = []netip.Prefix{netip.MustParsePrefix("fd77:1::/64"), netip.MustParsePrefix("2001:db8:1::/64")}
	s.Pinholes = NewPinholeTable()
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}

	// Outbound: the peer beyond the tunnel sees the NAT66 address (it has
	// no route to the ULA, so without NAT66 there would be no answer).
	peer := netip.AddrPortFrom(labTun6, 81)
	seen := acceptFrom(t, lab.tun, peer)
	if !dialTCP(t, lab.lan, labLANULA, peer) {
		t.Fatal("outbound TCP from the ULA host did not get through")
	}
	select {
	case from := <-seen:
		if from != labNAT66 {
			t.Errorf("the peer saw the ULA host as %v, want the NAT66 address %v", from, labNAT66)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the peer saw no connection")
	}

	web := netip.AddrPortFrom(labLANULA, 8080)
	serveTCP(t, lab.lan, web)
	public := netip.AddrPortFrom(labNAT66, 8080)
	reach := func(what string, src netip.Addr, want bool) {
		t.Helper()
		if got := dialTCP(t, lab.tun, src, public); got != want {
			t.Errorf("%s: TCP from %v to %v reached the ULA host = %v, want %v", what, src, public, got, want)
		}
	}
	reach("no pinhole", labTun6, false)

	apply := func(edit func(), changed ...PinholeKey) {
		t.Helper()
		edit()
		s.ChangedPinholes = map[PinholeKey]bool{}
		for _, k := range changed {
			s.ChangedPinholes[k] = true
		}
		if err := d.Apply(s); err != nil {
			t.Fatal(err)
		}
	}
	open := PinholeKey{Proto: TCP, Internal: web}
	apply(func() { s.Pinholes.Put(Pinhole{PinholeKey: open, Owner: OwnerUPnP}, now0) }, open)
	reach("pinhole", labTun6, true)
	reach("pinhole, another remote", labTun6b, true)
	// NAT66 loopback: the LAN reaches the pinhole on the public address.
	if !dialTCP(t, lab.lan, labLANULA, public) {
		t.Error("a LAN host did not reach the pinhole on the NAT66 address (loopback)")
	}
	if counts, err := d.PinholePackets(); err != nil || counts[open] < 2 {
		t.Errorf("PinholePackets = %v, %v; want at least 2 for %v", counts, err, open)
	}
	// The other protocol on the same port is not open.
	if got := dialUDPEcho(t, lab, public); got {
		t.Error("UDP to a TCP pinhole's port got through")
	}

	apply(func() { s.Pinholes.Delete(open) }, open)
	reach("pinhole closed", labTun6, false)

	// A pinhole for one remote host: the DNAT happens for anyone, the
	// forward filter lets only that host through.
	from := PinholeKey{Proto: TCP, Internal: web, Remote: labTun6}
	apply(func() { s.Pinholes.Put(Pinhole{PinholeKey: from, Owner: OwnerPCP}, now0) }, from)
	reach("pinhole for its remote host", labTun6, true)
	reach("pinhole for another remote host", labTun6b, false)

	// Without a NAT66 address (Teredo lost it) nothing is DNATed.
	s.NAT66Addr = netip.Addr{}
	apply(func() {})
	reach("no NAT66 address", labTun6, false)
}

// acceptFrom listens on addr in ns and sends the source address of each
// connection it accepts.
func acceptFrom(t *testing.T, ns *testNS, addr netip.AddrPort) <-chan netip.Addr {
	t.Helper()
	var ln net.Listener
	inNS(t, ns, func() {
		var err error
		if ln, err = net.Listen("tcp", addr.String()); err != nil {
			t.Errorf("listen %v: %v", addr, err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	out := make(chan netip.Addr, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			c.Write([]byte("hi"))
			c.Close()
			select {
			case out <- ap.Addr().Unmap():
			default:
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return out
}

// dialUDPEcho reports whether a UDP datagram from the tunnel's peer to dst
// reaches a UDP echo on the ULA host's same port and comes back.
func dialUDPEcho(t *testing.T, lab *trafficLab, dst netip.AddrPort) bool {
	t.Helper()
	var srv net.PacketConn
	inNS(t, lab.lan, func() {
		var err error
		if srv, err = net.ListenPacket("udp", netip.AddrPortFrom(labLANULA, dst.Port()).String()); err != nil {
			t.Errorf("listen udp: %v", err)
		}
	})
	if srv == nil {
		t.FailNow()
	}
	defer srv.Close()
	go func() {
		b := make([]byte, 64)
		for {
			n, a, err := srv.ReadFrom(b)
			if err != nil {
				return
			}
			srv.WriteTo(b[:n], a)
		}
	}()
	ok := false
	inNS(t, lab.tun, func() {
		c, err := net.Dial("udp", dst.String())
		if err != nil {
			t.Errorf("dial udp: %v", err)
			return
		}
		defer c.Close()
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		b := make([]byte, 4)
		n, err := c.Read(b)
		ok = err == nil && string(b[:n]) == "ping"
	})
	return ok
}
