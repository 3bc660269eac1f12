package teredo

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	nsrun "gateway/internal/netns"
	"gateway/internal/testenv"
	"gateway/sixto4/teredo/wire"
)

// The Teredo server's two consecutive addresses, as Miredo binds them.
var miredoServer = netip.MustParseAddr("203.0.113.10")

// netns is a network namespace the test made, removed at cleanup.
type netns string

func newNetns(t *testing.T, id, role string) netns {
	t.Helper()
	n := netns("teredo-" + id + "-" + role)
	run(t, "ip", "netns", "add", string(n))
	t.Cleanup(func() { exec.Command("ip", "netns", "del", string(n)).Run() })
	n.ip(t, "link set lo up")
	return n
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n netns) ip(t *testing.T, args string) {
	t.Helper()
	run(t, append([]string{"ip", "-n", string(n)}, strings.Fields(args)...)...)
}

func (n netns) exec(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", string(n)}, args...)...)
}

// do runs fn on a thread in the namespace; the thread dies with its
// goroutine (still locked), so what fn opens stays in the namespace.
func (n netns) do(fn func() error) error { return nsrun.Do(string(n), fn) }

// link joins a in n (address aAddr) to b in m (address bAddr) by a veth.
func link(t *testing.T, n netns, a, aAddr string, m netns, b, bAddr string) {
	t.Helper()
	run(t, "ip", "-n", string(n), "link", "add", a, "type", "veth", "peer", "name", b, "netns", string(m))
	n.ip(t, "addr add "+aAddr+" dev "+a)
	m.ip(t, "addr add "+bAddr+" dev "+b)
	n.ip(t, "link set "+a+" up")
	m.ip(t, "link set "+b+" up")
}

// world is an internet with Miredo's server on it, a host on it with a
// public address, and two homes behind Linux masquerade NATs:
//
//	open (192.0.2.2) ─┐
//	nat (198.51.100.2) ─ inet (miredo-server 203.0.113.10 + .11)
//	nat2 (192.0.2.130) ─┘
//	home (192.168.77.2) behind nat, home2 (192.168.78.2) behind nat2
type world struct {
	inet, open, nat, home, nat2, home2 netns
	dir                                string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	testenv.Root(t)
	testenv.Tool(t, "ip", "iproute2")
	testenv.Tool(t, "nft", "nftables")
	testenv.Tool(t, "miredo-server", "miredo-server")
	id := fmt.Sprintf("%d%03d", os.Getpid()%10000, rand.IntN(1000))
	w := &world{dir: t.TempDir()}
	w.inet, w.open = newNetns(t, id, "inet"), newNetns(t, id, "open")
	w.nat, w.home = newNetns(t, id, "nat"), newNetns(t, id, "home")
	w.nat2, w.home2 = newNetns(t, id, "nat2"), newNetns(t, id, "home2")

	w.inet.ip(t, "addr add 203.0.113.10/32 dev lo")
	w.inet.ip(t, "addr add 203.0.113.11/32 dev lo")
	link(t, w.inet, "open", "192.0.2.1/25", w.open, "wan", "192.0.2.2/25")
	link(t, w.inet, "nat", "198.51.100.1/24", w.nat, "wan", "198.51.100.2/24")
	link(t, w.inet, "nat2", "192.0.2.129/25", w.nat2, "wan", "192.0.2.130/25")
	link(t, w.nat, "lan", "192.168.77.1/24", w.home, "lan", "192.168.77.2/24")
	link(t, w.nat2, "lan", "192.168.78.1/24", w.home2, "lan", "192.168.78.2/24")
	w.open.ip(t, "route add default via 192.0.2.1")
	w.nat.ip(t, "route add default via 198.51.100.1")
	w.nat2.ip(t, "route add default via 192.0.2.129")
	w.home.ip(t, "route add default via 192.168.77.1")
	w.home2.ip(t, "route add default via 192.168.78.1")
	for _, n := range []netns{w.nat, w.nat2} {
		n.exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		// Plain masquerade: endpoint-independent mapping, address-and-
		// port-dependent filtering (ANCHORS.md), i.e. a restricted NAT.
		// Unsolicited input from the WAN dropped before conntrack confirms
		// it, as a home router does: otherwise the unanswered cone test's
		// RA from the secondary address leaves an entry that makes
		// masquerade pick another port towards that address, and the
		// qualification sees a symmetric NAT (ANCHORS.md).
		n.exec(t, "nft", "add table ip teredotest\n"+
			"add chain ip teredotest post { type nat hook postrouting priority srcnat; }\n"+
			"add rule ip teredotest post oifname wan masquerade\n"+
			"add chain ip teredotest in { type filter hook input priority filter; }\n"+
			"add rule ip teredotest in iifname wan ct state new drop")
	}
	w.startDaemon(t, w.inet, "miredo-server", "ServerBindAddress "+miredoServer.String()+"\n")
	return w
}

// startDaemon runs a Miredo program in n with conf until the test ends.
func (w *world) startDaemon(t *testing.T, n netns, prog, conf string) {
	t.Helper()
	path := filepath.Join(w.dir, string(n)+"-"+prog)
	if err := os.WriteFile(path+".conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path + ".log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", string(n), prog, "-f", "-c", path+".conf", "-p", path+".pid")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(path + ".log")
			t.Logf("%s in %s said:\n%s", prog, n, b)
		}
	})
}

// qualifyFrom qualifies with Miredo's server from a UDP socket bound to
// local in n.
func qualifyFrom(t *testing.T, n netns, local string, coneTest bool) (Qualification, *net.UDPConn, time.Duration) {
	return qualifyWith(t, n, local, Qualifier{Timeout: 300 * time.Millisecond, Attempts: 10, ConeTest: coneTest})
}

func qualifyWith(t *testing.T, n netns, local string, qz Qualifier) (Qualification, *net.UDPConn, time.Duration) {
	t.Helper()
	var conn *net.UDPConn
	if err := n.do(func() (err error) {
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(local)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Short timeouts: miredo-server may still be binding when we start.
	start := time.Now()
	q, err := qz.Qualify(ctx, conn, miredoServer)
	if err != nil {
		t.Fatalf("qualify from %s in %s: %v", local, n, err)
	}
	return q, conn, time.Since(start)
}

func TestQualifyWithMiredo(t *testing.T) {
	w := newWorld(t)

	t.Run("behind masquerade: restricted", func(t *testing.T) {
		q, conn, took := qualifyFrom(t, w.home, "192.168.77.2:0", false)
		t.Logf("qualified in %v: %+v", took, q)
		a, err := wire.ParseAddress(q.Address)
		if err != nil {
			t.Fatal(err)
		}
		if a.Server != miredoServer || q.Server != miredoServer {
			t.Errorf("address %v names server %v, want %v", q.Address, a.Server, miredoServer)
		}
		if a.Mapped.Addr() != netip.MustParseAddr("198.51.100.2") || a.Mapped != q.Mapped {
			t.Errorf("address %v maps to %v (qualification %v), want the NAT's 198.51.100.2", q.Address, a.Mapped, q.Mapped)
		}
		if q.Cone || a.Cone() {
			t.Errorf("cone behind plain masquerade: %+v", q)
		}
		if r, err := (Qualifier{Timeout: 300 * time.Millisecond}).Refresh(context.Background(), conn, q); err != nil || r != q {
			t.Errorf("Refresh = %+v, %v; want %+v unchanged", r, err, q)
		}
	})

	t.Run("no NAT: cone", func(t *testing.T) {
		q, _, took := qualifyFrom(t, w.open, "192.0.2.2:0", false)
		t.Logf("qualified in %v: %+v", took, q)
		a, err := wire.ParseAddress(q.Address)
		if err != nil {
			t.Fatal(err)
		}
		if !q.Cone || !a.Cone() || a.Mapped != q.Mapped || a.Mapped.Addr() != netip.MustParseAddr("192.0.2.2") || a.Server != miredoServer {
			t.Errorf("qualification %+v, address decodes to %+v; want cone, mapped 192.0.2.2, server %v", q, a, miredoServer)
		}
	})

	t.Run("cone test behind masquerade: restricted", func(t *testing.T) {
		// The server is up by now (the first subtest qualified): three
		// short cone RSs are enough.
		q, _, took := qualifyWith(t, w.home, "192.168.77.2:0", Qualifier{Timeout: 200 * time.Millisecond, ConeTest: true})
		t.Logf("qualified in %v: %+v", took, q)
		if q.Cone || q.Mapped.Addr() != netip.MustParseAddr("198.51.100.2") {
			t.Errorf("qualification %+v; want restricted, mapped to 198.51.100.2", q)
		}
	})

	t.Run("cone test behind endpoint-independent filtering: cone", func(t *testing.T) {
		// The mapped port forwarded back to the client: what the
		// gateway's EIF mode does (ANCHORS.md).
		port := 40000 + rand.IntN(10000)
		w.nat.exec(t, "nft", fmt.Sprintf("add chain ip teredotest pre { type nat hook prerouting priority dstnat; }\n"+
			"add rule ip teredotest pre iifname wan udp dport %d dnat to 192.168.77.2:%d", port, port))
		q, _, took := qualifyFrom(t, w.home, fmt.Sprintf("192.168.77.2:%d", port), true)
		t.Logf("qualified in %v: %+v", took, q)
		a, err := wire.ParseAddress(q.Address)
		if err != nil {
			t.Fatal(err)
		}
		if !q.Cone || !a.Cone() || q.Mapped != netip.AddrPortFrom(netip.MustParseAddr("198.51.100.2"), uint16(port)) {
			t.Errorf("qualification %+v; want cone, mapped to 198.51.100.2:%d", q, port)
		}
	})
}

// TestMiredoClientAddressDecodes runs Miredo's own client behind a NAT
// and decodes the address it takes with our codec.
func TestMiredoClientAddressDecodes(t *testing.T) {
	w := newWorld(t)
	testenv.Tool(t, "miredo", "miredo")
	testenv.Tool(t, "conntrack", "conntrack")
	testenv.Device(t, "/dev/net/tun")
	// Wait until the server answers: Miredo's client retransmits its
	// first RS only after 4 s.
	qualifyFrom(t, w.open, "192.0.2.2:0", false)
	start := time.Now()
	w.startDaemon(t, w.home2, "miredo", "RelayType client\nServerAddress "+miredoServer.String()+"\nInterfaceName teredo\n")

	var addr netip.Addr
	deadline := time.Now().Add(15 * time.Second)
	for !addr.IsValid() {
		if time.Now().After(deadline) {
			t.Fatal("Miredo's client took no Teredo address in 15 s")
		}
		out, _ := exec.Command("ip", "-n", string(w.home2), "-6", "-o", "addr", "show", "dev", "teredo", "scope", "global").CombinedOutput()
		for _, f := range strings.Fields(string(out)) {
			if p, err := netip.ParsePrefix(f); err == nil && wire.Prefix.Contains(p.Addr()) {
				addr = p.Addr()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, err := wire.ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Miredo's client took %v in %v: %+v", addr, time.Since(start), a)
	if a.Server != miredoServer {
		t.Errorf("server %v, want %v", a.Server, miredoServer)
	}
	if a.Mapped.Addr() != netip.MustParseAddr("192.0.2.130") {
		t.Errorf("mapped address %v, want the NAT's 192.0.2.130", a.Mapped.Addr())
	}
	if a.Cone() {
		t.Error("Miredo's client set the cone flag behind masquerade")
	}
	// The NAT's own table must hold the mapped port: the reply tuple of
	// the client's flow to the server goes to it.
	ct := w.nat2.exec(t, "conntrack", "-L", "-p", "udp", "--orig-port-dst", "3544")
	if !strings.Contains(ct, fmt.Sprintf("dport=%d ", a.Mapped.Port())) {
		t.Errorf("mapped port %d not in the NAT's conntrack table:\n%s", a.Mapped.Port(), ct)
	}
}

// startClient makes a Client with cfg in n and runs it until the test
// ends.
func startClient(t *testing.T, n netns, cfg Config) *Client {
	t.Helper()
	var c *Client
	if err := n.do(func() (err error) { c, err = New(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "client", c.Run)
	return c
}

// startRelay makes a Relay with cfg in n and runs it until the test ends.
func startRelay(t *testing.T, n netns, cfg RelayConfig) *Relay {
	t.Helper()
	var r *Relay
	if err := n.do(func() (err error) { r, err = NewRelay(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "relay", r.Run)
	return r
}

// runUntilCleanup runs run until the test ends and checks it ended well.
func runUntilCleanup(t *testing.T, what string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s Run: %v", what, err)
		}
	})
}

// nativeBehindRelay adds to w a relay host on the internet
// (203.0.113.66, 2001:db8:1::2) routing for a native network behind it
// (host native, 2001:db8:2::2), the internet routing 2001:db8:2::/64 to
// it: the relay's Teredo side is the caller's to run.
func (w *world) nativeBehindRelay(t *testing.T) (relay, native netns) {
	t.Helper()
	id := fmt.Sprintf("%d%03d", os.Getpid()%10000, rand.IntN(1000))
	relay, native = newNetns(t, id, "relay"), newNetns(t, id, "native")
	link(t, w.inet, "relay", "203.0.113.65/26", relay, "wan", "203.0.113.66/26")
	w.inet.ip(t, "-6 addr add 2001:db8:1::1/64 dev relay nodad")
	relay.ip(t, "-6 addr add 2001:db8:1::2/64 dev wan nodad")
	link(t, relay, "lan", "192.168.79.1/24", native, "lan", "192.168.79.2/24")
	relay.ip(t, "-6 addr add 2001:db8:2::1/64 dev lan nodad")
	native.ip(t, "-6 addr add 2001:db8:2::2/64 dev lan nodad")
	native.ip(t, "-6 route add default via 2001:db8:2::1")
	relay.ip(t, "route add default via 203.0.113.65")
	// miredo-server sends the echo tests on natively: to the native
	// network through the relay.
	w.inet.ip(t, "-6 route add 2001:db8:2::/64 via 2001:db8:1::2")
	relay.exec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	w.inet.exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return relay, native
}

// tcpEcho listens on at in server, connects from client and checks that
// 1 MiB comes back unchanged; onDialError, when not nil, says more when
// the connection fails.
func tcpEcho(t *testing.T, server netns, at netip.AddrPort, client netns, onDialError func()) {
	t.Helper()
	var ln net.Listener
	if err := server.do(func() (err error) {
		ln, err = net.Listen("tcp6", at.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(conn, conn)
	}()
	var conn net.Conn
	if err := client.do(func() (err error) {
		conn, err = net.DialTimeout("tcp6", at.String(), 5*time.Second)
		return err
	}); err != nil {
		if onDialError != nil {
			onDialError()
		}
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := make([]byte, 1<<20)
	crand.Read(msg)
	go conn.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo differs")
	}
}
