//go:build linux && !nolab

package gateway_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/dhcp"
	"gateway/gateway/client"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
)

// TestTwoSites runs both sites' daemons under their respawners, as `gateway
// lab up` does, and checks what the IPv6 tests build on: site B's LAN
// host gets its reserved address from gwb's daemon and reaches the
// internet through gwb's NAT; site A reaches it through both NATs by
// gwb's static forward; the relay host has native IPv6 and the ISP routes
// 6to4 space to it.
func TestTwoSites(t *testing.T) {
	testenv.Tool(t, "udhcpc", "udhcpc")
	testenv.Tool(t, "busybox", "busybox")
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range labgw.Sites {
		cfg := s.ConfigPath(l)
		if err := os.WriteFile(cfg, []byte(s.Config(l, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(s.Log(l))
				t.Logf("site %s's gateway log:\n%s", s.Name, labgw.Tail(b, 30))
			}
		})
		if err := s.Up(ctx, l, binary, cfg); err != nil {
			t.Fatalf("site %s: %v", s.Name, err)
		}
	}
	if labgw.SiteA.Socket(l) == labgw.SiteB.Socket(l) || labgw.SiteA.StateDir(l) == labgw.SiteB.StateDir(l) ||
		labgw.SiteA.Log(l) == labgw.SiteB.Log(l) || labgw.SiteA.ConfigPath(l) == labgw.SiteB.ConfigPath(l) {
		t.Fatalf("the sites share a file")
	}
	lanb := lab.LANBAddr.Addr()
	wanB := lab.SiteBWANAddr.Addr()

	t.Run("lanb leases its reserved address from gwb", func(t *testing.T) {
		ls, ok := l.Lease(lab.LANB)
		if !ok || !ls.Held || ls.Addr != lab.LANBAddr || ls.Router != lab.SiteBLANAddr.Addr() {
			t.Fatalf("lanb's client holds %+v (%v); want %v via %v", ls, ok, lab.LANBAddr, lab.SiteBLANAddr.Addr())
		}
		var leases []dhcp.Lease
		if err := client.New(labgw.SiteB.Socket(l)).Do("GET", "/api/v1/leases", nil, &leases); err != nil {
			t.Fatal(err)
		}
		if ls, ok := labgw.Lease(leases, lab.LANBMAC); len(leases) != 1 || !ok || ls.Addr != lanb || ls.Hostname != lab.LANB || !ls.Reserved {
			t.Errorf("gwb's daemon leases %+v; want only lanb's reservation, %v", leases, lanb)
		}
		var leasesA []dhcp.Lease
		if err := client.New(labgw.SiteA.Socket(l)).Do("GET", "/api/v1/leases", nil, &leasesA); err != nil {
			t.Fatal(err)
		}
		for _, ls := range leasesA {
			if strings.EqualFold(ls.MAC, lab.LANBMAC) {
				t.Errorf("gw's daemon leased %v to lanb", ls.Addr)
			}
		}
	})
	t.Run("lanb reaches pub through gwb's NAT", func(t *testing.T) {
		tcpServer(t, l, lab.Public, hostPort(pub1, 7001))
		got, err := tcpGet(l, lab.LANB, hostPort(pub1, 7001))
		if err != nil || !strings.HasPrefix(got, "pub saw "+wanB.String()+":") {
			t.Fatalf("lanb to pub: %q, %v; want pub to see gwb's WAN address %v", got, err, wanB)
		}
	})
	t.Run("lan1 reaches lanb through both NATs", func(t *testing.T) {
		tcpServer(t, l, lab.LANB, hostPort(lanb, 80))
		got, err := tcpGet(l, lab.LAN1, hostPort(wanB, 8080))
		if err != nil || !strings.HasPrefix(got, "lanb saw "+wanAddr.String()+":") {
			t.Fatalf("lan1 to gwb's forward: %q, %v; want lanb to see gw's WAN address %v", got, err, wanAddr)
		}
	})
	t.Run("rly pings pub over IPv4 and IPv6", func(t *testing.T) {
		for _, a := range []netip.Addr{pub1, lab.PublicAddrs6[0].Addr()} {
			out, err := l.Command(ctx, lab.Relay, "busybox", "ping", "-c", "1", "-W", "2", a.String()).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "1 packets received") {
				t.Errorf("ping %v from rly: %v\n%s", a, err, out)
			}
		}
	})
	t.Run("the ISP routes 6to4 space to rly", func(t *testing.T) {
		// Site B's 6to4 prefix: 2002:c000:202::/48 for 192.0.2.2.
		out, err := l.Command(ctx, lab.ISP, "ip", "-6", "route", "get", "2002:c000:202::1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "via "+lab.RelayAddr6.Addr().String()+" dev "+lab.ISPInet) {
			t.Errorf("ip -6 route get in isp: %v\n%s", err, out)
		}
	})
	t.Run("status shows both sites ready", func(t *testing.T) {
		st := labgw.Read(l)
		if !st.Ready {
			t.Fatalf("not ready: %q", st.NotReady)
		}
		if st.Gateway == nil || st.Gateway.WANAddr != wanAddr || st.Site != "a" {
			t.Errorf("site A's gateway: %+v", st.SiteStatus)
		}
		if b := st.SiteB; b == nil || b.Gateway == nil || b.Gateway.WANAddr != wanB || b.Host != lab.GatewayB || b.Socket != labgw.SiteB.Socket(l) {
			t.Errorf("site B's gateway: %+v", b)
		}
	})
	t.Run("site B's daemon respawns", func(t *testing.T) {
		before, ok := l.Process(labgw.SiteB.Daemon)
		if !ok || !before.Alive || before.Host != lab.GatewayB {
			t.Fatalf("site B's daemon: %+v, %v", before, ok)
		}
		if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventuallyWithin(t, 5*time.Second, "site B's daemon is back", func() error {
			p, ok := l.Process(labgw.SiteB.Daemon)
			if !ok || !p.Alive || p.PID == before.PID || p.Restarts != 1 {
				return fmt.Errorf("daemon %+v", p)
			}
			return labgw.SiteB.Wait(ctx, l, labgw.SiteB.ConfigPath(l))
		})
		if p, ok := l.Process(labgw.Daemon); !ok || !p.Alive || p.Restarts != 0 {
			t.Errorf("site A's daemon: %+v, %v; want it untouched", p, ok)
		}
	})
	t.Run("StartRelay runs a command respawned in rly", func(t *testing.T) {
		// Not a relay: what StartRelay will run once sixto4 has one.
		if err := labgw.StartRelay(l, binary, []string{"sleep", "100"}); err != nil {
			t.Fatal(err)
		}
		var first lab.Process
		eventuallyWithin(t, 5*time.Second, "the relay process runs", func() error {
			p, ok := l.Process(labgw.RelayDaemon)
			if !ok || !p.Alive || p.Host != lab.Relay {
				return fmt.Errorf("relay %+v", p)
			}
			first = p
			return nil
		})
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", first.PID))
		if err != nil {
			t.Fatal(err)
		}
		var want string
		l.Do(lab.Relay, func() error { want, err = os.Readlink("/proc/thread-self/ns/net"); return err })
		if ns != want {
			t.Errorf("the relay process runs in %s, want rly's %s", ns, want)
		}
		syscall.Kill(first.PID, syscall.SIGKILL)
		eventuallyWithin(t, 5*time.Second, "the relay process is back", func() error {
			p, ok := l.Process(labgw.RelayDaemon)
			if !ok || !p.Alive || p.PID == first.PID || p.Restarts != 1 {
				return fmt.Errorf("relay %+v", p)
			}
			return nil
		})
		if err := labgw.StartRelay(l, binary, nil); err == nil {
			t.Errorf("StartRelay with no command: no error")
		}
	})
}
