//go:build linux && !nolab

package gateway_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway"
	"gateway/gateway/lab"
	"gateway/internal/events"
	"gateway/web"
)

// TestSettingsThroughAPI changes settings through the control socket's
// API, as the web panel does: the file changes, and the running daemon
// applies them without a restart.
func TestSettingsThroughAPI(t *testing.T) {
	g := startGateway(t, "")
	pid := g.pid()
	upnpURL := hostPort(lab.LANAddr.Addr(), 5000)
	upnpUp := func() error {
		return g.l.Do(lab.LAN1, func() error {
			c, err := net.DialTimeout("tcp", upnpURL, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	eventually(t, "UPnP listens", upnpUp)

	var now web.Settings
	if err := g.api().Do("PUT", "/api/v1/settings", map[string]any{"dhcp": map[string]any{"lease_time": 40}, "upnp": false}, &now); err != nil {
		t.Fatal(err)
	}
	if *now.DHCP.LeaseTime != web.Seconds(40*time.Second) || *now.UPnP {
		t.Errorf("settings now: lease %v upnp %v", *now.DHCP.LeaseTime, *now.UPnP)
	}
	text, _ := os.ReadFile(g.cfg)
	cfg, err := gateway.ParseConfig(g.cfg, text)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DHCP.LeaseTime != 40*time.Second || cfg.UPnP != nil || !strings.Contains(string(text), "# written by gateway lab up") {
		t.Fatalf("the file after the change:\n%s", text)
	}
	eventually(t, "UPnP closed", func() error {
		if upnpUp() == nil {
			return fmt.Errorf("UPnP still answers on %s", upnpURL)
		}
		return nil
	})

	// A real client renewing (udhcpc renews on SIGUSR1) gets the new
	// lease time.
	var dhcpPID int
	for _, h := range g.l.Status().Hosts {
		for _, p := range h.Processes {
			if p.Name == lab.DHCPClient(lab.LAN1) && p.Alive {
				dhcpPID = p.PID
			}
		}
	}
	if dhcpPID == 0 {
		t.Fatal("no DHCP client in lan1")
	}
	eventuallyWithin(t, 20*time.Second, "a 40 s lease on renew", func() error {
		syscall.Kill(dhcpPID, syscall.SIGUSR1)
		time.Sleep(500 * time.Millisecond)
		l, ok := g.l.Lease(lab.LAN1)
		if !ok || l.Expires.Sub(l.Time) != 40*time.Second {
			return fmt.Errorf("lease %+v (ok %v); want 40 s", l, ok)
		}
		return nil
	})

	// A forward added through the API passes traffic from the public host.
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 80))
	if err := g.api().Do("POST", "/api/v1/forwards", web.Forward{Name: "web", Proto: "tcp", ExternalPort: 9090, Internal: netip.AddrPortFrom(lan1, 80)}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new forward", func() error {
		_, err := tcpGet(g.l, lab.Public, hostPort(wanAddr, 9090))
		return err
	})
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 9090), "lan1 saw "+pub1.String())

	// A refused change: 400 naming the field, nothing changed.
	before, _ := os.ReadFile(g.cfg)
	err = g.api().Do("PUT", "/api/v1/settings", map[string]any{"host_limit": 0}, nil)
	if err == nil || !strings.Contains(err.Error(), "host_limit") {
		t.Errorf("host_limit 0: %v", err)
	}
	if after, _ := os.ReadFile(g.cfg); string(after) != string(before) {
		t.Error("a refused change wrote the file")
	}

	// No restart; the event log saw the forward, the status has the start.
	if g.pid() != pid {
		t.Errorf("the daemon restarted: pid %d, was %d", g.pid(), pid)
	}
	st := g.status()
	if st.Started.IsZero() || time.Since(st.Started) > 5*time.Minute {
		t.Errorf("started %v", st.Started)
	}
	var es []events.Event
	if err := g.api().Do("GET", "/api/v1/events", nil, &es); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		found = found || (e.Kind == events.KindMapping && strings.Contains(e.Message, "tcp port 9090"))
	}
	if !found {
		t.Errorf("no mapping event for the new forward in %+v", es)
	}
}
