package upnp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"gateway/internal/netns"
	"gateway/internal/testenv"
	"gateway/nat44"
	"gateway/nat44/nat44test"
)

// TestUpnpcPinholeNAT66 drives WANIPv6FirewallControl with miniupnpc's
// upnpc over IPv6 from a LAN host numbered from a ULA, with the gateway
// behind NAT66: the host opens a pinhole for itself and the mapping
// service DNATs its port on the NAT66 address to it; a second ULA host is
// refused that port; the first deletes its pinhole.
func TestUpnpcPinholeNAT66(t *testing.T) {
	if testing.Short() {
		t.Skip("namespaces and upnpc: not in -short")
	}
	testenv.Root(t)
	testenv.Tool(t, "ip", "iproute2")
	testenv.Tool(t, "upnpc", "miniupnpc")

	b := make([]byte, 3)
	rand.Read(b)
	gw, host := "upnp66gw-"+hex.EncodeToString(b), "upnp66h-"+hex.EncodeToString(b)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{gw, host} {
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	}
	ip("-n", gw, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", host)
	ip("-n", gw, "addr", "add", "192.168.88.1/24", "dev", "lan0")
	ip("-n", gw, "addr", "add", "fd88::1/64", "dev", "lan0", "nodad")
	ip("-n", host, "addr", "add", "192.168.88.2/24", "dev", "eth0")
	ip("-n", host, "addr", "add", "fd88::2/64", "dev", "eth0", "nodad")
	ip("-n", host, "addr", "add", "fd88::3/64", "dev", "eth0", "nodad")
	for _, c := range [][]string{{"-n", gw, "link", "set", "lan0", "up"}, {"-n", host, "link", "set", "eth0", "up"}, {"-n", gw, "link", "set", "lo", "up"}, {"-n", host, "link", "set", "lo", "up"}} {
		ip(c...)
	}

	dp := nat44test.NewFakeDatapath()
	n, err := nat44.New(nat44.Config{WAN: "wan0", LANs: []string{"lan0"}, Datapath: dp, Conntrack: nat44test.NewFakeConntrack()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	natDone := make(chan error, 1)
	go func() { natDone <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-natDone })
	<-n.Ready()
	ula := netip.MustParsePrefix("fd88::/64")
	n.SetLANPrefixes([]netip.Prefix{netip.MustParsePrefix("192.168.88.0/24"), ula})
	n.SetWAN(netip.MustParseAddr("203.0.113.9"))
	n.SetOutside([]string{"teredo"})
	n.SetNAT66([]string{"teredo"})
	teredo := netip.MustParseAddr("2001:0:c633:6401:0:fbff:9bfe:fefd")
	if err := n.SetNAT66Address(teredo); err != nil {
		t.Fatal(err)
	}

	port := freePort(t) // free in this namespace; the gateway's is new and empty
	s, err := New(Config{
		LANs: []LAN{{Name: "lan0", Prefix: netip.MustParsePrefix("192.168.88.1/24"), IPv6: []netip.Prefix{netip.MustParsePrefix("fd88::1/64")}}},
		Port: port, SSDPPort: freePort(t), StateDir: t.TempDir(), NAT: n, Firewall: n, MaxDelay: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- netns.Do(gw, func() error { return s.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-srvDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	url := "http://" + netip.AddrPortFrom(netip.MustParseAddr("fd88::1"), port).String() + PathRootDesc
	upnpc := func(args ...string) string {
		t.Helper()
		ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
		defer stop()
		out, _ := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", host, "upnpc", "-6", "-u", url}, args...)...).CombinedOutput()
		return string(out)
	}
	// The description may not be served at once: retry the status call.
	deadline := time.Now().Add(10 * time.Second)
	for out := upnpc("-S"); !strings.Contains(out, "FirewallEnabled"); out = upnpc("-S") {
		if time.Now().After(deadline) {
			t.Fatalf("upnpc -S never got the firewall status:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// upnpc sends from the address the kernel picks for fd88::1: give it
	// the one it asks for, by deprecating the other.
	ip("-n", host, "addr", "change", "fd88::3/64", "dev", "eth0", "preferred_lft", "0")
	out := upnpc("-A", "", "0", "fd88::2", "8000", "TCP", "3600")
	if !strings.Contains(out, "Pinhole ID = ") {
		t.Fatalf("upnpc -A for itself:\n%s", out)
	}
	if got, ok := dp.LookupNAT66(nat44.TCP, 8000); !ok || got != netip.MustParseAddrPort("[fd88::2]:8000") {
		t.Errorf("NAT66 tcp/8000 leads to %v, %v; want [fd88::2]:8000\nupnpc:\n%s", got, ok, out)
	}
	ph := n.Pinholes()
	if len(ph) != 1 || ph[0].Owner != nat44.OwnerUPnP {
		t.Fatalf("pinholes %+v", ph)
	}

	// The other ULA host (the same namespace, its other address).
	ip("-n", host, "addr", "change", "fd88::3/64", "dev", "eth0", "preferred_lft", "forever")
	ip("-n", host, "addr", "change", "fd88::2/64", "dev", "eth0", "preferred_lft", "0")
	if out := upnpc("-A", "", "0", "fd88::3", "8000", "TCP", "3600"); strings.Contains(out, "Pinhole ID = ") || !strings.Contains(out, "701") {
		t.Errorf("upnpc -A of a taken NAT66 port by another ULA host:\n%s", out)
	}
	ip("-n", host, "addr", "change", "fd88::2/64", "dev", "eth0", "preferred_lft", "forever")
	ip("-n", host, "addr", "change", "fd88::3/64", "dev", "eth0", "preferred_lft", "0")
	out = upnpc("-D", strconv.Itoa(int(ph[0].ID)))
	if len(n.Pinholes()) != 0 {
		t.Errorf("upnpc -D left the pinhole:\n%s", out)
	}
	if _, ok := dp.LookupNAT66(nat44.TCP, 8000); ok {
		t.Error("NAT66 tcp/8000 still DNATed after upnpc -D")
	}
}
