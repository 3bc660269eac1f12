package upnp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gateway/nat44"
	"gateway/nat44/nat44test"
	"gateway/upnp/soap"
)

var (
	lan1 = netip.MustParseAddr("192.168.1.10")
	lan2 = netip.MustParseAddr("192.168.1.11")
	wan  = netip.MustParseAddr("203.0.113.2")
)

func newCore(t *testing.T, p nat44.Policy) (*Core, *nat44.NAT) {
	t.Helper()
	n, err := nat44.New(nat44.Config{WAN: "wan0", LANs: []string{"br-lan"}, Policy: p, Datapath: nat44test.NewFakeDatapath(), Conntrack: nat44test.NewFakeConntrack()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetWAN(wan); err != nil {
		t.Fatal(err)
	}
	n.SetLANPrefixes([]netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")})
	c := &Core{NAT: n, Firewall: n, Now: time.Now, Started: time.Now(), ThirdParty: p.AllowThirdParty}
	return c, n
}

func call(c *Core, client netip.Addr, v int, name string, kv ...string) ([]soap.Arg, int) {
	a := soap.Action{ServiceType: fmt.Sprintf("%sWANIPConnection:%d", urnService, v), Name: name}
	for i := 0; i+1 < len(kv); i += 2 {
		a.Args = append(a.Args, soap.Arg{Name: kv[i], Value: kv[i+1]})
	}
	out, err := c.Invoke(client, pathCtlIP, a)
	if err != nil {
		var f *fault
		if !errors.As(err, &f) {
			return nil, -1
		}
		return nil, f.code
	}
	return out, 0
}

func add(c *Core, client netip.Addr, v int, ext, proto, host, in, lease string) int {
	_, code := call(c, client, v, "AddPortMapping", "NewRemoteHost", "", "NewExternalPort", ext, "NewProtocol", proto,
		"NewInternalPort", in, "NewInternalClient", host, "NewEnabled", "1", "NewPortMappingDescription", "test", "NewLeaseDuration", lease)
	return code
}

func TestActionsAndErrors(t *testing.T) {
	c, n := newCore(t, nat44.Policy{PermanentUPnP: true})
	steps := []struct {
		name string
		do   func() int
		want int
	}{
		{"add v1 permanent", func() int { return add(c, lan1, 1, "5000", "TCP", "192.168.1.10", "5000", "0") }, 0},
		{"renew same", func() int { return add(c, lan1, 1, "5000", "tcp", "192.168.1.10", "5000", "3600") }, 0},
		{"conflict from other host", func() int { return add(c, lan2, 1, "5000", "TCP", "192.168.1.11", "5000", "0") }, ErrConflict},
		{"secure mode: for another host", func() int { return add(c, lan2, 2, "6000", "TCP", "192.168.1.10", "6000", "0") }, ErrNotAuthorized},
		{"ext port wildcard", func() int { return add(c, lan1, 2, "0", "TCP", "192.168.1.10", "5000", "0") }, ErrWildCardExtPort},
		{"int port wildcard v2", func() int { return add(c, lan1, 2, "7000", "TCP", "192.168.1.10", "0", "0") }, ErrWildCardIntPort},
		{"bad protocol", func() int { return add(c, lan1, 2, "7000", "ICMP", "192.168.1.10", "1", "0") }, ErrInvalidArgs},
		{"bad port", func() int { return add(c, lan1, 2, "70000", "TCP", "192.168.1.10", "1", "0") }, ErrInvalidArgs},
		{"missing arg", func() int { _, code := call(c, lan1, 2, "AddPortMapping", "NewExternalPort", "1"); return code }, ErrInvalidArgs},
		{"unknown action", func() int { _, code := call(c, lan1, 2, "Frobnicate"); return code }, ErrInvalidAction},
		{"v2 action on v1", func() int { _, code := call(c, lan1, 1, "AddAnyPortMapping"); return code }, ErrInvalidAction},
		{"generic index 0", func() int {
			_, code := call(c, lan1, 1, "GetGenericPortMappingEntry", "NewPortMappingIndex", "0")
			return code
		}, 0},
		{"generic index 1", func() int {
			_, code := call(c, lan1, 1, "GetGenericPortMappingEntry", "NewPortMappingIndex", "1")
			return code
		}, ErrArrayIndexInvalid},
		{"specific missing", func() int {
			_, code := call(c, lan1, 1, "GetSpecificPortMappingEntry", "NewRemoteHost", "", "NewExternalPort", "5001", "NewProtocol", "TCP")
			return code
		}, ErrNoSuchEntry},
		{"delete other's", func() int {
			_, code := call(c, lan2, 2, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "5000", "NewProtocol", "TCP")
			return code
		}, ErrNotAuthorized},
		{"delete missing", func() int {
			_, code := call(c, lan1, 2, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "5001", "NewProtocol", "TCP")
			return code
		}, ErrNoSuchEntry},
		{"range inverted", func() int {
			_, code := call(c, lan1, 2, "DeletePortMappingRange", "NewStartPort", "10", "NewEndPort", "1", "NewProtocol", "TCP", "NewManage", "0")
			return code
		}, ErrInconsistentParameters},
		{"range empty", func() int {
			_, code := call(c, lan1, 2, "GetListOfPortMappings", "NewStartPort", "1", "NewEndPort", "10", "NewProtocol", "TCP", "NewManage", "0", "NewNumberOfPorts", "0")
			return code
		}, ErrPortMappingNotFound},
		{"delete own", func() int {
			_, code := call(c, lan1, 1, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "5000", "NewProtocol", "TCP")
			return code
		}, 0},
	}
	for _, s := range steps {
		c.Invalidate()
		if got := s.do(); got != s.want {
			t.Errorf("%s: code %d, want %d", s.name, got, s.want)
		}
	}
	if got := len(n.List()); got != 0 {
		t.Errorf("%d mappings left", got)
	}
}

func TestLeases(t *testing.T) {
	c, n := newCore(t, nat44.Policy{PermanentUPnP: true, MaxLifetime: 30 * 24 * time.Hour})
	add(c, lan1, 1, "5000", "TCP", "192.168.1.10", "5000", "0")
	add(c, lan1, 2, "5001", "TCP", "192.168.1.10", "5001", "0")
	add(c, lan1, 2, "5002", "TCP", "192.168.1.10", "5002", "9999999")
	m0, _ := n.Get(nat44.Key{Proto: nat44.TCP, ExternalPort: 5000})
	m1, _ := n.Get(nat44.Key{Proto: nat44.TCP, ExternalPort: 5001})
	m2, _ := n.Get(nat44.Key{Proto: nat44.TCP, ExternalPort: 5002})
	if !m0.Permanent() {
		t.Errorf("v1 lease 0: expires %v, want permanent", m0.Expires)
	}
	for _, m := range []nat44.Mapping{m1, m2} {
		if m.Lifetime != DefaultLeaseCap {
			t.Errorf("v2 %v: lifetime %v, want %v", m.Key(), m.Lifetime, DefaultLeaseCap)
		}
	}
}

func TestAddAny(t *testing.T) {
	c, _ := newCore(t, nat44.Policy{})
	add(c, lan1, 2, "5000", "TCP", "192.168.1.10", "5000", "60")
	out, code := call(c, lan2, 2, "AddAnyPortMapping", "NewRemoteHost", "", "NewExternalPort", "5000", "NewProtocol", "TCP",
		"NewInternalPort", "5000", "NewInternalClient", "192.168.1.11", "NewEnabled", "1", "NewPortMappingDescription", "x", "NewLeaseDuration", "0")
	if code != 0 || len(out) != 1 || out[0].Value == "5000" {
		t.Fatalf("AddAnyPortMapping of a taken port = %v, %d; want another port", out, code)
	}
}

// TestRanges: GetListOfPortMappings and DeletePortMappingRange over
// thousands of mappings (miniupnpd 2.3.1 overflows past 128).
func TestRanges(t *testing.T) {
	c, n := newCore(t, nat44.Policy{HostLimit: 5000})
	const count = 2000
	for i := range count {
		if code := add(c, lan1, 2, fmt.Sprint(10000+i), "UDP", "192.168.1.10", fmt.Sprint(10000+i), "3600"); code != 0 {
			t.Fatalf("add %d: %d", i, code)
		}
	}
	c.Invalidate()
	out, code := call(c, lan1, 2, "GetListOfPortMappings", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "UDP", "NewManage", "0", "NewNumberOfPorts", "0")
	if code != 0 {
		t.Fatalf("list: %d", code)
	}
	if got := strings.Count(out[0].Value, "<p:PortMappingEntry>"); got != count {
		t.Fatalf("listed %d, want %d", got, count)
	}
	out, _ = call(c, lan1, 2, "GetListOfPortMappings", "NewStartPort", "10100", "NewEndPort", "65535", "NewProtocol", "UDP", "NewManage", "1", "NewNumberOfPorts", "300")
	if got := strings.Count(out[0].Value, "<p:PortMappingEntry>"); got != 300 || !strings.Contains(out[0].Value, "<p:NewExternalPort>10100</p:NewExternalPort>") {
		t.Fatalf("listed %d from 10100, want 300", got)
	}
	_, code = call(c, lan1, 2, "DeletePortMappingRange", "NewStartPort", "10000", "NewEndPort", "11499", "NewProtocol", "UDP", "NewManage", "0")
	if code != 0 {
		t.Fatalf("delete range: %d", code)
	}
	if got := len(n.List()); got != 500 {
		t.Fatalf("%d left, want 500", got)
	}
}

func TestFirewallActions(t *testing.T) {
	c, n := newCore(t, nat44.Policy{})
	counted := &countingFirewall{NAT: n, err: errors.ErrUnsupported}
	c.Firewall = counted
	n.SetLANPrefixes([]netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("2001:db8:1:1::/64")})
	h1, h2 := netip.MustParseAddr("2001:db8:1:1::10"), netip.MustParseAddr("2001:db8:1:1::11")
	fw := func(client netip.Addr, name string, kv ...string) ([]soap.Arg, int) {
		a := soap.Action{ServiceType: urnService + "WANIPv6FirewallControl:1", Name: name}
		for i := 0; i+1 < len(kv); i += 2 {
			a.Args = append(a.Args, soap.Arg{Name: kv[i], Value: kv[i+1]})
		}
		out, err := c.Invoke(client, pathCtlFC, a)
		var f *fault
		if errors.As(err, &f) {
			return nil, f.code
		}
		if err != nil {
			return nil, -1
		}
		return out, 0
	}
	addPin := func(client, host netip.Addr) ([]soap.Arg, int) {
		return fw(client, "AddPinhole", "RemoteHost", "", "RemotePort", "0", "InternalClient", host.String(), "InternalPort", "8000", "Protocol", "6", "LeaseTime", "3600")
	}
	out, code := addPin(h1, h1)
	if code != 0 || len(out) != 1 || out[0].Name != "UniqueID" {
		t.Fatalf("AddPinhole for itself: %v, %d", out, code)
	}
	id := out[0].Value
	tests := []struct {
		name string
		do   func() int
		want int
	}{
		{"for another host", func() int { _, c := addPin(h1, h2); return c }, ErrNotAuthorized},
		{"from IPv4 for an IPv6 host", func() int { _, c := addPin(lan1, h1); return c }, ErrNotAuthorized},
		{"update", func() int { _, c := fw(h1, "UpdatePinhole", "UniqueID", id, "NewLeaseTime", "7200"); return c }, 0},
		{"update by another host", func() int { _, c := fw(h2, "UpdatePinhole", "UniqueID", id, "NewLeaseTime", "7200"); return c }, ErrNotAuthorized},
		{"packets: no counters", func() int { _, c := fw(h1, "GetPinholePackets", "UniqueID", id); return c }, ErrActionFailed},
		{"working: no counters", func() int { _, c := fw(h1, "CheckPinholeWorking", "UniqueID", id); return c }, ErrActionFailed},
		{"packets: none yet", func() int {
			counted.err = nil
			out, c := fw(h1, "GetPinholePackets", "UniqueID", id)
			if c == 0 && (len(out) != 1 || out[0].Name != "PinholePackets" || out[0].Value != "0") {
				return -1
			}
			return c
		}, 0},
		{"working: no evidence", func() int { _, c := fw(h1, "CheckPinholeWorking", "UniqueID", id); return c }, ErrNoTrafficReceived},
		{"packets: some", func() int {
			counted.packets = 5
			out, c := fw(h1, "GetPinholePackets", "UniqueID", id)
			if c == 0 && (len(out) != 1 || out[0].Value != "5") {
				return -1
			}
			return c
		}, 0},
		{"working: traffic seen", func() int {
			out, c := fw(h1, "CheckPinholeWorking", "UniqueID", id)
			if c == 0 && (len(out) != 1 || out[0].Name != "IsWorking" || out[0].Value != "1") {
				return -1
			}
			return c
		}, 0},
		{"packets of another host's pinhole", func() int { _, c := fw(h2, "GetPinholePackets", "UniqueID", id); return c }, ErrNotAuthorized},
		{"working: no such pinhole", func() int { _, c := fw(h1, "CheckPinholeWorking", "UniqueID", "999"); return c }, ErrNoSuchPinhole},
		{"delete by another host", func() int { _, c := fw(h2, "DeletePinhole", "UniqueID", id); return c }, ErrNotAuthorized},
		{"delete", func() int { _, c := fw(h1, "DeletePinhole", "UniqueID", id); return c }, 0},
		{"delete again", func() int { _, c := fw(h1, "DeletePinhole", "UniqueID", id); return c }, ErrNoSuchPinhole},
	}
	for _, tt := range tests {
		if got := tt.do(); got != tt.want {
			t.Errorf("%s: code %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestFirewallNAT66: behind NAT66 a ULA host opens pinholes through
// WANIPv6FirewallControl like any LAN host; another ULA host cannot have
// the same port, which the one NAT66 address gives to the first.
func TestFirewallNAT66(t *testing.T) {
	c, n := newCore(t, nat44.Policy{})
	n.SetLANPrefixes([]netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("fd00:77::/64")})
	if err := n.SetNAT66([]string{"teredo"}); err != nil {
		t.Fatal(err)
	}
	if err := n.SetNAT66Address(netip.MustParseAddr("2001:0:c633:6401:0:fbff:9bfe:fefd")); err != nil {
		t.Fatal(err)
	}
	h1, h2 := netip.MustParseAddr("fd00:77::10"), netip.MustParseAddr("fd00:77::11")
	add := func(host netip.Addr, port string) int {
		a := soap.Action{ServiceType: urnService + "WANIPv6FirewallControl:1", Name: "AddPinhole", Args: []soap.Arg{
			{Name: "RemoteHost", Value: ""}, {Name: "RemotePort", Value: "0"}, {Name: "InternalClient", Value: host.String()},
			{Name: "InternalPort", Value: port}, {Name: "Protocol", Value: "6"}, {Name: "LeaseTime", Value: "3600"}}}
		_, err := c.Invoke(host, pathCtlFC, a)
		var f *fault
		if errors.As(err, &f) {
			return f.code
		}
		if err != nil {
			return -1
		}
		return 0
	}
	for _, tt := range []struct {
		name string
		host netip.Addr
		port string
		want int
	}{
		{"a ULA host", h1, "8000", 0},
		{"another ULA host, the same port", h2, "8000", ErrPinholeSpaceExhausted},
		{"another ULA host, another port", h2, "8001", 0},
	} {
		if got := add(tt.host, tt.port); got != tt.want {
			t.Errorf("%s: AddPinhole = %d, want %d", tt.name, got, tt.want)
		}
	}
	if got := len(n.Pinholes()); got != 2 {
		t.Errorf("%d pinholes, want 2", got)
	}
}

// countingFirewall is the mapping service with pinhole counters a test
// sets (the fake datapath counts only in a running service).
type countingFirewall struct {
	*nat44.NAT
	packets uint64
	err     error
}

func (f *countingFirewall) PinholePackets(uint16) (uint64, error) { return f.packets, f.err }
