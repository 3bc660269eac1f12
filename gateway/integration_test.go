//go:build linux && !nolab

package gateway_test

// Integration tests: the real binary runs in a lab built of network
// namespaces, and real TCP and UDP cross it. They need root; without it, or
// with -short, they skip.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"gateway/gateway/client"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
	"gateway/nat44"
	"gateway/web"
)

// binary is the gateway built once for all tests.
var binary string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "gateway-test-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "gateway")
		if out, err := exec.Command("go", "build", "-o", binary, "gateway/cmd/gateway").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build gateway: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

var (
	wanAddr = lab.WANAddr.Addr()
	pub1    = lab.PublicAddrs[0].Addr()
	pub2    = lab.PublicAddrs[1].Addr()
	lan1    = lab.LAN1Addr.Addr()
	lan2    = lab.LAN2Addr.Addr()
)

// gw is a lab with the daemon running in it.
type gw struct {
	t   *testing.T
	l   *lab.Lab
	cfg string
}

// startGateway builds a lab and runs the daemon with the lab's default
// config (every service on) plus extra; the LAN hosts get their usual
// addresses from it through the lab's DHCP client.
func startGateway(t *testing.T, extra string) *gw {
	t.Helper()
	return startWith(t, labgw.Config, extra, lab.LANHosts...)
}

// startWith builds a lab and runs the daemon, without a respawner, with
// config(l, extra); in each of dhcpHosts the lab's DHCP client runs and
// the test waits for its lease. The other LAN hosts have no IPv4 address.
func startWith(t *testing.T, config func(*lab.Lab, string) string, extra string, dhcpHosts ...string) *gw {
	t.Helper()
	return startIn(t, labtest.New(t), config, extra, dhcpHosts...)
}

// startIn is startWith on a lab that the test has built (and perhaps
// started processes in) itself.
func startIn(t *testing.T, l *lab.Lab, config func(*lab.Lab, string) string, extra string, dhcpHosts ...string) *gw {
	t.Helper()
	g := &gw{t: t, l: l, cfg: labgw.ConfigPath(l)}
	g.writeConfig(config(l, extra))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(labgw.Log(l))
			t.Logf("gateway log:\n%s", labgw.Tail(b, 40))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := labgw.StartInternet(l, binary); err != nil {
		t.Fatal(err)
	}
	text := config(l, extra)
	if err := labgw.Start(ctx, l, binary, g.cfg); err != nil {
		t.Fatal(err)
	}
	for _, h := range dhcpHosts {
		if _, err := l.StartDHCPClient(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := labgw.WaitLeases(ctx, l, dhcpHosts...); err != nil {
		t.Fatal(err)
	}
	// With the lab's IPv6 section, the LAN hosts get their addresses by
	// SLAAC in the ISP's delegation.
	if strings.Contains(text, labgw.IPv6Config) {
		if err := labgw.SiteA.WaitIPv6(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *gw) writeConfig(text string) {
	g.t.Helper()
	if err := os.WriteFile(g.cfg, []byte(text), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gw) api() *client.Client { return client.New(labgw.Socket(g.l)) }

func (g *gw) status() gateway.Status {
	g.t.Helper()
	st, err := g.tryStatus()
	if err != nil {
		g.t.Fatal(err)
	}
	return st
}

func (g *gw) tryStatus() (gateway.Status, error) {
	var st gateway.Status
	err := g.api().Do("GET", "/api/v1/status", nil, &st)
	return st, err
}

// run runs a program inside a lab host and returns its output.
func (g *gw) run(host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := g.l.Command(ctx, host, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func (g *gw) mustRun(host string, args ...string) string {
	g.t.Helper()
	out, err := g.run(host, args...)
	if err != nil {
		g.t.Fatalf("%s: %v: %v\n%s", host, args, err, out)
	}
	return out
}

func (g *gw) signal(sig syscall.Signal) {
	g.t.Helper()
	pid := g.pid()
	if pid == 0 {
		g.t.Fatal("the daemon is not running")
	}
	if err := syscall.Kill(pid, sig); err != nil {
		g.t.Fatal(err)
	}
}

// pid is the running daemon's pid, or 0.
func (g *gw) pid() int {
	for _, h := range g.l.Status().Hosts {
		for _, p := range h.Processes {
			if p.Name == labgw.Daemon && p.Alive {
				return p.PID
			}
		}
	}
	return 0
}

// eventually retries f until it returns nil or 5 s have passed.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	eventuallyWithin(t, 5*time.Second, what, f)
}

// eventuallyWithin retries f until it returns nil or d has passed.
func eventuallyWithin(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tcpServer listens on addr inside host; each connection is answered with
// "HOST saw REMOTE" and closed.
func tcpServer(t *testing.T, l *lab.Lab, host, addr string) {
	t.Helper()
	var ln net.Listener
	if err := l.Do(host, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s saw %s\n", host, c.RemoteAddr())
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// tcpGet connects from host to addr and returns the first line it gets.
func tcpGet(l *lab.Lab, host, addr string) (string, error) {
	return tcpGetFrom(l, host, netip.Addr{}, addr)
}

// tcpGetFrom is tcpGet from the source address src (any when invalid).
func tcpGetFrom(l *lab.Lab, host string, src netip.Addr, addr string) (string, error) {
	var c net.Conn
	err := l.Do(host, func() (err error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		if src.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
		c, err = d.Dial("tcp", addr)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func wantTCP(t *testing.T, l *lab.Lab, host, addr, want string) {
	t.Helper()
	got, err := tcpGet(l, host, addr)
	if err != nil || !strings.HasPrefix(got, want) {
		t.Fatalf("%s → %s: got %q, %v; want %q", host, addr, got, err, want)
	}
}

func wantNoTCP(t *testing.T, l *lab.Lab, host, addr string) {
	t.Helper()
	if got, err := tcpGet(l, host, addr); err == nil {
		t.Fatalf("%s → %s answered %q; want nothing through", host, addr, got)
	}
}

func hostPort(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

func TestNATOutForwardInHairpin(t *testing.T) {
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.Public, hostPort(pub1, 80))
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 80))

	// Out: the public host sees the WAN address, with the source port kept.
	got, err := tcpGet(g.l, lab.LAN1, hostPort(pub1, 80))
	if err != nil || !strings.HasPrefix(got, "pub saw "+wanAddr.String()+":") {
		t.Fatalf("NAT out: got %q, %v; want pub to see %v", got, err, wanAddr)
	}
	// In: the static forward of the default config, public 8080 → lan1:80,
	// keeps the real source address.
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 8080), "lan1 saw "+pub1.String()+":")
	// Hairpin (RFC 4787 REQ-9): lan2 reaches the forward through the public
	// address, and lan1 sees the public address, not a LAN one.
	wantTCP(t, g.l, lab.LAN2, hostPort(wanAddr, 8080), "lan1 saw "+wanAddr.String()+":")
	// And so does lan1 itself.
	wantTCP(t, g.l, lab.LAN1, hostPort(wanAddr, 8080), "lan1 saw "+wanAddr.String()+":")

	// Conntrack keeps UDP mappings 2 min (RFC 4787 REQ-5) and established
	// TCP 2 h 4 min (RFC 5382 REQ-5), at least.
	for sysctl, least := range map[string]int{"nf_conntrack_udp_timeout": 120, "nf_conntrack_udp_timeout_stream": 120, "nf_conntrack_tcp_timeout_established": 7440} {
		out := strings.TrimSpace(g.mustRun(lab.Gateway, "cat", "/proc/sys/net/netfilter/"+sysctl))
		if v, err := strconv.Atoi(out); err != nil || v < least {
			t.Errorf("%s = %q, want at least %d", sysctl, out, least)
		}
	}

	// The session view lists the flows, outbound and inbound.
	var ss []nat44.Session
	if err := g.api().Do("GET", "/api/v1/sessions", nil, &ss); err != nil {
		t.Fatal(err)
	}
	var out, in bool
	for _, s := range ss {
		out = out || (!s.Inbound && s.Internal.Addr() == lan1 && s.Remote == netip.AddrPortFrom(pub1, 80) && s.External.Addr() == wanAddr)
		in = in || (s.Inbound && s.Internal == netip.AddrPortFrom(lan1, 80) && s.External == netip.AddrPortFrom(wanAddr, 8080) && s.Remote.Addr() == pub1)
	}
	if !out || !in {
		t.Fatalf("sessions %+v: outbound seen %v, inbound seen %v; want both", ss, out, in)
	}
}

func TestUnsolicitedInboundDropped(t *testing.T) {
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 81))
	tcpServer(t, g.l, lab.Gateway, "0.0.0.0:2222") // a service of the router itself
	// Not mapped: nothing reaches the LAN host.
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 81))
	// The router's own services answer the LAN, never the WAN.
	wantTCP(t, g.l, lab.LAN1, hostPort(lab.LANAddr.Addr(), 2222), "gw saw")
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 2222))
	// Nor the control socket's HTTP API, which is not on the network at all.
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 80))
	// Dropped, not refused: no RST gives the WAN a port scan.
	var c net.Conn
	err := g.l.Do(lab.Public, func() (err error) {
		c, err = net.DialTimeout("tcp", hostPort(wanAddr, 81), 500*time.Millisecond)
		return err
	})
	if err == nil {
		c.Close()
		t.Fatal("connection to an unmapped port succeeded")
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("unmapped port refused (RST sent): %v; want a silent drop", err)
	}
}

// udpEndpoint is a UDP socket inside a lab host.
type udpEndpoint struct{ *net.UDPConn }

func udpSocket(t *testing.T, l *lab.Lab, host, addr string) udpEndpoint {
	t.Helper()
	var c *net.UDPConn
	err := l.Do(host, func() error {
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return udpEndpoint{c}
}

// recv returns the next datagram's text and source, or ok=false after d.
func (u udpEndpoint) recv(d time.Duration) (msg string, from netip.AddrPort, ok bool) {
	buf := make([]byte, 1500)
	u.SetReadDeadline(time.Now().Add(d))
	n, from, err := u.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", netip.AddrPort{}, false
	}
	return string(buf[:n]), from, true
}

func (u udpEndpoint) send(t *testing.T, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := u.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
}

// TestUDPFiltering observes each filtering mode from two public endpoints,
// RFC 5780 style: a LAN endpoint sends to pub1:3478; then pub1 from another
// port and pub2 send to the external endpoint that pub1 saw.
func TestUDPFiltering(t *testing.T) {
	cases := []struct {
		mode            nat44.Filtering
		samePort        bool // pub1:3478 answers (always)
		otherPort       bool // pub1:3479 gets in
		otherAddr       bool // pub2:3478 gets in
		waitFilterEntry bool
	}{
		{nat44.AddressAndPortDependent, true, false, false, false},
		{nat44.AddressDependent, true, true, false, true},
		{nat44.EndpointIndependent, true, true, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.mode.String(), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, "")
			cfg := strings.Replace(labgw.Config(g.l, ""), "address-and-port-dependent", tc.mode.String(), 1)
			g.writeConfig(cfg)
			g.signal(syscall.SIGHUP)
			eventually(t, "filtering reloaded", func() error {
				if f := g.status().NAT.Filtering; f != tc.mode {
					return fmt.Errorf("filtering is %v", f)
				}
				return nil
			})

			local := udpSocket(t, g.l, lab.LAN1, hostPort(lan1, 40000))
			p1 := udpSocket(t, g.l, lab.Public, hostPort(pub1, 3478))
			p1b := udpSocket(t, g.l, lab.Public, hostPort(pub1, 3479))
			p2 := udpSocket(t, g.l, lab.Public, hostPort(pub2, 3478))

			// Mapping: the same external endpoint towards both public
			// addresses (RFC 4787 REQ-1), with the port preserved.
			local.send(t, netip.MustParseAddrPort(hostPort(pub1, 3478)), "probe1")
			_, ext1, ok1 := p1.recv(2 * time.Second)
			local.send(t, netip.MustParseAddrPort(hostPort(pub2, 3478)), "probe2")
			_, ext2, ok2 := p2.recv(2 * time.Second)
			if !ok1 || !ok2 {
				t.Fatalf("probes did not get out: %v %v", ok1, ok2)
			}
			if ext1 != ext2 || ext1 != netip.AddrPortFrom(wanAddr, 40000) {
				t.Fatalf("mapping: pub1 saw %v, pub2 saw %v; want both %v:40000 (endpoint-independent, port preserved)", ext1, ext2, wanAddr)
			}
			// pub2 got a probe too, so for address-dependent filtering
			// send the "other address" probe from an address the LAN
			// endpoint never sent to: re-probe only pub1 in a fresh socket.
			if tc.waitFilterEntry {
				eventually(t, "filter entry from conntrack", func() error {
					if n := g.status().NAT.Filters; n == 0 {
						return errors.New("no filter entry yet")
					}
					return nil
				})
			}
			p1.send(t, ext1, "from pub1:3478")
			if _, _, ok := local.recv(2 * time.Second); ok != tc.samePort {
				t.Errorf("reply from the same endpoint arrived=%v, want %v", ok, tc.samePort)
			}
			p1b.send(t, ext1, "from pub1:3479")
			if _, _, ok := local.recv(time.Second); ok != tc.otherPort {
				t.Errorf("pub1 from another port arrived=%v, want %v", ok, tc.otherPort)
			}
			// A third endpoint, on an address the LAN endpoint never
			// contacted: use a second LAN socket whose only peer is pub1.
			local2 := udpSocket(t, g.l, lab.LAN1, hostPort(lan1, 40001))
			local2.send(t, netip.MustParseAddrPort(hostPort(pub1, 3478)), "probe3")
			_, ext3, ok := p1.recv(2 * time.Second)
			if !ok {
				t.Fatal("probe3 did not get out")
			}
			if tc.waitFilterEntry {
				eventually(t, "second filter entry", func() error {
					if n := g.status().NAT.Filters; n < 2 {
						return errors.New("no second filter entry yet")
					}
					return nil
				})
			}
			p2.send(t, ext3, "from pub2")
			if _, _, ok := local2.recv(time.Second); ok != tc.otherAddr {
				t.Errorf("another address arrived=%v, want %v", ok, tc.otherAddr)
			}
			if tc.mode != nat44.EndpointIndependent {
				return
			}
			// Two P2P peers behind this NAT reach each other at their
			// public endpoints (hairpin, RFC 4787 REQ-9), and the receiver
			// sees the sender's public endpoint.
			peer := udpSocket(t, g.l, lab.LAN2, hostPort(lan2, 40002))
			peer.send(t, netip.MustParseAddrPort(hostPort(pub1, 3478)), "probe4")
			_, extPeer, ok := p1.recv(2 * time.Second)
			if !ok {
				t.Fatal("probe4 did not get out")
			}
			eventually(t, "third filter entry", func() error {
				if n := g.status().NAT.Filters; n < 3 {
					return errors.New("no third filter entry yet")
				}
				return nil
			})
			peer.send(t, ext1, "hello peer")
			msg, from, ok := local.recv(2 * time.Second)
			if !ok || msg != "hello peer" || from != extPeer {
				t.Fatalf("hairpin: got %q from %v (ok=%v); want \"hello peer\" from %v", msg, from, ok, extPeer)
			}
		})
	}
}

func (g *gw) addMapping(req web.MappingRequest) {
	g.t.Helper()
	if err := g.api().Do("POST", "/api/v1/mappings", []web.MappingRequest{req}, nil); err != nil {
		g.t.Fatal(err)
	}
}

func TestMappingsSurviveKill9(t *testing.T) {
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN2, hostPort(lan2, 90))
	tcpServer(t, g.l, lab.LAN2, hostPort(lan2, 91))
	g.addMapping(web.MappingRequest{Proto: nat44.TCP, ExternalPort: 9000, Internal: netip.AddrPortFrom(lan2, 90), Lifetime: web.Seconds(time.Hour), Description: "timed"})
	g.addMapping(web.MappingRequest{Proto: nat44.TCP, ExternalPort: 9001, Internal: netip.AddrPortFrom(lan2, 91), Description: "permanent"})
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 9000), "lan2 saw")

	// A conflicting request changes nothing.
	err := g.api().Do("POST", "/api/v1/mappings", []web.MappingRequest{{Proto: nat44.TCP, ExternalPort: 9000, Internal: netip.AddrPortFrom(lan1, 90)}}, nil)
	if err == nil || !strings.Contains(err.Error(), "already mapped") {
		t.Fatalf("conflicting mapping: %v; want a conflict", err)
	}

	if err := g.l.Stop(labgw.Daemon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Whatever the killed daemon left in the kernel, the new one owns and
	// rebuilds it.
	g.mustRun(lab.Gateway, "nft", "flush", "map", "inet", nat44.TableName, "fwd4")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := labgw.Start(ctx, g.l, binary, g.cfg); err != nil {
		t.Fatal(err)
	}
	var ms []nat44.Mapping
	if err := g.api().Do("GET", "/api/v1/mappings", nil, &ms); err != nil {
		t.Fatal(err)
	}
	got := map[uint16]string{}
	for _, m := range ms {
		got[m.ExternalPort] = m.Internal.String() + " " + string(m.Owner)
	}
	want := map[uint16]string{8080: "192.168.1.10:80 static", 9000: "192.168.1.11:90 admin", 9001: "192.168.1.11:91 admin"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after kill -9 and restart: mappings %v, want %v", got, want)
	}
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 9000), "lan2 saw")
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 9001), "lan2 saw")
}

func TestWANAddressChange(t *testing.T) {
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 80))
	tcpServer(t, g.l, lab.Public, hostPort(pub1, 80))
	g.addMapping(web.MappingRequest{Proto: nat44.TCP, ExternalPort: 9000, Internal: netip.AddrPortFrom(lan1, 80)})

	newAddr := netip.MustParseAddr("203.0.113.3")
	g.mustRun(lab.Gateway, "ip", "addr", "del", lab.WANAddr.String(), "dev", lab.GatewayWAN)
	g.mustRun(lab.Gateway, "ip", "addr", "add", newAddr.String()+"/24", "dev", lab.GatewayWAN)
	g.mustRun(lab.Gateway, "ip", "route", "replace", "default", "via", lab.ISPWANAddr.Addr().String())
	eventually(t, "daemon follows the new address", func() error {
		if a := g.status().WANAddr; a != newAddr {
			return fmt.Errorf("daemon has %v", a)
		}
		return nil
	})
	// Mappings, static and dynamic, follow the new address; NAT out uses it.
	wantTCP(t, g.l, lab.Public, hostPort(newAddr, 8080), "lan1 saw "+pub1.String())
	wantTCP(t, g.l, lab.Public, hostPort(newAddr, 9000), "lan1 saw "+pub1.String())
	wantTCP(t, g.l, lab.LAN1, hostPort(pub1, 80), "pub saw "+newAddr.String())
	wantTCP(t, g.l, lab.LAN2, hostPort(newAddr, 8080), "lan1 saw "+newAddr.String())
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 8080))
}

func TestReloadAndShutdown(t *testing.T) {
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 80))
	tcpServer(t, g.l, lab.LAN2, hostPort(lan2, 22))

	// A bad file is refused and the running config stays.
	badLine := strings.Count(labgw.Config(g.l, ""), "\n") + 3
	g.writeConfig(labgw.Config(g.l, "\nconfig redirect\n\toption src_dport 'seventy'\n"))
	g.signal(syscall.SIGHUP)
	eventually(t, "reload refused in the log", func() error {
		b, _ := os.ReadFile(labgw.Log(g.l))
		if !strings.Contains(string(b), "reload refused") || !strings.Contains(string(b), fmt.Sprintf(`gateway.conf:%d: src_dport \"seventy\" is not a port number`, badLine)) {
			return fmt.Errorf("no 'reload refused' naming gateway.conf:%d yet", badLine)
		}
		return nil
	})
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 8080), "lan1 saw")

	// A good one takes effect: a new forward, and the old one gone.
	cfg := strings.Replace(labgw.Config(g.l, "\nconfig redirect\n\toption proto 'tcp'\n\toption src_dport '2222'\n\toption dest_ip '192.168.1.11'\n\toption dest_port '22'\n"),
		"option src_dport '8080'", "option src_dport '8081'", 1)
	g.writeConfig(cfg)
	g.signal(syscall.SIGHUP)
	eventually(t, "new forward", func() error {
		_, err := tcpGet(g.l, lab.Public, hostPort(wanAddr, 2222))
		return err
	})
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 8081), "lan1 saw")
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 8080))

	// Someone else flushes our table (as a firewall reload would): the
	// daemon puts it back.
	g.mustRun(lab.Gateway, "nft", "flush", "table", "inet", nat44.TableName)
	eventually(t, "table rebuilt after a flush", func() error {
		_, err := tcpGet(g.l, lab.Public, hostPort(wanAddr, 2222))
		return err
	})

	// SIGTERM: a clean exit that leaves nothing in the kernel.
	if err := g.l.Stop(labgw.Daemon, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if out, err := g.run(lab.Gateway, "nft", "list", "table", "inet", nat44.TableName); err == nil {
		t.Fatalf("table still there after SIGTERM:\n%s", out)
	}
	b, _ := os.ReadFile(labgw.Log(g.l))
	if !strings.Contains(string(b), "gateway stopped") {
		t.Fatalf("no clean stop in the log:\n%s", labgw.Tail(b, 10))
	}
}

func daemonAlive(st lab.Status) bool {
	for _, h := range st.Hosts {
		for _, p := range h.Processes {
			if p.Name == labgw.Daemon && p.Alive {
				return true
			}
		}
	}
	return false
}

// daemonB returns the pid of site B's daemon in a lab status, if it runs.
func daemonB(st lab.Status) (int, bool) {
	for _, h := range st.Hosts {
		for _, p := range h.Processes {
			if h.Name == lab.GatewayB && p.Name == labgw.SiteB.Daemon && p.Alive {
				return p.PID, true
			}
		}
	}
	return 0, false
}

// TestLabCLI drives the lab the way a user does, through the binary.
func TestLabCLI(t *testing.T) {
	labtest.Skip(t)
	testenv.Tool(t, "udhcpc", "udhcpc")
	name := fmt.Sprintf("c%06x", time.Now().UnixNano()&0xffffff)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binary, args...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("lab", "down", "--name", name) })
	if out, err := run("lab", "up", "--name", name, "--http-port", "0"); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	pid := func() string {
		b, _ := os.ReadFile(filepath.Join("/run/gateway-lab", name, "pids", labgw.Daemon))
		return strings.TrimSpace(string(b))
	}
	first := pid()
	// Idempotent: a second up keeps the running lab and its daemon.
	if out, err := run("lab", "up", "--name", name, "--http-port", "0"); err != nil {
		t.Fatalf("second lab up: %v\n%s", err, out)
	}
	if again := pid(); again != first || first == "" {
		t.Errorf("daemon pid %q after the second up, was %q; want it kept", again, first)
	}
	out, err := run("lab", "status", "--name", name, "--json")
	if err != nil {
		t.Fatalf("lab status: %v\n%s", err, out)
	}
	var st labgw.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("lab status --json: %v\n%s", err, out)
	}
	roles := map[string]string{}
	leases := map[string]netip.Addr{}
	for _, h := range st.Hosts {
		roles[h.Name] = h.Role
		if h.Lease != nil && h.Lease.Held {
			leases[h.Name] = h.Lease.Addr.Addr()
		}
	}
	if !st.Up || !st.Ready || roles["gw"] != "gateway" || roles["pub"] != "public" || roles["lan1"] != "lan" || !daemonAlive(st.Status) {
		t.Fatalf("lab status: up=%v ready=%v (%q) roles=%v daemon=%v", st.Up, st.Ready, st.NotReady, roles, daemonAlive(st.Status))
	}
	if leases[lab.LAN1] != lan1 || leases[lab.LAN2] != lan2 {
		t.Errorf("lab status: leases %v; want lan1 %v and lan2 %v", leases, lan1, lan2)
	}
	if l, ok := labgw.Lease(st.Leases, lab.LAN2MAC); !ok || l.Addr != lan2 || l.Hostname != lab.LAN2 {
		t.Errorf("the daemon's lease for lan2: %+v (%v); want %v named lan2", l, ok, lan2)
	}
	// Site B runs too, with its own daemon, socket and leases.
	if leases[lab.LANB] != lab.LANBAddr.Addr() || roles[lab.GatewayB] != "gateway" || roles[lab.Relay] != "relay" {
		t.Errorf("lab status: leases %v, roles %v; want lanb %v, gwb a gateway, rly a relay", leases, roles, lab.LANBAddr.Addr())
	}
	if b := st.SiteB; b == nil || b.Gateway == nil || b.Gateway.WANAddr != lab.SiteBWANAddr.Addr() || b.Socket == st.Socket {
		t.Errorf("lab status: site B %+v; want its daemon answering with WAN %v on a socket of its own", b, lab.SiteBWANAddr.Addr())
	} else if l, ok := labgw.Lease(b.Leases, lab.LANBMAC); !ok || l.Addr != lab.LANBAddr.Addr() {
		t.Errorf("site B's daemon's lease for lanb: %+v (%v); want %v", l, ok, lab.LANBAddr.Addr())
	}
	out, err = run("lab", "exec", "--name", name, "lan1", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(out, lan1.String()) {
		t.Fatalf("lab exec: %v\n%s", err, out)
	}
	pidB := 0
	if p, ok := daemonB(st.Status); ok {
		pidB = p
	} else {
		t.Errorf("lab status: no live site B daemon in gwb")
	}
	out, err = run("lab", "status", "--name", name)
	if err != nil || !strings.Contains(out, "ready=true") || !strings.Contains(out, "192.168.1.11 until") ||
		!strings.Contains(out, "192.168.2.10 until") || !strings.Contains(out, "gateway gwb (site b): ") {
		t.Fatalf("lab status: %v\n%s", err, out)
	}
	out, err = run("status", "-s", "/run/gateway-lab/"+name+"/gateway.sock")
	if err != nil || !strings.Contains(out, `"wan_kind": "public"`) {
		t.Fatalf("gateway status: %v\n%s", err, out)
	}
	if out, err := run("lab", "down", "--name", name); err != nil {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(out), "gwl-"+name+"-") {
		t.Fatalf("namespaces left after lab down:\n%s", out)
	}
	if pidB > 0 && syscall.Kill(pidB, 0) == nil {
		t.Errorf("site B's daemon (pid %d) runs after lab down", pidB)
	}
}

// TestRespawnAfterKill9: under the lab's respawner, as under procd on a
// router, a daemon killed with SIGKILL is back within seconds, with its
// mappings, and the LAN hosts keep their leases.
func TestRespawnAfterKill9(t *testing.T) {
	l := labtest.New(t)
	cfg := labgw.ConfigPath(l)
	if err := os.WriteFile(cfg, []byte(labgw.Config(l, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := labgw.Up(ctx, l, binary, cfg); err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, l: l, cfg: cfg}
	tcpServer(t, l, lab.LAN2, hostPort(lan2, 90))
	g.addMapping(web.MappingRequest{Proto: nat44.TCP, ExternalPort: 9000, Internal: netip.AddrPortFrom(lan2, 90), Lifetime: web.Seconds(time.Hour), Description: "timed"})
	wantTCP(t, l, lab.Public, hostPort(wanAddr, 9000), "lan2 saw")

	before, ok := l.Process(labgw.Daemon)
	if !ok || !before.Alive {
		t.Fatalf("daemon: %+v, %v", before, ok)
	}
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 5*time.Second, "the daemon is back", func() error {
		p, ok := l.Process(labgw.Daemon)
		if !ok || !p.Alive || p.PID == before.PID {
			return fmt.Errorf("daemon %+v", p)
		}
		if p.Restarts != 1 {
			return fmt.Errorf("restarts %d, want 1", p.Restarts)
		}
		return labgw.Wait(ctx, l, cfg)
	})
	var ms []nat44.Mapping
	if err := g.api().Do("GET", "/api/v1/mappings", nil, &ms); err != nil {
		t.Fatal(err)
	}
	got := map[uint16]string{}
	for _, m := range ms {
		got[m.ExternalPort] = m.Internal.String() + " " + string(m.Owner)
	}
	want := map[uint16]string{8080: "192.168.1.10:80 static", 9000: "192.168.1.11:90 admin"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after kill -9 and respawn: mappings %v, want %v", got, want)
	}
	wantTCP(t, l, lab.Public, hostPort(wanAddr, 9000), "lan2 saw")
	if st := labgw.Read(l); !st.Ready {
		t.Errorf("after the respawn the lab is not ready: %q", st.NotReady)
	}
	b, _ := os.ReadFile(labgw.Log(l))
	if !strings.Contains(string(b), "lab: respawn gateway: signal: killed") {
		t.Errorf("no respawn in the log:\n%s", labgw.Tail(b, 20))
	}
}

// TestIPv6 checks the lab's IPv6 with the gateway running: the public
// host reaches the gateway's WAN, and the LAN hosts reach the public host.
func TestIPv6(t *testing.T) {
	g := startGateway(t, "")
	testenv.Tool(t, "busybox", "busybox")
	g.mustRun(lab.Public, "busybox", "ping", "-6", "-c", "1", "-W", "2", lab.WANAddr6.Addr().String())
	pub6 := lab.PublicAddrs6[0].Addr()
	tcpServer(t, g.l, lab.Public, hostPort(pub6, 80))
	// No NAT for IPv6: pub sees the LAN host's own address.
	wantTCP(t, g.l, lab.LAN1, hostPort(pub6, 80), "pub saw ["+lab.LAN1Addr6.Addr().String()+"]:")
	wantTCP(t, g.l, lab.LAN2, hostPort(pub6, 80), "pub saw ["+lab.LAN2Addr6.Addr().String()+"]:")
}
