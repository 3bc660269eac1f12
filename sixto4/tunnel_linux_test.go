package sixto4

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	xipv6 "golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"gateway/internal/leakcheck"
	nsrun "gateway/internal/netns"
	"gateway/internal/testenv"
)

// netns is a network namespace the test made, removed at cleanup.
type netns string

func newNetns(t *testing.T, role string, id string) netns {
	t.Helper()
	name := "s4-" + id + "-" + role
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	n := netns(name)
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

func (n netns) sysctl(t *testing.T, kv string) {
	t.Helper()
	run(t, "ip", "netns", "exec", string(n), "sysctl", "-qw", kv)
}

func (n netns) exec(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", string(n)}, args...)...).CombinedOutput()
	return string(out), err
}

// do runs fn on a thread in the namespace; the thread is not reused
// afterwards (it dies with its goroutine, still locked), so a socket fn
// opens stays in the namespace.
func (n netns) do(fn func() error) error { return nsrun.Do(string(n), fn) }

// veth links a in n to b in m.
func veth(t *testing.T, n netns, a string, m netns, b string) {
	t.Helper()
	run(t, "ip", "-n", string(n), "link", "add", a, "type", "veth", "peer", "name", b, "netns", string(m))
	n.ip(t, "link set "+a+" up")
	m.ip(t, "link set "+b+" up")
}

// startTunnel creates a Tunnel in n and runs it until the test ends.
func startTunnel(t *testing.T, n netns, cfg Config) *Tunnel {
	t.Helper()
	cfg.AllowDocumentation = true
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var tun *Tunnel
	if err := n.do(func() (err error) { tun, err = New(cfg); return err }); err != nil {
		t.Fatalf("New in %s: %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tun.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run in %s: %v", n, err)
		}
		t.Logf("%s stats: %+v", n, tun.Stats())
	})
	return tun
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// world is two 6to4 sites, a relay and a native IPv6 host around a
// routing "internet" namespace:
//
//	A (192.0.2.2) ─┐                 ┌─ relay (203.0.113.2, 2001:db8:1::1) ── native (2001:db8:1::2)
//	B (198.51.100.2) ─ inet ─────────┘
type world struct {
	inet, a, b, r, n netns
	ta, tb, tr       *Tunnel
}

func newWorld(t *testing.T) *world {
	t.Helper()
	id := fmt.Sprintf("%d%03d", os.Getpid()%10000, rand.IntN(1000))
	w := &world{
		inet: newNetns(t, "inet", id), a: newNetns(t, "a", id), b: newNetns(t, "b", id),
		r: newNetns(t, "r", id), n: newNetns(t, "n", id),
	}
	for _, n := range []netns{w.r, w.n} {
		n.sysctl(t, "net.ipv6.conf.default.accept_dad=0") // no tentative link-local addresses
	}
	w.r.sysctl(t, "net.ipv6.conf.all.forwarding=1")
	veth(t, w.inet, "ia", w.a, "wan")
	veth(t, w.inet, "ib", w.b, "wan")
	veth(t, w.inet, "ir", w.r, "wan")
	veth(t, w.r, "nat", w.n, "nat")
	w.inet.sysctl(t, "net.ipv4.ip_forward=1")
	for _, s := range []struct {
		ns   netns
		inet string
		side string
		gw   string
	}{
		{w.a, "ia", "192.0.2", ""}, {w.b, "ib", "198.51.100", ""}, {w.r, "ir", "203.0.113", ""},
	} {
		w.inet.ip(t, "addr add "+s.side+".1/24 dev "+s.inet)
		s.ns.ip(t, "addr add "+s.side+".2/24 dev wan")
		s.ns.ip(t, "route add default via "+s.side+".1")
	}
	w.r.ip(t, "addr add 2001:db8:1::1/64 dev nat nodad")
	w.n.ip(t, "addr add 2001:db8:1::2/64 dev nat nodad")
	w.n.ip(t, "route add 2002::/16 via 2001:db8:1::1")

	w.ta = startTunnel(t, w.a, Config{Name: "6to4", Local: siteA, Relay: relay4})
	w.tb = startTunnel(t, w.b, Config{Name: "6to4", Local: siteB, Relay: relay4})
	w.tr = startTunnel(t, w.r, Config{Name: "6to4r", Local: relay4, Mode: Relay})
	for _, tn := range []*Tunnel{w.ta, w.tb} {
		if err := tn.SetDefault(true); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// ping sends ICMPv6 echo requests from src (in n) to dst until one is
// answered, for at most two seconds.
func ping(t *testing.T, n netns, src, dst string) {
	t.Helper()
	if err := tryPing(n, src, dst, 2*time.Second); err != nil {
		t.Fatalf("ping %s from %s in %s: %v", dst, src, n, err)
	}
}

func tryPing(n netns, src, dst string, wait time.Duration) error {
	var c *icmp.PacketConn
	if err := n.do(func() (err error) { c, err = icmp.ListenPacket("ip6:ipv6-icmp", src); return err }); err != nil {
		return err
	}
	defer c.Close()
	to := &net.IPAddr{IP: net.ParseIP(dst)}
	id := rand.IntN(0xffff)
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for seq := 1; time.Now().Before(deadline); seq++ {
		m := icmp.Message{Type: xipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("sixto4")}}
		b, _ := m.Marshal(nil)
		if _, err := c.WriteTo(b, to); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			r, err := icmp.ParseMessage(58, buf[:k])
			if err != nil || r.Type != xipv6.ICMPTypeEchoReply || from.String() != to.String() {
				continue
			}
			if e, ok := r.Body.(*icmp.Echo); ok && e.ID == id {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply in %v", wait)
}

// tcpEcho listens in srv on addr, connects from cli and checks that 1 MiB
// comes back intact.
func tcpEcho(t *testing.T, srv, cli netns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := srv.do(func() (err error) { ln, err = net.Listen("tcp6", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	var c net.Conn
	if err := cli.do(func() (err error) {
		c, err = net.DialTimeout("tcp6", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s: %v", ln.Addr(), cli, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo through the tunnel: %d of %d bytes back, %v", len(got), len(data), err)
	}
}

func TestTwoSitesAndRelay(t *testing.T) {
	testenv.Root(t)
	testenv.Device(t, "/dev/net/tun")
	testenv.Tool(t, "ip", "iproute2")
	leakcheck.Check(t)
	w := newWorld(t)
	aAddr, bAddr := w.ta.Addr().String(), w.tb.Addr().String()
	if got := w.ta.Prefix().String(); got != "2002:c000:202::/48" {
		t.Fatalf("Prefix = %s", got)
	}

	t.Run("site to site", func(t *testing.T) {
		ping(t, w.a, aAddr, bAddr)
		tcpEcho(t, w.b, w.a, "["+bAddr+"]:7001")
	})
	t.Run("outer packets without DF", func(t *testing.T) {
		// Watch inet's link toward B while A pings B: RFC 4213 section
		// 3.2.1, a static tunnel MTU, no DF.
		var fd int
		if err := w.inet.do(func() error {
			ifi, err := net.InterfaceByName("ib")
			if err != nil {
				return err
			}
			fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_IP)))
			if err != nil {
				return err
			}
			return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
		}); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 3})
		ping(t, w.a, aAddr, bAddr)
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				t.Fatalf("no protocol-41 packet seen toward B: %v", err)
			}
			if n < 20 || buf[9] != protoIPv6 {
				continue
			}
			if buf[6]&0x40 != 0 {
				t.Fatalf("outer packet has DF set: % x", buf[:20])
			}
			return
		}
	})
	t.Run("site to native through the relay", func(t *testing.T) {
		// The source-specific default route is what takes this out.
		ping(t, w.a, aAddr, "2001:db8:1::2")
		tcpEcho(t, w.n, w.a, "[2001:db8:1::2]:7002")
		if s := w.tr.Stats(); s.InPackets == 0 || s.OutPackets == 0 {
			t.Fatalf("the relay saw no traffic: %+v", s)
		}
	})
	t.Run("native to site", func(t *testing.T) {
		ping(t, w.n, "2001:db8:1::2", bAddr)
	})
	t.Run("SetDefault off", func(t *testing.T) {
		if err := w.ta.SetDefault(false); err != nil {
			t.Fatal(err)
		}
		if err := tryPing(w.a, aAddr, "2001:db8:1::2", time.Second); err == nil {
			t.Fatal("native host still reachable without the default route")
		}
		if err := w.ta.SetDefault(true); err != nil {
			t.Fatal(err)
		}
		ping(t, w.a, aAddr, "2001:db8:1::2")
	})
	t.Run("spoofed", func(t *testing.T) {
		spoofs := []struct {
			name       string
			to         *Tunnel
			outer      netip.Addr
			dst4       netip.Addr
			src6, dst6 string
			want       Reason
		}{
			{"outer source is not the 6to4 source", w.ta, siteB, siteA, "2002:cb00:7102::5", aAddr, SrcNotOuter},
			{"inner source embeds a private address", w.ta, siteB, siteA, "2002:c0a8:101::1", aAddr, SrcEmbedded},
			{"native source not from the relay", w.ta, siteB, siteA, "2001:db8:1::2", aAddr, NativeNotRelay},
			{"our own prefix from outside", w.ta, siteB, siteA, "2002:c000:202:5::1", aAddr, SrcOwnPrefix},
			{"for another site", w.ta, siteB, siteA, "2002:c633:6402::1", "2002:cb00:7102::9", DstNotOurs},
			{"outer source private", w.ta, netip.MustParseAddr("10.1.2.3"), siteA, "2002:0a01:0203::1", aAddr, OuterSrc},
			{"relay: 6to4 to 6to4", w.tr, siteB, relay4, "2002:c633:6402::1", aAddr, RelayDst6to4},
			{"relay: native source", w.tr, siteB, relay4, "2001:db8:9::1", "2001:db8:1::2", RelaySrcNative},
		}
		for _, s := range spoofs {
			t.Run(s.name, func(t *testing.T) {
				// Late answers to the pings before would count as
				// deliveries: start once the tunnel is quiet.
				quiet(t, s.to)
				before := s.to.Stats()
				pkt := appendIPv4(nil, s.outer, s.dst4, ipv6(s.src6, s.dst6, 16))
				if err := w.inet.do(func() error { return sendRaw(pkt, s.dst4) }); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(3 * time.Second)
				for s.to.Stats().Drops[s.want] == before.Drops[s.want] {
					if time.Now().After(deadline) {
						t.Fatalf("not counted as %v: before %v, after %v", s.want, before.Drops, s.to.Stats().Drops)
					}
					time.Sleep(10 * time.Millisecond)
				}
				after := s.to.Stats()
				if after.InPackets != before.InPackets {
					t.Fatalf("a spoofed packet was delivered: in %d → %d", before.InPackets, after.InPackets)
				}
			})
		}
	})
}

// quiet waits (5 s at most) until t has delivered nothing for 300 ms.
func quiet(t *testing.T, tun *Tunnel) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last := tun.Stats().InPackets
	for since := time.Now(); time.Since(since) < 300*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("the tunnel does not go quiet: %d packets in", tun.Stats().InPackets)
		}
		time.Sleep(20 * time.Millisecond)
		if n := tun.Stats().InPackets; n != last {
			last, since = n, time.Now()
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// sendRaw sends a whole IPv4 packet (our own header, any source) to dst.
func sendRaw(pkt []byte, dst netip.Addr) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW) // IPPROTO_RAW implies IP_HDRINCL
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()})
}
