//go:build linux && !nolab

package gateway_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/huin/goupnp/dcps/internetgateway2"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
	"gateway/nat44"
)

var descURL = fmt.Sprintf("http://%s:%d/rootDesc.xml", lab.LANAddr.Addr(), labgw.UPnPPort)

// upnpc runs miniupnpc's upnpc in host against the lab's gateway.
func (g *gw) upnpc(host string, args ...string) string {
	g.t.Helper()
	testenv.Tool(g.t, "upnpc", "miniupnpc")
	out, _ := g.run(host, append([]string{"upnpc", "-u", descURL}, args...)...)
	return out
}

// TestUPnPUpnpc drives the gateway with miniupnpc's upnpc from lan1:
// external address, add, list, traffic through the mapping from the
// internet and from lan2 (hairpin), delete; a mapping for another host
// is refused.
func TestUPnPUpnpc(t *testing.T) {
	testenv.Root(t)
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 7000))
	var out string
	eventually(t, "upnpc sees the external address", func() error {
		out = g.upnpc(lab.LAN1, "-s")
		if !strings.Contains(out, "ExternalIPAddress = "+wanAddr.String()) {
			return fmt.Errorf("upnpc -s:\n%s", out)
		}
		return nil
	})
	out = g.upnpc(lab.LAN1, "-e", "upnpc test", "-a", lan1.String(), "7000", "7000", "TCP")
	if !strings.Contains(out, "is redirected to internal "+lan1.String()+":7000") {
		t.Fatalf("upnpc -a:\n%s", out)
	}
	if out = g.upnpc(lab.LAN1, "-l"); !strings.Contains(out, "TCP  7000->"+lan1.String()+":7000") {
		t.Fatalf("upnpc -l:\n%s", out)
	}
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 7000), "lan1 saw")
	wantTCP(t, g.l, lab.LAN2, hostPort(wanAddr, 7000), "lan1 saw") // hairpin
	var ms []nat44.Mapping
	if err := g.api().Do("GET", "/api/v1/mappings", nil, &ms); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		found = found || (m.ExternalPort == 7000 && m.Owner == nat44.OwnerUPnP && m.Description == "upnpc test")
	}
	if !found {
		t.Fatalf("mapping not in the API: %+v", ms)
	}

	// Secure mode: lan2 cannot map a port to lan1.
	out = g.upnpc(lab.LAN2, "-a", lan1.String(), "7001", "7001", "TCP")
	if !strings.Contains(out, "606") {
		t.Fatalf("mapping for another host: want 606, got\n%s", out)
	}
	// Nor delete lan1's mapping.
	out = g.upnpc(lab.LAN2, "-d", "7000", "TCP")
	if !strings.Contains(out, "606") {
		t.Fatalf("deleting another host's mapping: want 606, got\n%s", out)
	}

	out = g.upnpc(lab.LAN1, "-d", "7000", "TCP")
	if strings.Contains(out, "failed") {
		t.Fatalf("upnpc -d:\n%s", out)
	}
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 7000))
	st := g.status()
	if st.UPnP["soap_ok"] == 0 || st.UPnP["fault_secure_mode"] != 1 {
		t.Errorf("counters: %v", st.UPnP)
	}
	// upnpc's calls all succeed but the expected refusals: -l ends at 713.
	for k, v := range st.UPnP {
		if strings.HasPrefix(k, "fault_") && k != "fault_secure_mode" && k != "fault_not_owner" && k != "fault_index_invalid" {
			t.Errorf("unexpected fault %s: %d (counters %v)", k, v, st.UPnP)
		}
	}
}

// TestUPnPNotOnWAN: from the internet, neither HTTP to the gateway's
// addresses nor an M-SEARCH gets an answer.
func TestUPnPNotOnWAN(t *testing.T) {
	testenv.Root(t)
	g := startGateway(t, "")
	eventually(t, "UPnP up", func() error {
		if out := g.upnpc(lab.LAN1, "-s"); !strings.Contains(out, "ExternalIPAddress") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	for _, addr := range []string{hostPort(wanAddr, labgw.UPnPPort), hostPort(lab.LANAddr.Addr(), labgw.UPnPPort),
		hostPort(lab.WANAddr6.Addr(), labgw.UPnPPort), hostPort(lab.LANAddr6.Addr(), labgw.UPnPPort)} {
		if _, err := tcpGet(g.l, lab.Public, addr); err == nil {
			t.Errorf("pub reached %s", addr)
		}
	}
	var c *net.UDPConn
	if err := g.l.Do(lab.Public, func() (err error) { c, err = net.ListenUDP("udp4", nil); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msearch := "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n"
	for _, dst := range []string{hostPort(wanAddr, 1900), "239.255.255.250:1900"} {
		a, _ := net.ResolveUDPAddr("udp4", dst)
		c.WriteToUDP([]byte(msearch), a)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, from, err := c.ReadFromUDP(make([]byte, 2048)); err == nil {
		t.Fatalf("M-SEARCH from the WAN answered by %v (%d bytes)", from, n)
	}
	// The same M-SEARCH from the LAN is answered.
	if err := g.l.Do(lab.LAN1, func() (err error) { c, err = net.ListenUDP("udp4", nil); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, _ := net.ResolveUDPAddr("udp4", "239.255.255.250:1900")
	c.WriteToUDP([]byte(msearch), a)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := c.ReadFromUDP(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "LOCATION: http://192.168.1.1:5000/") {
		t.Fatalf("M-SEARCH from lan1: %q, %v", buf[:n], err)
	}
}

// inLAN1 makes every HTTP dial of this process go from lan1's namespace.
func inLAN1(t *testing.T, l *lab.Lab) {
	old := http.DefaultTransport
	http.DefaultTransport = &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = l.Do(lab.LAN1, func() error {
			c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	t.Cleanup(func() { http.DefaultTransport = old })
}

// TestUPnPGoupnp drives the gateway with goupnp's IGDv1 and IGDv2
// clients, found by SSDP in lan1.
func TestUPnPGoupnp(t *testing.T) {
	testenv.Root(t)
	g := startGateway(t, "")
	inLAN1(t, g.l)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var v1 []*internetgateway2.WANIPConnection1
	var v2 []*internetgateway2.WANIPConnection2
	eventually(t, "goupnp finds the IGD", func() error {
		return g.l.Do(lab.LAN1, func() (err error) {
			if v1, _, err = internetgateway2.NewWANIPConnection1ClientsCtx(ctx); err != nil {
				return err
			}
			if v2, _, err = internetgateway2.NewWANIPConnection2ClientsCtx(ctx); err != nil {
				return err
			}
			if len(v1) == 0 || len(v2) == 0 {
				return fmt.Errorf("found %d v1 and %d v2 clients", len(v1), len(v2))
			}
			return nil
		})
	})
	c1, c2 := v1[0], v2[0]
	if ip, err := c1.GetExternalIPAddress(); err != nil || ip != wanAddr.String() {
		t.Errorf("v1 GetExternalIPAddress = %q, %v", ip, err)
	}
	if ip, err := c2.GetExternalIPAddress(); err != nil || ip != wanAddr.String() {
		t.Errorf("v2 GetExternalIPAddress = %q, %v", ip, err)
	}
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 7100))
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 7200))
	if err := c1.AddPortMapping("", 7100, "TCP", 7100, lan1.String(), true, "goupnp v1", 0); err != nil {
		t.Fatalf("v1 AddPortMapping: %v", err)
	}
	if err := c2.AddPortMapping("", 7200, "tcp", 7200, lan1.String(), true, "goupnp v2", 3600); err != nil {
		t.Fatalf("v2 AddPortMapping: %v", err)
	}
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 7100), "lan1 saw")
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 7200), "lan1 saw")
	// v1: a taken port is 718; v2 AddAnyPortMapping grants another.
	if err := c1.AddPortMapping("", 7200, "TCP", 7300, lan1.String(), true, "x", 0); err == nil || !strings.Contains(err.Error(), "718") {
		t.Errorf("v1 AddPortMapping of a taken port: %v, want 718", err)
	}
	if p, err := c2.AddAnyPortMapping("", 7200, "TCP", 7300, lan1.String(), true, "any", 0); err != nil || p == 7200 || p == 0 {
		t.Errorf("v2 AddAnyPortMapping of a taken port = %d, %v", p, err)
	}
	if _, _, _, _, _, err := c1.GetSpecificPortMappingEntry("", 7100, "TCP"); err != nil {
		t.Errorf("v1 GetSpecificPortMappingEntry: %v", err)
	}
	if _, _, _, _, _, _, _, _, err := c1.GetGenericPortMappingEntry(0); err != nil {
		t.Errorf("v1 GetGenericPortMappingEntry: %v", err)
	}
	list, err := c2.GetListOfPortMappings(1, 65535, "TCP", false, 0)
	if err != nil || strings.Count(list, "<p:PortMappingEntry>") != 3 {
		t.Errorf("v2 GetListOfPortMappings = %s, %v", list, err)
	}
	if _, _, _, err := c2.GetStatusInfo(); err != nil {
		t.Errorf("v2 GetStatusInfo: %v", err)
	}
	if err := c1.DeletePortMapping("", 7100, "TCP"); err != nil {
		t.Errorf("v1 DeletePortMapping: %v", err)
	}
	if err := c2.DeletePortMappingRange(7000, 65535, "TCP", false); err != nil {
		t.Errorf("v2 DeletePortMappingRange: %v", err)
	}
	if err := c2.DeletePortMapping("", 7200, "TCP"); err == nil || !strings.Contains(err.Error(), "714") {
		t.Errorf("v2 DeletePortMapping of a deleted mapping: %v, want 714", err)
	}
	wantNoTCP(t, g.l, lab.Public, hostPort(wanAddr, 7200))
}

// TestUPnPMappingsSurviveKill9: a UPnP mapping is back after kill -9 and
// a restart.
func TestUPnPMappingsSurviveKill9(t *testing.T) {
	testenv.Root(t)
	g := startGateway(t, "")
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 7400))
	eventually(t, "upnpc add", func() error {
		if out := g.upnpc(lab.LAN1, "-a", lan1.String(), "7400", "7400", "TCP", "3600"); !strings.Contains(out, "is redirected") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	if err := g.l.Stop(labgw.Daemon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := labgw.Start(ctx, g.l, binary, g.cfg); err != nil {
		t.Fatal(err)
	}
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 7400), "lan1 saw")
	eventually(t, "upnpc lists it", func() error {
		if out := g.upnpc(lab.LAN1, "-l"); !strings.Contains(out, "7400->"+lan1.String()) {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
}
