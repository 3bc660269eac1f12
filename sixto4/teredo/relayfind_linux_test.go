package teredo

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
)

// TestClientReachesNativeHost: our Client behind masquerade (home behind
// nat in the world) and two native IPv6 hosts behind a Teredo relay,
// Miredo's (RelayType cone) or ours:
//
//	inet (miredo-server) ─ relay (203.0.113.66, 2001:db8:1::2) ─ native (2001:db8:2::2, ::3)
//
// Our client pings and opens TCP to 2001:db8:2::2, finding the relay by
// the echo test through the server; 2001:db8:2::3 pings us first, its
// relay finding us through the server's indirect bubble and our client
// testing it before letting its packets in.
func TestClientReachesNativeHost(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	for _, relay := range []string{"miredo", "ours"} {
		t.Run(relay+" relay", func(t *testing.T) { testClientReachesNativeHost(t, relay) })
	}
}

func testClientReachesNativeHost(t *testing.T, relayKind string) {
	leakcheck.Check(t)
	w := newWorld(t)
	testenv.Tool(t, "busybox", "busybox")
	testenv.Device(t, "/dev/net/tun")
	relayNs, native := w.nativeBehindRelay(t)
	native.ip(t, "-6 addr add 2001:db8:2::3/64 dev lan nodad")

	switch relayKind {
	case "miredo":
		testenv.Tool(t, "miredo", "miredo")
		w.startDaemon(t, relayNs, "miredo", "RelayType cone\nInterfaceName teredo0\nBindAddress 203.0.113.66\nBindPort 3544\n")
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := exec.Command("ip", "-n", string(relayNs), "-6", "route", "show", "dev", "teredo0").CombinedOutput()
			if strings.Contains(string(out), "2001::/32") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Miredo's relay routes no 2001::/32 into teredo0 in 10 s:\n%s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	case "ours":
		startRelay(t, relayNs, RelayConfig{Name: "teredo0", Logger: testLogger(t)})
	}

	qualifyFrom(t, w.open, "192.0.2.2:0", false) // the server is up
	c := startClient(t, w.home, Config{Name: "teredo0", Servers: []netip.Addr{miredoServer}, Logger: testLogger(t),
		Qualifier: Qualifier{Timeout: 300 * time.Millisecond, Attempts: 10}})
	waitFor(t, "qualification", func() bool { return c.Addr().IsValid() })
	ours := c.Addr()
	// The client puts 2001::/32 on its device; the rest of the IPv6
	// internet is the daemon's route to give.
	w.home.ip(t, "-6 route add default dev teredo0")

	ping := func(t *testing.T, n netns, args ...string) {
		t.Helper()
		cmd := append([]string{"ip", "netns", "exec", string(n), "busybox", "ping", "-6", "-c", "4", "-i", "0.2", "-W", "5"}, args...)
		out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
		t.Logf("%s", out)
		if err != nil || !strings.Contains(string(out), " 0% packet loss") {
			t.Fatalf("%s: %v; client state %+v, stats %+v", strings.Join(cmd[4:], " "), err, c.State(), c.Stats())
		}
	}
	relayOf := func(host netip.Addr) netip.AddrPort {
		for _, p := range c.State().Peers {
			if p.Addr == host && p.Native && p.Trusted {
				return p.Mapped
			}
		}
		return netip.AddrPort{}
	}
	relay := netip.MustParseAddrPort("203.0.113.66:3544")

	t.Run("native host pings us first", func(t *testing.T) {
		// The first echo test is lost here while the internet's
		// namespace resolves its neighbour towards the relay (warming
		// it up takes it to 1 ms): the test's repeat, BubbleInterval
		// later, finds the relay.
		ping(t, native, "-I", "2001:db8:2::3", ours.String())
		if got := relayOf(netip.MustParseAddr("2001:db8:2::3")); got != relay {
			t.Errorf("relay for 2001:db8:2::3 is %v, want %v; peers %+v", got, relay, c.State().Peers)
		}
	})
	t.Run("we ping a native host", func(t *testing.T) {
		ping(t, w.home, "2001:db8:2::2")
		if got := relayOf(netip.MustParseAddr("2001:db8:2::2")); got != relay {
			t.Errorf("relay for 2001:db8:2::2 is %v, want %v; peers %+v", got, relay, c.State().Peers)
		}
	})
	t.Run("TCP to the native host", func(t *testing.T) {
		tcpEcho(t, native, netip.MustParseAddrPort("[2001:db8:2::2]:8080"), w.home, nil)
	})
	t.Run("another relay is refused", func(t *testing.T) {
		// From the open host, a native source the client knows through
		// the relay (RFC 4380 section 5.2.3).
		var conn *net.UDPConn
		if err := w.open.do(func() (err error) {
			conn, err = net.ListenUDP("udp4", nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Open the NAT towards the open host first, as a relay's
		// bubble would have made us do.
		st := c.State()
		before := c.Stats().Drops[UnknownRelay.String()]
		for i := 0; i < 20 && c.Stats().Drops[UnknownRelay.String()] == before; i++ {
			// The NAT drops it unless we sent to the open host: punch
			// from the client's socket through a bubble to it.
			c.send([]datagram{{To: netip.MustParseAddrPort("192.0.2.2:" + fmt.Sprint(conn.LocalAddr().(*net.UDPAddr).Port)), Payload: bubble(t, ours, ours)}})
			if _, err := conn.WriteToUDPAddrPort(packet(t, netip.MustParseAddr("2001:db8:2::2"), ours, 58, 8), st.Mapped); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if c.Stats().Drops[UnknownRelay.String()] == before {
			t.Errorf("no unknown-relay drop; stats %+v", c.Stats())
		}
	})
	t.Logf("state %+v\nstats %+v", c.State(), c.Stats())
}
