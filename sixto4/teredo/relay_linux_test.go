package teredo

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
)

// TestRelayWithMiredo: Miredo's clients behind masquerade (home behind
// nat, home2 behind nat2 in the world), our Relay in a namespace on the
// internet with a native IPv6 host behind it:
//
//	inet (miredo-server) ─ relay (203.0.113.66, 2001:db8:1::2) ─ native (2001:db8:2::2)
//
// The native host routes 2001::/32 to the relay; miredo-server reaches
// the native network through the relay too (it sends the client's echo
// tests there). The native host pings and opens TCP to the client in
// home2, and the client in home pings the native host (finding our
// relay by its echo test through the server).
func TestRelayWithMiredo(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	leakcheck.Check(t)
	w := newWorld(t)
	testenv.Tool(t, "miredo", "miredo")
	testenv.Tool(t, "busybox", "busybox")
	testenv.Device(t, "/dev/net/tun")
	relayNs, native := w.nativeBehindRelay(t)

	qualifyFrom(t, w.open, "192.0.2.2:0", false) // the server is up
	for _, n := range []netns{w.home, w.home2} {
		w.startDaemon(t, n, "miredo", "RelayType client\nServerAddress "+miredoServer.String()+"\nInterfaceName teredo\n")
	}

	r := startRelay(t, relayNs, RelayConfig{Name: "teredo0", Logger: testLogger(t)})
	if out := relayNs.exec(t, "ip", "-6", "route", "show", "dev", "teredo0"); !strings.Contains(out, "2001::/32") {
		t.Errorf("no 2001::/32 route into teredo0:\n%s", out)
	}
	peer := miredoAddr(t, w.home2)
	t.Logf("Miredo's clients: %v, %v", peer, miredoAddr(t, w.home))

	t.Run("native pings Miredo", func(t *testing.T) {
		out, err := exec.Command("ip", "netns", "exec", string(native), "busybox", "ping", "-6", "-c", "5", "-i", "0.2", "-W", "5", peer.String()).CombinedOutput()
		t.Logf("%s", out)
		if err != nil || !strings.Contains(string(out), " 0% packet loss") {
			t.Fatalf("ping %v: %v; relay stats %+v", peer, err, r.Stats())
		}
		var trusted bool
		for _, p := range r.Peers() {
			trusted = trusted || p.Addr == peer && p.Trusted
		}
		if !trusted {
			t.Errorf("peer %v not trusted after the pings: %+v", peer, r.Peers())
		}
	})

	t.Run("native TCP to Miredo", func(t *testing.T) {
		tcpEcho(t, w.home2, netip.AddrPortFrom(peer, 8080), native, nil)
	})

	t.Run("Miredo pings native", func(t *testing.T) {
		// Miredo's client in home has not talked to the relay yet: it
		// finds it by its echo test through the server, whose reply
		// the relay queues for the bubbles.
		out, err := exec.Command("ip", "netns", "exec", string(w.home), "busybox", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "5", "2001:db8:2::2").CombinedOutput()
		t.Logf("%s", out)
		if err != nil || !strings.Contains(string(out), " 0% packet loss") {
			t.Fatalf("ping the native host from Miredo's side: %v; relay stats %+v", err, r.Stats())
		}
		if n := len(r.Peers()); n != 2 {
			t.Errorf("relay knows %d peers, want both Miredo clients: %+v", n, r.Peers())
		}
	})
	t.Run("spoofed source dropped", func(t *testing.T) {
		// From the open host, a packet whose Teredo source names
		// Miredo's client's mapped address (RFC 4380 section 5.4.2).
		var conn *net.UDPConn
		if err := w.open.do(func() (err error) {
			conn, err = net.ListenUDP("udp4", nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		before := r.Stats().Drops[SrcMismatch.String()]
		if _, err := conn.WriteToUDPAddrPort(packet(t, peer, netip.MustParseAddr("2001:db8:2::2"), 58, 8), netip.MustParseAddrPort("203.0.113.66:3544")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "src-mismatch drop", func() bool { return r.Stats().Drops[SrcMismatch.String()] == before+1 })
	})
	s := r.Stats()
	t.Logf("stats: %+v", s)
	if s.InPackets == 0 || s.OutPackets == 0 || s.Bubbles == 0 {
		t.Errorf("stats %+v: want packets both ways and bubbles", s)
	}
}
