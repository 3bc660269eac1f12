package teredo

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
	"gateway/sixto4/teredo/wire"
)

// miredoAddr waits for the Teredo address of Miredo's client in n.
func miredoAddr(t *testing.T, n netns) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("ip", "-n", string(n), "-6", "-o", "addr", "show", "dev", "teredo", "scope", "global").CombinedOutput()
		for _, f := range strings.Fields(string(out)) {
			if p, err := netip.ParsePrefix(f); err == nil && wire.Prefix.Contains(p.Addr()) {
				return p.Addr()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Miredo's client in %s took no Teredo address in 15 s", n)
	return netip.Addr{}
}

// TestClientWithMiredo: our client behind one masquerade NAT, Miredo's
// behind another, both qualified with miredo-server; they ping and open
// TCP to each other through their bubbles' holes.
func TestClientWithMiredo(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	leakcheck.Check(t)
	w := newWorld(t)
	testenv.Tool(t, "miredo", "miredo")
	testenv.Tool(t, "busybox", "busybox")
	testenv.Device(t, "/dev/net/tun")
	// The internet routes between the two NATs.
	w.inet.exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	qualifyFrom(t, w.open, "192.0.2.2:0", false) // the server is up
	w.startDaemon(t, w.home2, "miredo", "RelayType client\nServerAddress "+miredoServer.String()+"\nInterfaceName teredo\n")

	c := startClient(t, w.home, Config{Name: "teredo0", Servers: []netip.Addr{miredoServer}, Logger: testLogger(t),
		Qualifier: Qualifier{Timeout: 300 * time.Millisecond, Attempts: 10}})
	start := time.Now()
	for !c.Addr().IsValid() {
		if time.Since(start) > 10*time.Second {
			t.Fatal("not qualified in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ours := c.Addr()
	st := c.State()
	t.Logf("qualified in %v: %+v", time.Since(start), st)
	if a, _ := wire.ParseAddress(ours); a.Mapped != st.Mapped || st.Mapped.Addr() != netip.MustParseAddr("198.51.100.2") || st.Cone || st.Server != miredoServer {
		t.Errorf("state %+v; want restricted, mapped to the NAT's 198.51.100.2, server %v", st, miredoServer)
	}
	if out := w.home.exec(t, "ip", "-6", "addr", "show", "dev", "teredo0"); !strings.Contains(out, ours.String()+"/32") {
		t.Errorf("teredo0 lacks %v/32:\n%s", ours, out)
	}
	peer := miredoAddr(t, w.home2)
	t.Logf("Miredo's client: %v", peer)

	t.Run("ping Miredo", func(t *testing.T) {
		// The first echo waits in the queue for the bubbles' answer.
		out, err := exec.Command("ip", "netns", "exec", string(w.home), "busybox", "ping", "-6", "-c", "5", "-i", "0.2", "-W", "3", peer.String()).CombinedOutput()
		t.Logf("%s", out)
		if err != nil || !strings.Contains(string(out), " 0% packet loss") {
			t.Logf("nat: %s\nnat2: %s", w.nat.exec(t, "conntrack", "-L", "-p", "udp"), w.nat2.exec(t, "conntrack", "-L", "-p", "udp"))
			t.Fatalf("ping %v: %v", peer, err)
		}
		var trusted bool
		for _, p := range c.State().Peers {
			trusted = trusted || p.Addr == peer && p.Trusted
		}
		if !trusted {
			t.Errorf("peer %v not trusted after the pings: %+v", peer, c.State().Peers)
		}
	})

	t.Run("TCP to Miredo", func(t *testing.T) {
		tcpEcho(t, w.home2, netip.AddrPortFrom(peer, 8080), w.home, func() {
			t.Logf("home: %s\nhome2: %s", w.home.exec(t, "nstat", "-az", "Tcp*", "Ip6*"), w.home2.exec(t, "nstat", "-az", "Tcp*", "Ip6*"))
		})
	})

	t.Run("Miredo pings us", func(t *testing.T) {
		out, err := exec.Command("ip", "netns", "exec", string(w.home2), "busybox", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "3", ours.String()).CombinedOutput()
		t.Logf("%s", out)
		if err != nil {
			t.Fatalf("ping %v from Miredo's side: %v", ours, err)
		}
	})
	s := c.Stats()
	t.Logf("stats: %+v", s)
	if s.InPackets == 0 || s.OutPackets == 0 || s.Bubbles == 0 {
		t.Errorf("stats %+v: want packets both ways and bubbles", s)
	}
}
