//go:build linux && !nolab

package gateway_test

// DHCP interop: real clients from Debian (dhclient, busybox udhcpc, dhcpcd)
// get, renew, release and get back leases from the daemon in the lab.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/dhcp"
	"gateway/gateway/lab"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
)

// dhcpExtra is the config of these tests: a short lease so that clients
// renew within the test (T1 is half of it).
const dhcpExtra = `
config dhcp 'lan'
	option leasetime '16s'
	option domain 'lab.example'
	list dns '192.168.1.1'
	list route '10.0.0.0/8 192.168.1.1'
`

// dhcpClient is how to drive one client program.
type dhcpClient struct {
	name string
	pkg  string // Debian package, for the skip message
	// start runs the client in the foreground of a background process
	// (it renews on its own); release asks it to release and exit.
	start   func(hook, iface string) []string
	release func(hook, iface string) []string
}

var dhcpClients = []dhcpClient{
	{
		name:    "dhclient",
		pkg:     "isc-dhcp-client",
		start:   func(hook, iface string) []string { return []string{"dhclient", "-d", "-v", "-sf", hook, iface} },
		release: func(hook, iface string) []string { return []string{"dhclient", "-r", "-v", "-sf", hook, iface} },
	},
	{
		name: "udhcpc",
		pkg:  "udhcpc",
		start: func(hook, iface string) []string {
			return []string{"udhcpc", "-f", "-R", "-t", "5", "-T", "1", "-s", hook, "-i", iface}
		},
		release: nil, // SIGTERM with -R releases
	},
	{
		name: "dhcpcd",
		pkg:  "dhcpcd-base",
		start: func(hook, iface string) []string {
			return []string{"dhcpcd", "-4", "-B", "-A", "-L", "-f", "/dev/null", "-c", hook, iface}
		},
		release: func(hook, iface string) []string { return []string{"dhcpcd", "-4", "-k", iface} },
	},
}

func lookClient(t *testing.T, c dhcpClient) {
	t.Helper()
	testenv.Tool(t, c.name, c.pkg)
}

// hookEvents reads the events the hook logged in host.
func hookEvents(l *lab.Lab, host string) []map[string]string {
	f, err := os.Open(l.HookLog(host))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ev := map[string]string{}
		for _, kv := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(kv, "=")
			ev[k] = v
		}
		out = append(out, ev)
	}
	return out
}

// waitEvent waits for the n-th hook event (counting from 1) whose event
// name is one of names, and returns it.
func waitEvent(t *testing.T, l *lab.Lab, host string, n int, d time.Duration, names ...string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		seen := 0
		for _, ev := range hookEvents(l, host) {
			for _, name := range names {
				if ev["event"] == name {
					seen++
					if seen == n {
						return ev
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no event %v #%d within %v; hook log: %v", host, names, n, d, hookEvents(l, host))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gw) leases() []dhcp.Lease {
	g.t.Helper()
	var ls []dhcp.Lease
	if err := g.api().Do("GET", "/api/v1/leases", nil, &ls); err != nil {
		g.t.Fatal(err)
	}
	return ls
}

func (g *gw) leaseOf(mac string) (dhcp.Lease, bool) {
	for _, l := range g.leases() {
		if l.MAC == mac {
			return l, true
		}
	}
	return dhcp.Lease{}, false
}

func (g *gw) mac(host string) string {
	g.t.Helper()
	out := g.mustRun(host, "cat", "/sys/class/net/"+lab.HostIf+"/address")
	return strings.TrimSpace(out)
}

// restart stops the daemon with sig and starts it again.
func (g *gw) restart(sig syscall.Signal) {
	g.t.Helper()
	if err := g.l.Stop(labgw.Daemon, sig); err != nil && !errors.Is(err, fs.ErrNotExist) {
		g.t.Fatal(err) // a daemon already stopped is fine
	}
	if err := labgw.Start(g.t.Context(), g.l, binary, g.cfg); err != nil {
		g.t.Fatal(err)
	}
}

func TestDHCPClients(t *testing.T) {
	for _, c := range dhcpClients {
		t.Run(c.name, func(t *testing.T) {
			lookClient(t, c)
			t.Parallel()
			// lan1 runs the client under test, not the lab's.
			g := startWith(t, labgw.BaseConfig, dhcpExtra)
			hook := g.l.DHCPHook()
			g.mustRun(lab.LAN1, "ip", "-4", "addr", "flush", "dev", lab.HostIf)
			mac := g.mac(lab.LAN1)

			// Get a lease, with the options of the config.
			if _, err := g.l.Start(lab.LAN1, c.name, c.start(hook, lab.HostIf), ""); err != nil {
				t.Fatal(err)
			}
			bound := waitEvent(t, g.l, lab.LAN1, 1, 15*time.Second, "BOUND", "bound", "REBOOT")
			addr, err := netip.ParseAddr(bound["addr"])
			if err != nil || !lab.LANAddr.Contains(addr) || addr == lab.LANAddr.Addr() {
				t.Fatalf("%s bound %q; want an address of %v", c.name, bound["addr"], lab.LANAddr)
			}
			if !strings.Contains(bound["router"], "192.168.1.1") || !strings.Contains(bound["dns"], "192.168.1.1") || bound["domain"] != "lab.example" {
				t.Errorf("%s got options %v; want router and dns 192.168.1.1, domain lab.example", c.name, bound)
			}
			l, ok := g.leaseOf(mac)
			if !ok || l.Addr != addr {
				t.Fatalf("server leases %v; want %v for %s", g.leases(), addr, mac)
			}
			// The address works: the client reaches the public host through NAT.
			tcpServer(t, g.l, lab.Public, hostPort(pub1, 80))
			eventually(t, "reach the internet from the leased address", func() error {
				got, err := tcpGet(g.l, lab.LAN1, hostPort(pub1, 80))
				if err == nil && !strings.Contains(got, wanAddr.String()) {
					err = fmt.Errorf("pub saw %q", got)
				}
				return err
			})

			// Renew at T1 (8 s): the server extends the lease.
			waitEvent(t, g.l, lab.LAN1, 1, 20*time.Second, "RENEW", "renew")
			l2, ok := g.leaseOf(mac)
			if !ok || l2.Addr != addr || !l2.Expires.After(l.Expires) {
				t.Fatalf("after renew: lease %+v (ok=%v); want %v with a later expiry than %v", l2, ok, addr, l.Expires)
			}

			// The client stops without releasing; the daemon restarts with
			// kill -9; the client comes back and gets the same address.
			if err := g.l.Stop(c.name, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			g.restart(syscall.SIGKILL)
			if l, ok := g.leaseOf(mac); !ok || l.Addr != addr {
				t.Fatalf("after kill -9 and restart: leases %v; want %v for %s", g.leases(), addr, mac)
			}
			n := len(hookEvents(g.l, lab.LAN1))
			if _, err := g.l.Start(lab.LAN1, c.name, c.start(hook, lab.HostIf), ""); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				evs := hookEvents(g.l, lab.LAN1)
				var got map[string]string
				for _, ev := range evs[n:] {
					if e := ev["event"]; e == "BOUND" || e == "REBOOT" || e == "bound" {
						got = ev
					}
				}
				if got != nil {
					if got["addr"] != addr.String() {
						t.Fatalf("after restart %s got %s; want its old %v", c.name, got["addr"], addr)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no lease after restart; hook log %v", evs[n:])
				}
				time.Sleep(50 * time.Millisecond)
			}

			// Release: the server forgets the lease. First let the hook
			// finish (the address is on the interface): a signal that
			// comes while it runs reaches it too (Stop signals the
			// process group), and a client may not release mid-script.
			eventually(t, "the hook applied the address", func() error {
				out, _ := g.run(lab.LAN1, "ip", "-4", "-o", "addr", "show", "dev", lab.HostIf)
				if !strings.Contains(out, addr.String()+"/") {
					return fmt.Errorf("eth0: %s", out)
				}
				return nil
			})
			if c.release != nil {
				ctx := t.Context()
				out, err := g.l.Command(ctx, lab.LAN1, c.release(hook, lab.HostIf)[0], c.release(hook, lab.HostIf)[1:]...).CombinedOutput()
				if err != nil {
					t.Fatalf("%s release: %v\n%s", c.name, err, out)
				}
			}
			g.l.Stop(c.name, syscall.SIGTERM)
			eventually(t, "lease released", func() error {
				if l, ok := g.leaseOf(mac); ok {
					return fmt.Errorf("still leased: %+v", l)
				}
				return nil
			})
		})
	}
}

// udhcpcOnce runs udhcpc in host until it has a lease or gives up, and
// returns the lease's address ("" if none).
func udhcpcOnce(t *testing.T, g *gw, host string, tries int) string {
	t.Helper()
	lookClient(t, dhcpClients[1])
	out, err := g.run(host, "udhcpc", "-q", "-n", "-f", "-t", fmt.Sprint(tries), "-T", "1", "-A", "1", "-s", g.l.DHCPHook(), "-i", lab.HostIf, "-x", "hostname:"+host)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		// udhcpc: "udhcpc: lease of 192.168.1.23 obtained from ..."
		if _, rest, ok := strings.Cut(line, "lease of "); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("udhcpc succeeded without a lease line:\n%s", out)
	return ""
}

func TestDHCPReservations(t *testing.T) {
	g := startWith(t, labgw.BaseConfig, dhcpExtra)
	g.mustRun(lab.LAN1, "ip", "-4", "addr", "flush", "dev", lab.HostIf)
	g.mustRun(lab.LAN2, "ip", "-4", "addr", "flush", "dev", lab.HostIf)
	mac1, mac2 := g.mac(lab.LAN1), g.mac(lab.LAN2)

	// A reservation in the config, with a host name.
	g.writeConfig(labgw.BaseConfig(g.l, dhcpExtra+fmt.Sprintf("\nconfig host\n\toption mac '%s'\n\toption ip '192.168.1.201'\n\toption name 'pinned'\n", mac1)))
	g.restart(syscall.SIGTERM)
	if got := udhcpcOnce(t, g, lab.LAN1, 5); got != "192.168.1.201" {
		t.Fatalf("lan1 got %q; want its reservation 192.168.1.201", got)
	}

	// One added at run time through the API survives a restart.
	req := map[string]string{"mac": mac2, "addr": "192.168.1.202", "hostname": "runtime"}
	if err := g.api().Do("POST", "/api/v1/reservations", req, nil); err != nil {
		t.Fatal(err)
	}
	// An address reserved for another MAC is refused.
	if err := g.api().Do("POST", "/api/v1/reservations", map[string]string{"mac": "02:00:00:00:00:99", "addr": "192.168.1.202"}, nil); err == nil {
		t.Fatal("a second reservation of 192.168.1.202 was accepted")
	}
	g.restart(syscall.SIGKILL)
	if got := udhcpcOnce(t, g, lab.LAN2, 5); got != "192.168.1.202" {
		t.Fatalf("lan2 got %q; want its run-time reservation 192.168.1.202", got)
	}
	if err := g.api().Do("DELETE", "/api/v1/reservations/"+mac2, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestDHCPConflictDetection: lan2 uses 192.168.1.11 without a lease; the
// server finds it by ARP before offering it and gives lan1 another one.
func TestDHCPConflictDetection(t *testing.T) {
	g := startWith(t, labgw.BaseConfig, dhcpExtra+"\toption start '11'\n\toption limit '2'\n")
	g.mustRun(lab.LAN1, "ip", "-4", "addr", "flush", "dev", lab.HostIf)
	// lan2 uses 192.168.1.11 without asking.
	if err := g.l.SetStaticIPv4(lab.LAN2); err != nil {
		t.Fatal(err)
	}
	got := udhcpcOnce(t, g, lab.LAN1, 5)
	if got != "192.168.1.12" {
		t.Fatalf("lan1 got %q; want 192.168.1.12 (192.168.1.11 is in use by lan2)", got)
	}
	// With only the taken address in the pool there is no lease at all,
	// and the server says why.
	g.writeConfig(labgw.BaseConfig(g.l, dhcpExtra+"\toption start '11'\n\toption limit '1'\n"))
	g.restart(syscall.SIGTERM)
	g.mustRun(lab.LAN1, "ip", "-4", "addr", "flush", "dev", lab.HostIf)
	if got := udhcpcOnce(t, g, lab.LAN1, 2); got != "" {
		t.Fatalf("lan1 got %q from a pool whose only address answers ARP", got)
	}
	st := g.status()
	if st.DHCP == nil || st.DHCP.Stats.Conflicts == 0 {
		t.Fatalf("no conflict counted: %+v", st.DHCP)
	}
	if l, ok := g.leaseOf(g.mac(lab.LAN1)); ok {
		t.Fatalf("lan1 has lease %+v from a pool whose only address is taken", l)
	}
}

// TestDHCPDecline: conflict detection off, dhcpcd checks the offered
// address itself (RFC 5227), finds lan2 on it and declines; the server
// quarantines the address and does not offer it again.
func TestDHCPDecline(t *testing.T) {
	c := dhcpClients[2]
	lookClient(t, c)
	g := startWith(t, labgw.BaseConfig, dhcpExtra+"\toption start '11'\n\toption limit '1'\n\toption conflict_detection '0'\n")
	g.mustRun(lab.LAN1, "ip", "-4", "addr", "flush", "dev", lab.HostIf)
	// lan2 uses 192.168.1.11 without asking.
	if err := g.l.SetStaticIPv4(lab.LAN2); err != nil {
		t.Fatal(err)
	}
	if _, err := g.l.Start(lab.LAN1, "dhcpcd", []string{"dhcpcd", "-4", "-B", "-L", "-f", "/dev/null", "-c", g.l.DHCPHook(), lab.HostIf}, ""); err != nil {
		t.Fatal(err)
	}
	// As patient as a DHCP client's retries.
	eventuallyWithin(t, 20*time.Second, "the server quarantines the declined address", func() error {
		st := g.status()
		if st.DHCP == nil || st.DHCP.Stats.Declines == 0 || st.DHCP.Stats.Quarantined != 1 {
			return fmt.Errorf("dhcp status %+v", st.DHCP)
		}
		return nil
	})
	if l, ok := g.leaseOf(g.mac(lab.LAN1)); ok {
		t.Fatalf("lan1 holds %+v after declining it", l)
	}
}
