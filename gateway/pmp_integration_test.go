//go:build linux && !nolab

package gateway_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	natpmpclient "github.com/jackpal/go-nat-pmp"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
	"gateway/nat44"
	"gateway/upnp/natpmp"
	"gateway/upnp/pcp"
	"gateway/web"
)

var (
	lanGW  = lab.LANAddr.Addr()
	lanGW6 = lab.LANAddr6.Addr()
	lan16  = lab.LAN1Addr6.Addr()
)

// mappingsOf lists the daemon's mappings by external port: "internal owner".
func (g *gw) mappingsOf() map[nat44.Key]string {
	g.t.Helper()
	var ms []nat44.Mapping
	if err := g.api().Do("GET", "/api/v1/mappings", nil, &ms); err != nil {
		g.t.Fatal(err)
	}
	out := map[nat44.Key]string{}
	for _, m := range ms {
		out[m.Key()] = m.Internal.String() + " " + string(m.Owner)
	}
	return out
}

// TestNATPMPClients drives the daemon with libnatpmp's natpmpc and with
// go-nat-pmp from a LAN host: the external address, TCP and UDP mappings
// that public traffic goes through, deletion; a mapping blocks its port for
// the API; nothing answers a request from the WAN side.
func TestNATPMPClients(t *testing.T) {
	natpmpc := testenv.Tool(t, "natpmpc", "natpmpc")
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 81))
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 82))

	out := g.mustRun(lab.LAN1, natpmpc, "-g", lanGW.String())
	if !strings.Contains(out, "Public IP address : "+wanAddr.String()) {
		t.Fatalf("natpmpc: no public address:\n%s", out)
	}
	out = g.mustRun(lab.LAN1, natpmpc, "-g", lanGW.String(), "-a", "9100", "81", "tcp", "3600")
	if !strings.Contains(out, "Mapped public port 9100 protocol TCP to local port 81") {
		t.Fatalf("natpmpc -a tcp:\n%s", out)
	}
	out = g.mustRun(lab.LAN1, natpmpc, "-g", lanGW.String(), "-a", "9101", "5000", "udp", "3600")
	if !strings.Contains(out, "Mapped public port 9101 protocol UDP to local port 5000") {
		t.Fatalf("natpmpc -a udp:\n%s", out)
	}
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 9100), "lan1 saw "+pub1.String())
	ms := g.mappingsOf()
	if ms[nat44.Key{Proto: nat44.UDP, ExternalPort: 9101}] != "192.168.1.10:5000 natpmp" {
		t.Fatalf("mappings %v", ms)
	}

	// go-nat-pmp, whose sockets live in lan1.
	var ext *natpmpclient.GetExternalAddressResult
	var add *natpmpclient.AddPortMappingResult
	err := g.l.Do(lab.LAN1, func() error {
		c := natpmpclient.NewClientWithTimeout(lanGW.AsSlice(), 3*time.Second)
		var err error
		if ext, err = c.GetExternalAddress(); err != nil {
			return err
		}
		add, err = c.AddPortMapping("tcp", 82, 9102, 3600)
		return err
	})
	if err != nil {
		t.Fatalf("go-nat-pmp: %v", err)
	}
	if netip.AddrFrom4(ext.ExternalIPAddress) != wanAddr || add.MappedExternalPort != 9102 || add.PortMappingLifetimeInSeconds != 3600 {
		t.Fatalf("go-nat-pmp: %+v %+v", ext, add)
	}
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 9102), "lan1 saw "+pub1.String())

	// The mapping's port is not the API's to take.
	err = g.api().Do("POST", "/api/v1/mappings", []web.MappingRequest{{Proto: nat44.TCP, ExternalPort: 9102, Internal: netip.AddrPortFrom(lan2, 90)}}, nil)
	if err == nil || !strings.Contains(err.Error(), "already mapped") {
		t.Fatalf("API mapping over a NAT-PMP port: %v; want a conflict", err)
	}
	// Nor lan2's by NAT-PMP: it gets another port.
	out = g.mustRun(lab.LAN2, natpmpc, "-g", lanGW.String(), "-a", "9102", "82", "tcp", "3600")
	if strings.Contains(out, "Mapped public port 9102 ") || !strings.Contains(out, "Mapped public port") {
		t.Fatalf("lan2 asking for lan1's port:\n%s", out)
	}

	// Delete.
	g.mustRun(lab.LAN1, natpmpc, "-g", lanGW.String(), "-a", "9100", "81", "tcp", "0")
	if _, ok := g.mappingsOf()[nat44.Key{Proto: nat44.TCP, ExternalPort: 9100}]; ok {
		t.Fatal("deleted mapping still listed")
	}
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 9100))

	// From the WAN side: nothing, on the WAN address or on the LAN's IPv6
	// address (routed to the gateway).
	for _, to := range []netip.AddrPort{netip.AddrPortFrom(wanAddr, 5351), netip.AddrPortFrom(lanGW6, 5351)} {
		if b, ok := udpAsk(t, g.l, lab.Public, to, []byte{0, 0}, time.Second); ok {
			t.Errorf("a request from the internet to %v was answered: %x", to, b)
		}
	}
	if st := g.status(); st.PMP["natpmp_requests"] == 0 {
		t.Errorf("status counters: %v", st.PMP)
	}
}

// udpAsk sends b from host to to and returns the first answer.
func udpAsk(t *testing.T, l *lab.Lab, host string, to netip.AddrPort, b []byte, wait time.Duration) ([]byte, bool) {
	t.Helper()
	network := "udp4"
	if to.Addr().Is6() {
		network = "udp6"
	}
	var c net.PacketConn
	if err := l.Do(host, func() (err error) { c, err = net.ListenPacket(network, ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteTo(b, net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(wait))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return nil, false
	}
	return buf[:n], true
}

// epochOf asks the daemon for the NAT-PMP epoch from lan1.
func epochOf(t *testing.T, g *gw) time.Duration {
	t.Helper()
	b, ok := udpAsk(t, g.l, lab.LAN1, netip.AddrPortFrom(lanGW, 5351), []byte{0, 0}, 2*time.Second)
	if !ok {
		t.Fatal("no NAT-PMP answer")
	}
	r, err := natpmp.ParseResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r.Epoch
}

// TestNATPMPRestart: mappings survive kill -9 and a restart, and the epoch
// goes on; when the state is lost, the epoch starts again.
func TestNATPMPRestart(t *testing.T) {
	natpmpc := testenv.Tool(t, "natpmpc", "natpmpc")
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 81))
	g.mustRun(lab.LAN1, natpmpc, "-g", lanGW.String(), "-a", "9200", "81", "tcp", "3600")
	time.Sleep(2 * time.Second) // let the epoch grow
	before := epochOf(t, g)

	restart := func() {
		t.Helper()
		if err := g.l.Stop(labgw.Daemon, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := labgw.Start(ctx, g.l, binary, g.cfg); err != nil {
			t.Fatal(err)
		}
	}
	restart()
	if got := g.mappingsOf()[nat44.Key{Proto: nat44.TCP, ExternalPort: 9200}]; got != "192.168.1.10:81 natpmp" {
		t.Fatalf("after kill -9: %q", got)
	}
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 9200), "lan1 saw")
	var after time.Duration
	eventually(t, "NAT-PMP after restart", func() error {
		b, ok := udpAsk(t, g.l, lab.LAN1, netip.AddrPortFrom(lanGW, 5351), []byte{0, 0}, time.Second)
		if !ok {
			return fmt.Errorf("no answer")
		}
		r, _ := natpmp.ParseResponse(b)
		after = r.Epoch
		return nil
	})
	if after < before {
		t.Errorf("epoch went back from %v to %v though the state was kept", before, after)
	}

	// State lost: the epoch restarts, and the mapping is gone.
	if err := g.l.Stop(labgw.Daemon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(g.l.Dir, "state")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := labgw.Start(ctx, g.l, binary, g.cfg); err != nil {
		t.Fatal(err)
	}
	var reset time.Duration
	eventually(t, "NAT-PMP after state loss", func() error {
		b, ok := udpAsk(t, g.l, lab.LAN1, netip.AddrPortFrom(lanGW, 5351), []byte{0, 0}, time.Second)
		if !ok {
			return fmt.Errorf("no answer")
		}
		r, _ := natpmp.ParseResponse(b)
		reset = r.Epoch
		return nil
	})
	if reset >= after {
		t.Errorf("epoch %v after the state was lost; want it below %v", reset, after)
	}
	if _, ok := g.mappingsOf()[nat44.Key{Proto: nat44.TCP, ExternalPort: 9200}]; ok {
		t.Error("mapping back though the state was lost")
	}
}

// listenAnnounce joins the all-hosts group on lan1 at port 5350.
func listenAnnounce(t *testing.T, l *lab.Lab, six bool) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := l.Do(lab.LAN1, func() error {
		ifi, err := net.InterfaceByName(lab.HostIf)
		if err != nil {
			return err
		}
		network, group := "udp4", netip.MustParseAddrPort("224.0.0.1:5350")
		if six {
			network, group = "udp6", netip.MustParseAddrPort("[ff02::1]:5350")
		}
		c, err = net.ListenMulticastUDP(network, ifi, net.UDPAddrFromAddrPort(group))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAnnouncements: after a WAN address change a LAN host hears the
// NAT-PMP announcement with the new address, and PCP's ANNOUNCE over IPv4
// and IPv6.
func TestAnnouncements(t *testing.T) {
	g := startGateway(t, "")
	c4, c6 := listenAnnounce(t, g.l, false), listenAnnounce(t, g.l, true)

	newAddr := netip.MustParseAddr("203.0.113.3")
	g.mustRun(lab.Gateway, "ip", "addr", "del", lab.WANAddr.String(), "dev", lab.GatewayWAN)
	g.mustRun(lab.Gateway, "ip", "addr", "add", newAddr.String()+"/24", "dev", lab.GatewayWAN)

	deadline := time.Now().Add(10 * time.Second)
	var gotNATPMP, gotPCP4 bool
	buf := make([]byte, 1500)
	for !(gotNATPMP && gotPCP4) && time.Now().Before(deadline) {
		c4.SetReadDeadline(deadline)
		n, from, err := c4.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		if from.Addr().Unmap() != lanGW || from.Port() != 5351 {
			t.Errorf("announcement from %v", from)
		}
		switch buf[0] {
		case natpmp.Version:
			r, err := natpmp.ParseResponse(buf[:n])
			if err == nil && r.ExternalAddr == newAddr {
				gotNATPMP = true
			}
		case pcp.Version:
			r, err := pcp.ParseResponse(buf[:n])
			gotPCP4 = err == nil && r.Opcode == pcp.OpAnnounce && r.Result == pcp.Success
		}
	}
	if !gotNATPMP || !gotPCP4 {
		t.Fatalf("after the WAN change: NAT-PMP announcement of %v %v, PCP ANNOUNCE %v", newAddr, gotNATPMP, gotPCP4)
	}
	c6.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := c6.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no PCP ANNOUNCE on [ff02::1]:5350: %v", err)
	}
	if r, err := pcp.ParseResponse(buf[:n]); err != nil || r.Opcode != pcp.OpAnnounce {
		t.Fatalf("IPv6 ANNOUNCE: %+v %v", r, err)
	}
}

// pcpAsk sends req (with its client address filled in) from lan1 to the
// gateway's address of the same family and returns the answer.
func pcpAsk(t *testing.T, g *gw, host string, client netip.Addr, req pcp.Request) pcp.Response {
	t.Helper()
	req.ClientAddr = client
	b, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	to := netip.AddrPortFrom(lanGW, 5351)
	if client.Is6() {
		to = netip.AddrPortFrom(lanGW6, 5351)
	}
	out, ok := udpAsk(t, g.l, host, to, b, 3*time.Second)
	if !ok {
		t.Fatalf("PCP %v: no answer", req.Opcode)
	}
	r, err := pcp.ParseResponse(out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func pcpMap(nonce byte, proto nat44.Proto, internal, ext uint16, life time.Duration, opts ...pcp.Option) pcp.Request {
	return pcp.Request{Opcode: pcp.OpMap, Lifetime: life, Options: opts,
		Map: &pcp.Map{Nonce: [12]byte{nonce}, Protocol: uint8(proto), InternalPort: internal, ExternalPort: ext, ExternalAddr: netip.IPv4Unspecified()}}
}

// TestPCPClient drives the daemon with our own PCP client: MAP with
// traffic through it, a nonce mismatch, THIRD_PARTY refused, PEER, and an
// IPv6 MAP that opens a pinhole for a connection from the internet.
func TestPCPClient(t *testing.T) {
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 83))
	tcpServer(t, g.l, lab.LAN1, hostPort(lan16, 84))

	r := pcpAsk(t, g, lab.LAN1, lan1, pcpMap(1, nat44.TCP, 83, 9300, time.Hour))
	if r.Result != pcp.Success || r.Map.ExternalPort != 9300 || r.Map.ExternalAddr != wanAddr || r.Map.Nonce != [12]byte{1} {
		t.Fatalf("MAP: %v %+v", r.Result, r.Map)
	}
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 9300), "lan1 saw "+pub1.String())

	if r := pcpAsk(t, g, lab.LAN1, lan1, pcpMap(2, nat44.TCP, 83, 9300, time.Hour)); r.Result != pcp.NotAuthorized {
		t.Errorf("renewal with another nonce: %v", r.Result)
	}
	if r := pcpAsk(t, g, lab.LAN1, lan1, pcpMap(2, nat44.TCP, 83, 0, 0)); r.Result != pcp.NotAuthorized {
		t.Errorf("delete with another nonce: %v", r.Result)
	}
	if r := pcpAsk(t, g, lab.LAN2, lan2, pcpMap(3, nat44.TCP, 83, 9301, time.Hour, pcp.ThirdPartyOption(lan1))); r.Result != pcp.NotAuthorized {
		t.Errorf("THIRD_PARTY: %v", r.Result)
	}
	peer := pcp.Request{Opcode: pcp.OpPeer, Lifetime: time.Hour, Peer: &pcp.Peer{
		Map:            pcp.Map{Nonce: [12]byte{4}, Protocol: 17, InternalPort: 5004, ExternalAddr: netip.IPv4Unspecified()},
		RemotePeerPort: 3478, RemotePeerAddr: pub1}}
	if r := pcpAsk(t, g, lab.LAN1, lan1, peer); r.Result != pcp.Success || r.Peer.ExternalAddr != wanAddr || r.Peer.ExternalPort == 0 {
		t.Errorf("PEER: %v %+v", r.Result, r.Peer)
	}
	// Deleted with its nonce: the port closes.
	if r := pcpAsk(t, g, lab.LAN1, lan1, pcpMap(1, nat44.TCP, 83, 0, 0)); r.Result != pcp.Success {
		t.Errorf("delete: %v", r.Result)
	}
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 9300))

	// IPv6: a pinhole.
	wantNoTCP(t, g.l, lab.Public, hostPort(lan16, 84))
	r = pcpAsk(t, g, lab.LAN1, lan16, pcp.Request{Opcode: pcp.OpMap, Lifetime: time.Hour,
		Map: &pcp.Map{Nonce: [12]byte{6}, Protocol: 6, InternalPort: 84, ExternalAddr: netip.IPv6Unspecified()}})
	if r.Result != pcp.Success || r.Map.ExternalAddr != lan16 || r.Map.ExternalPort != 84 {
		t.Fatalf("IPv6 MAP: %v %+v", r.Result, r.Map)
	}
	wantTCP(t, g.l, lab.Public, hostPort(lan16, 84), "lan1 saw [2001:db8:100::")
	if st := g.status(); st.PMP["pcp_requests"] == 0 {
		t.Errorf("status counters: %v", st.PMP)
	}
}
