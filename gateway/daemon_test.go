package gateway

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gateway/dhcp"
	"gateway/internal/facts"
	"gateway/internal/leakcheck"
	"gateway/internal/netwatch"
)

func TestHostInPrefix(t *testing.T) {
	p := netip.MustParsePrefix("192.168.1.1/24")
	cases := []struct {
		n    int
		want string
	}{{1, "192.168.1.1"}, {10, "192.168.1.10"}, {254, "192.168.1.254"}, {255, "192.168.1.255"}, {256, "invalid IP"}, {0, "invalid IP"}, {-1, "invalid IP"}}
	for _, c := range cases {
		if got := hostInPrefix(p, c.n).String(); got != c.want {
			t.Errorf("hostInPrefix(%v, %d) = %s, want %s", p, c.n, got, c.want)
		}
	}
	if got := hostInPrefix(netip.MustParsePrefix("10.77.0.1/16"), 1<<16-2).String(); got != "10.77.255.254" {
		t.Errorf("last host of a /16 = %s", got)
	}
}

func TestFactsOf(t *testing.T) {
	cfg := &Config{WAN: "wan", LANs: []string{"br-lan", "eth2"}, AllowDocumentationWAN: true}
	s := netwatch.Snapshot{
		"wan":    {Name: "wan", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24"), netip.MustParsePrefix("2001:db8::2/64")}},
		"br-lan": {Name: "br-lan", Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.1.1/24")}},
	}
	wan, lan := factsOf(cfg, s)
	if wan != (facts.WAN{Iface: "wan", Addr: netip.MustParseAddr("192.0.2.2"), Kind: facts.KindPublic}) {
		t.Errorf("wan = %+v", wan)
	}
	if p, ok := lan.IPv4("br-lan"); !ok || p != netip.MustParsePrefix("192.168.1.1/24") {
		t.Errorf("lan = %+v", lan)
	}
	if _, ok := lan.Addrs["eth2"]; ok {
		t.Errorf("a missing LAN interface has addresses: %+v", lan)
	}
	cfg.AllowDocumentationWAN = false
	if wan, _ := factsOf(cfg, s); wan.Kind == facts.KindPublic {
		t.Errorf("a documentation address counted as public without allow_documentation_wan")
	}
	if wan, _ := factsOf(cfg, netwatch.Snapshot{}); wan.Addr.IsValid() || wan.Kind != facts.KindNone {
		t.Errorf("no WAN: %+v", wan)
	}
}

func TestDHCPChanged(t *testing.T) {
	a := &DHCPConfig{Line: 5, Interface: "br-lan", LeaseTime: time.Hour}
	b := *a
	b.Line = 9 // moved in the file: no restart
	if dhcpChanged(a, &b) {
		t.Error("a moved section counts as a change")
	}
	b.Reservations = []dhcp.Reservation{{MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0, 1}, Addr: netip.MustParseAddr("192.168.1.5")}}
	if !dhcpChanged(a, &b) {
		t.Error("a new reservation is not a change")
	}
	if !dhcpChanged(a, nil) || dhcpChanged(nil, nil) {
		t.Error("nil handling")
	}
}

// TestDHCPServiceWaitsAndRefuses: the DHCP service waits for its LAN
// address on the facts board, and then a section that the address refuses
// fails the service (which the supervisor logs and retries), naming the
// file and line, without a server ever made.
func TestDHCPServiceWaitsAndRefuses(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		cfg, err := ParseConfig("gw.conf", []byte("config gateway\n\toption wan wan\n\toption lan br-lan\nconfig dhcp\nconfig host\n\toption mac 02:00:5e:00:00:01\n\toption ip 10.9.9.9\n"))
		if err != nil {
			t.Fatal(err)
		}
		d := &Daemon{log: slog.New(slog.DiscardHandler), facts: facts.NewBoard(), cfg: cfg}
		res := make(chan error, 1)
		go func() { res <- d.runDHCP(t.Context()) }()
		d.facts.LAN.Publish(facts.LAN{Addrs: map[string][]netip.Prefix{"br-lan": {netip.MustParsePrefix("fe80::1/64")}}})
		time.Sleep(time.Hour)
		select {
		case err := <-res:
			t.Fatalf("the service did not wait for an IPv4 address: %v", err)
		default:
		}
		d.facts.LAN.Publish(facts.LAN{Addrs: map[string][]netip.Prefix{"br-lan": {netip.MustParsePrefix("192.168.1.1/24")}}})
		err = <-res
		if err == nil || !strings.Contains(err.Error(), "gw.conf:4: dhcp on br-lan (192.168.1.1/24)") || !strings.Contains(err.Error(), "10.9.9.9") {
			t.Fatalf("runDHCP = %v", err)
		}
		if d.DHCP() != nil {
			t.Fatal("a DHCP server is reported with a refused config")
		}
	})
}
