package gateway

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"gateway/nat44"
)

func TestParseConfigMinimal(t *testing.T) {
	c, err := ParseConfig("gw.conf", []byte("config gateway\n\toption wan eth0\n\toption lan br-lan\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File: "gw.conf", WAN: "eth0", LANs: []string{"br-lan"},
		StateDir: defaultStateDir, ControlSocket: DefaultControlSocket,
		NAT:  NATConfig{Filtering: nat44.AddressAndPortDependent, UDPHold: 5 * time.Minute, UDPTimeout: 2 * time.Minute, TCPEstablished: 2*time.Hour + 4*time.Minute},
		IPv6: &IPv6Config{PD: true, WANAddress: true, SixToFour: true, Subnet: 1, RA: true, Teredo: true, TeredoRelay: true, TeredoPort: 3544},
		Web:  &WebConfig{Port: 80, HTTPSPort: 443},
	}
	if diff := cmp.Diff(want, c, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestParseConfigFull(t *testing.T) {
	text := `config gateway 'main'
	option wan 'wan'
	list lan 'br-lan'
	list lan 'eth2'
	option state_dir '/tmp/gw'
	option control_socket '/tmp/gw.sock'
	option log_level 'debug'
	option allow_documentation_wan '1'

config nat
	option filtering 'endpoint-independent'
	option udp_hold '600'
	option udp_timeout '180'
	option tcp_established_timeout '86400'

config redirect
	option name 'game'
	option proto 'tcp udp'
	option src_dport '3074'
	option dest_ip '192.168.1.20'

config redirect
	option name 'off'
	option enabled '0'
	option src_dport '1'
	option dest_ip '192.168.1.21'

config redirect
	option target 'DNAT'
	option src 'wan'
	option dest 'lan'
	option proto 'tcpudp'
	option src_dport '8443'
	option dest_ip '192.168.1.22'
	option dest_port '443'
`
	c, err := ParseConfig("full", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	wantFwd := []nat44.Mapping{
		{Proto: nat44.TCP, ExternalPort: 3074, Internal: ap("192.168.1.20:3074"), Owner: nat44.OwnerStatic, Description: "game"},
		{Proto: nat44.UDP, ExternalPort: 3074, Internal: ap("192.168.1.20:3074"), Owner: nat44.OwnerStatic, Description: "game"},
		{Proto: nat44.TCP, ExternalPort: 8443, Internal: ap("192.168.1.22:443"), Owner: nat44.OwnerStatic},
		{Proto: nat44.UDP, ExternalPort: 8443, Internal: ap("192.168.1.22:443"), Owner: nat44.OwnerStatic},
	}
	if diff := cmp.Diff(wantFwd, c.Forwards, cmpopts.EquateComparable(netip.AddrPort{}, netip.Addr{})); diff != "" {
		t.Errorf("forwards (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"br-lan", "eth2"}, c.LANs); diff != "" {
		t.Errorf("lans (-want +got):\n%s", diff)
	}
	if c.NAT.Filtering != nat44.EndpointIndependent || c.NAT.UDPHold != 10*time.Minute || c.NAT.UDPTimeout != 3*time.Minute || c.NAT.TCPEstablished != 24*time.Hour {
		t.Errorf("nat = %+v", c.NAT)
	}
	if !c.AllowDocumentationWAN || c.StateDir != "/tmp/gw" || c.ControlSocket != "/tmp/gw.sock" || c.LogLevel.String() != "DEBUG" {
		t.Errorf("main = %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	head := "config gateway\n\toption wan wan\n\toption lan lan\n"
	cases := []struct {
		name, text string
		want       []string // each must appear, in this order
	}{
		{"no main section", "config nat\n", []string{"f:1: no 'config gateway' section"}},
		{"no wan", "config gateway\n\toption lan x\n", []string{"f:1: option wan is required"}},
		{"no lan", "config gateway\n\toption wan x\n", []string{"f:1: option lan is required"}},
		{"same iface", "config gateway\n\toption wan x\n\toption lan x\n", []string{`f:1: interface "x" is both WAN and LAN`}},
		{"syntax", head + "option x\n", []string{"f:4:"}},
		{"unknown section", head + "config dnsmasq\n", []string{`f:4: unknown section type "dnsmasq"`}},
		{"unknown option", head + "\toption wna eth0\n", []string{`f:4: unknown option "wna" in a "gateway" section`}},
		{"bad filtering", head + "config nat\n\toption filtering cone\n", []string{`f:5: filtering "cone"`}},
		{"udp hold too short", head + "config nat\n\toption udp_hold 60\n", []string{"f:5: udp_hold 1m0s is under the 2m0s"}},
		{"bad seconds", head + "config nat\n\toption udp_timeout soon\n", []string{`f:5: udp_timeout "soon" is not a number`}},
		{"tcp timeout too short", head + "config nat\n\toption tcp_established_timeout 3600\n", []string{"f:5: tcp_established_timeout 1h0m0s is under"}},
		{"relative state dir", head + "\toption state_dir var\n", []string{`f:4: state_dir "var" is not an absolute path`}},
		{"bad log level", head + "\toption log_level loud\n", []string{`f:4: log_level "loud"`}},
		{"bad bool", head + "\toption allow_documentation_wan maybe\n", []string{`f:4: allow_documentation_wan "maybe" is not a boolean`}},
		{"bad iface", head + "\toption wan 'a/b'\n", []string{`f:4: wan "a/b" is not an interface name`}},
		{"redirect errors in line order", head + "config redirect\n\toption src_dport 0\n\toption dest_ip fe80::1\n\toption proto icmp\n",
			[]string{"f:4: redirect dest_ip \"fe80::1\" is not an IPv4 address", `f:5: src_dport "0" is not a port number`, `f:7: proto "icmp"`}},
		{"redirect without dest_ip", head + "config redirect\n\toption src_dport 80\n", []string{"f:4: redirect needs option dest_ip"}},
		{"redirect without port", head + "config redirect\n\toption dest_ip 192.168.1.2\n", []string{"f:4: redirect needs option src_dport"}},
		{"redirect to multicast", head + "config redirect\n\toption src_dport 80\n\toption dest_ip 224.0.0.1\n", []string{"f:4: redirect: nat44: invalid mapping"}},
		{"redirect target", head + "config redirect\n\toption target SNAT\n\toption src_dport 80\n\toption dest_ip 192.168.1.2\n", []string{`f:5: target "SNAT" is not supported`}},
		{"duplicate forward", head + "config redirect\n\toption src_dport 80\n\toption dest_ip 192.168.1.2\nconfig redirect\n\toption src_dport 80\n\toption dest_ip 192.168.1.3\n",
			[]string{"f:7: redirect tcp/80 is already forwarded on line 4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("f", []byte(tc.text))
			if err == nil {
				t.Fatal("accepted; want an error")
			}
			msg, at := err.Error(), 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error %q\nlacks %q (in order)", msg, w)
				}
				at += i + len(w)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("config gateway\n\toption wan wan\n\toption lan br-lan\n"))
	f.Add([]byte("config gateway\n\toption wan wan\n\tlist lan a\nconfig redirect\n\toption proto 'tcp udp'\n\toption src_dport 80\n\toption dest_ip 192.168.1.2\n"))
	f.Add([]byte("config nat\n\toption filtering endpoint-independent\n\toption udp_hold 120\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig("fuzz", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever is accepted is usable: the services take it as it is.
		if c.WAN == "" || len(c.LANs) == 0 {
			t.Fatalf("accepted a config without interfaces: %+v", c)
		}
		for _, m := range c.Forwards {
			if err := m.Validate(); err != nil {
				t.Fatalf("accepted an invalid forward: %v", err)
			}
		}
		if _, err := nat44.New(nat44.Config{WAN: c.WAN, LANs: c.LANs, Filtering: c.NAT.Filtering, UDPHold: c.NAT.UDPHold, Datapath: nopDatapath{}}); err != nil {
			t.Fatalf("accepted config refused by nat44: %v", err)
		}
	})
}

type nopDatapath struct{}

func (nopDatapath) Apply(*nat44.State) error { return nil }
func (nopDatapath) Drifted() (bool, error)   { return false, nil }
func (nopDatapath) Close() error             { return nil }

func TestParseConfigDHCP(t *testing.T) {
	text := `config gateway
	option wan wan
	option lan 'br-lan eth2'

config dhcp 'lan'
	option start '100'
	option limit '50'
	option leasetime '2h'
	list dns '192.168.1.1'
	list dns '9.9.9.9'
	option domain 'home.arpa'
	option mtu '1492'
	list route '10.0.0.0/8 192.168.1.2'
	option conflict_detection '0'

config host
	option mac '02:00:5E:10:00:01'
	option ip '192.168.1.5'
	option name 'printer'
`
	c, err := ParseConfig("f", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	d := c.DHCP
	if d == nil || d.Interface != "br-lan" || d.Start != 100 || d.Limit != 50 || d.LeaseTime != 2*time.Hour || len(d.DNS) != 2 ||
		d.Domain != "home.arpa" || d.MTU != 1492 || len(d.Routes) != 1 || !d.NoConflictDetection || !d.Authoritative {
		t.Fatalf("dhcp = %+v", d)
	}
	if r := d.Routes[0]; r.Dest != netip.MustParsePrefix("10.0.0.0/8") || r.Gateway != netip.MustParseAddr("192.168.1.2") {
		t.Errorf("route = %+v", r)
	}
	if len(d.Reservations) != 1 || d.Reservations[0].MAC.String() != "02:00:5e:10:00:01" || d.Reservations[0].Hostname != "printer" {
		t.Errorf("reservations = %+v", d.Reservations)
	}
	off, err := ParseConfig("f", []byte("config gateway\n\toption wan w\n\toption lan l\nconfig dhcp\n\toption enabled 0\n"))
	if err != nil || off.DHCP != nil {
		t.Errorf("a disabled dhcp section: %+v, %v", off.DHCP, err)
	}
	for _, tc := range []struct{ text, want string }{
		{"config host\n\toption mac 02:00:5e:00:00:01\n\toption ip 192.168.1.5\n", "f:4: 'host' reservations need a 'dhcp' section"},
		{"config dhcp\nconfig host\n\toption mac nope\n\toption ip 192.168.1.5\n", `f:6: mac "nope" is not an Ethernet address`},
		{"config dhcp\nconfig host\n\toption mac 02:00:5e:00:00:01\n", "f:5: host needs options mac and ip"},
		{"config dhcp\n\toption leasetime 5s\n", "f:5: leasetime 5s is under the least of 10s"},
		{"config dhcp\n\toption leasetime soon\n", `f:5: leasetime "soon"`},
		{"config dhcp\n\tlist route 10.0.0.0/8\n", `f:5: route "10.0.0.0/8"`},
		{"config dhcp\n\toption start 0\n", `f:5: start "0": want a number from 1`},
		{"config dhcp\nconfig dhcp\n", "f:5: a second 'dhcp' section"},
	} {
		_, err := ParseConfig("f", []byte("config gateway\n\toption wan w\n\toption lan l\n"+tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestParseConfigMappingPolicy(t *testing.T) {
	text := `config gateway
	option wan wan
	option lan lan

config nat
	option host_limit '32'
	option table_limit '1024'
	option secure_mode '0'
	option min_lifetime '60'
	option max_lifetime '3600'
	list rule 'allow 1024-65535 192.168.1.0/24 1024-65535'
	list rule 'deny 0-65535 0.0.0.0/0 0-65535'
	list reserved_port 'tcp 22'
	list reserved_port 'tcpudp 5000-5001'
`
	c, err := ParseConfig("f", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := nat44.ParseRule("allow 1024-65535 192.168.1.0/24 1024-65535")
	r2, _ := nat44.ParseRule("deny 0-65535 0.0.0.0/0 0-65535")
	want := nat44.Policy{Rules: []nat44.Rule{r1, r2}, AllowThirdParty: true, HostLimit: 32, TableLimit: 1024, MinLifetime: time.Minute, MaxLifetime: time.Hour}
	if diff := cmp.Diff(want, c.NAT.Policy, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	wantRes := []nat44.Key{{Proto: nat44.TCP, ExternalPort: 22}, {Proto: nat44.TCP, ExternalPort: 5000}, {Proto: nat44.TCP, ExternalPort: 5001}, {Proto: nat44.UDP, ExternalPort: 5000}, {Proto: nat44.UDP, ExternalPort: 5001}}
	if diff := cmp.Diff(wantRes, c.NAT.Reserved); diff != "" {
		t.Errorf("reserved (-want +got):\n%s", diff)
	}
	// Defaults: secure mode on, nat44's limits and the default rules.
	d, err := ParseConfig("f", []byte("config gateway\n\toption wan w\n\toption lan l\n"))
	if err != nil || d.NAT.Policy.AllowThirdParty || d.NAT.Policy.Rules != nil || d.NAT.Policy.HostLimit != 0 {
		t.Errorf("default policy %+v, %v", d.NAT.Policy, err)
	}
	head := "config gateway\n\toption wan w\n\toption lan l\nconfig nat\n"
	for _, tc := range []struct{ text, want string }{
		{"\tlist rule 'allow 1-2 3'\n", "f:5: nat44: rule"},
		{"\tlist rule 'permit 1 10.0.0.0/8 1'\n", `f:5: nat44: rule "permit 1 10.0.0.0/8 1": "permit" is not allow or deny`},
		{"\toption host_limit '0'\n", `f:5: host_limit "0": want a number from 1`},
		{"\toption host_limit '200'\n\toption table_limit '100'\n", "f:4: nat44: host limit 200 is over the table limit 100"},
		{"\toption min_lifetime '600'\n\toption max_lifetime '60'\n", "f:4: nat44: lifetime range"},
		{"\toption secure_mode 'maybe'\n", `f:5: secure_mode "maybe" is not a boolean`},
		{"\tlist reserved_port '22'\n", `f:5: reserved_port "22"`},
		{"\tlist reserved_port 'sctp 22'\n", `f:5: reserved_port "sctp 22"`},
		{"\tlist reserved_port 'tcp 9-2'\n", `f:5: reserved_port "tcp 9-2"`},
		{"\tlist reserved_port 'tcp 1-65535'\n", `f:5: reserved_port "tcp 1-65535"`},
	} {
		_, err := ParseConfig("f", []byte(head+tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestParseConfigReservationDuplicates(t *testing.T) {
	text := "config gateway\n\toption wan w\n\toption lan l\nconfig dhcp\n" +
		"config host\n\toption mac 02:00:5e:00:00:01\n\toption ip 192.168.1.5\n" +
		"config host\n\toption mac 02:00:5e:00:00:01\n\toption ip 192.168.1.6\n" +
		"config host\n\toption mac 02:00:5e:00:00:02\n\toption ip 192.168.1.5\n"
	_, err := ParseConfig("f", []byte(text))
	for _, want := range []string{"f:8: host 02:00:5e:00:00:01 is already reserved on line 5", "f:11: ip 192.168.1.5 is already reserved on line 5"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want %q", err, want)
		}
	}
}

// TestCheckDHCP: what the DHCP service would refuse at start, check-config
// and a reload refuse, with the file and the section's line.
func TestCheckDHCP(t *testing.T) {
	lan := netip.MustParsePrefix("192.168.1.1/24")
	base := "config gateway\n\toption wan w\n\toption lan l\nconfig dhcp\n\toption leasetime 1h\n"
	for _, tc := range []struct{ name, text, want string }{
		{"ok", "config host\n\toption mac 02:00:5e:00:00:01\n\toption ip 192.168.1.5\n", ""},
		{"reservation outside", "config host\n\toption mac 02:00:5e:00:00:01\n\toption ip 10.9.9.9\n", "f:4: dhcp on l (192.168.1.1/24):"},
		{"reservation is the server", "config host\n\toption mac 02:00:5e:00:00:01\n\toption ip 192.168.1.1\n", "f:4: dhcp on l"},
		{"route gateway outside", "\tlist route '10.0.0.0/8 172.16.0.1'\n", "gateway 172.16.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := base + tc.text
			if strings.HasPrefix(tc.text, "\t") {
				text = base + tc.text
			}
			c, err := ParseConfig("f", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			err = checkDHCP(c, lan)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkDHCP = %v; want %q", err, tc.want)
			}
		})
	}
	// A pool that does not fit the subnet.
	c, err := ParseConfig("f", []byte(base+"\toption start 250\n\toption limit 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDHCP(c, lan); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("pool past the subnet: %v", err)
	}
}

func TestParseConfigUPnP(t *testing.T) {
	base := "config gateway\n\toption wan 'wan'\n\toption lan 'br-lan'\n"
	tests := []struct {
		name string
		text string
		want *UPnPConfig
		perm bool
		err  string
	}{
		{"absent", base, nil, false, ""},
		{"defaults", base + "config upnp\n", &UPnPConfig{Port: 5000, LeaseCap: 604800 * time.Second, PermanentV1: true}, true, ""},
		{"options", base + "config upnp\n\toption port '5555'\n\toption lease_cap '3600'\n\toption permanent_v1 '0'\n", &UPnPConfig{Port: 5555, LeaseCap: time.Hour}, false, ""},
		{"disabled", base + "config upnp\n\toption enabled '0'\n", nil, false, ""},
		{"unknown option", base + "config upnp\n\toption frob '1'\n", nil, false, `unknown option "frob"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig("test.conf", []byte(tt.text))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.UPnP); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if c.NAT.Policy.PermanentUPnP != tt.perm {
				t.Errorf("PermanentUPnP = %v, want %v", c.NAT.Policy.PermanentUPnP, tt.perm)
			}
		})
	}
}

func TestParseConfigPMP(t *testing.T) {
	base := "config gateway\n\toption wan w\n\toption lan l\n"
	tests := []struct {
		name string
		text string
		want *PMPConfig
	}{
		{"absent", base, nil},
		{"empty: both on", base + "config pmp\n", &PMPConfig{NATPMP: true, PCP: true}},
		{"PCP only", base + "config pmp\n\toption natpmp 0\n", &PMPConfig{PCP: true}},
		{"both off", base + "config pmp\n\toption natpmp 0\n\toption pcp 0\n", nil},
		{"disabled", base + "config pmp\n\toption enabled 0\n", nil},
	}
	for _, tt := range tests {
		c, err := ParseConfig("f", []byte(tt.text))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if d := cmp.Diff(tt.want, c.PMP); d != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, d)
		}
	}
	if _, err := ParseConfig("f", []byte(base+"config pmp\n\toption natpmp maybe\n")); err == nil || !strings.Contains(err.Error(), "f:5") {
		t.Errorf("bad bool: %v", err)
	}
}

func TestParseConfigIPv6(t *testing.T) {
	base := "config gateway\n\toption wan eth0\n\toption lan br-lan\n"
	c, err := ParseConfig("gw.conf", []byte(base+`
config ipv6 'ipv6'
	option pd 0
	option pd_hint 56
	option relay 192.0.2.99
	option prefix 2001:db8:5::/48
	option ula fd12:3456:789a:1::/64
	option subnet 7
	list dns 2001:db8::53
	list dns 2001:db8::54
	list domain lan.example
	list domain home.example
	option mtu 1400
	option ra_interval 30
	list teredo_server 198.51.100.30
	list teredo_server teredo.example.net
	option teredo_relay 0
	option teredo_port 3545
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &IPv6Config{Line: 5, PDHint: 56, WANAddress: true, SixToFour: true, Subnet: 7, RA: true,
		Relay: netip.MustParseAddr("192.0.2.99"), Static: netip.MustParsePrefix("2001:db8:5::/48"),
		ULA: netip.MustParsePrefix("fd12:3456:789a:1::/64"), DNS: []netip.Addr{netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("2001:db8::54")},
		Domains: []string{"lan.example", "home.example"}, MTU: 1400, RAInterval: 30 * time.Second,
		TeredoServers: []string{"198.51.100.30", "teredo.example.net"}, Teredo: true, TeredoPort: 3545}
	if diff := cmp.Diff(want, c.IPv6, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if c, err := ParseConfig("gw.conf", []byte(base+"config ipv6\n\toption enabled 0\n")); err != nil || c.IPv6 != nil {
		t.Fatalf("enabled 0: %+v, %v; want no IPv6", c.IPv6, err)
	}
	for _, tt := range []struct{ text, want string }{
		{"option relay 10.0.0.1", "gw.conf:6: relay 10.0.0.1 is not a public unicast address"},
		{"option relay 2001:db8::1", `gw.conf:6: relay "2001:db8::1" is not an IPv4 address`},
		{"option prefix 2001:db8:1:2::/80", "gw.conf:6: prefix 2001:db8:1:2::/80: longer than /64"},
		{"option prefix 2001:db8:1:2::1/64", "has bits set past its length (want 2001:db8:1:2::/64)"},
		{"option prefix fd00::/48", "not a global unicast prefix"},
		{"option ula 2001:db8::/64", "want a /64 in fd00::/8"},
		{"option pd_hint 65", "pd_hint \"65\": want a number from 0 to 64"},
		{"list dns 192.0.2.1", `dns "192.0.2.1" is not an IPv6 address`},
		{"list domain bücher.example", `domain "bücher.example" is not an ASCII letter-digit-hyphen domain name`},
		{"list domain 'my lan'", `domain "my lan" is not an ASCII`},
		{"option mtu 1000", "mtu \"1000\": want a number from 1280 to 65535"},
		{"option ra_interval 3600", "ra_interval 1h0m0s is over RFC 4861's 1800 s"},
		{"list teredo_server 10.1.2.3", `gw.conf:6: teredo_server "10.1.2.3": not a public unicast address`},
		{"list teredo_server 2001:db8::1", `teredo_server "2001:db8::1": not an IPv4 address`},
		{"list teredo_server 'a b'", `teredo_server "a b": not an IPv4 address or host name`},
		{"option teredo_port 0", `teredo_port "0": want a number from 1 to 65535`},
	} {
		_, err := ParseConfig("gw.conf", []byte(base+"\nconfig ipv6\n\t"+tt.text+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.text, err, tt.want)
		}
	}
	if _, err := ParseConfig("gw.conf", []byte(base+"config ipv6\nconfig ipv6\n")); err == nil || !strings.Contains(err.Error(), "a second 'ipv6' section") {
		t.Errorf("two sections: %v", err)
	}
}

func TestChooseUplink(t *testing.T) {
	pf := netip.MustParsePrefix
	ula := pf("fd00:1:2:3::/64")
	for _, tt := range []struct {
		name   string
		in     uplinkInputs
		subnet uint16
		want   netip.Prefix
		uplink string
		err    string
	}{
		{"nothing: the ULA", uplinkInputs{ULA: ula}, 1, ula, UplinkNone, ""},
		{"delegated first", uplinkInputs{Delegated: pf("2001:db8:1::/56"), Sixto4: pf("2002:cb00:7102::/48"), Static: pf("2001:db8:9::/48"), ULA: ula}, 1, pf("2001:db8:1:1::/64"), UplinkPD, ""},
		{"6to4 before static", uplinkInputs{Sixto4: pf("2002:cb00:7102::/48"), Static: pf("2001:db8:9::/48"), ULA: ula}, 1, pf("2002:cb00:7102:1::/64"), UplinkSixto4, ""},
		{"static last", uplinkInputs{Static: pf("2001:db8:9::/48"), ULA: ula}, 0x2a, pf("2001:db8:9:2a::/64"), UplinkStatic, ""},
		{"static before Teredo", uplinkInputs{Static: pf("2001:db8:9::/48"), ULA: ula, Teredo: true}, 1, pf("2001:db8:9:1::/64"), UplinkStatic, ""},
		{"Teredo: the ULA with a default route", uplinkInputs{ULA: ula, Teredo: true}, 1, ula, UplinkTeredo, ""},
		{"a /64 is its own subnet", uplinkInputs{Delegated: pf("2001:db8:1:5::/64")}, 1, pf("2001:db8:1:5::/64"), UplinkPD, ""},
		{"subnet past a /60", uplinkInputs{Delegated: pf("2001:db8:1:10::/60")}, 16, netip.Prefix{}, "", "subnet 16 does not fit in 2001:db8:1:10::/60"},
		{"last subnet of a /60", uplinkInputs{Delegated: pf("2001:db8:1:10::/60")}, 15, pf("2001:db8:1:1f::/64"), UplinkPD, ""},
	} {
		got, uplink, err := chooseUplink(tt.in, tt.subnet)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want || uplink != tt.uplink {
			t.Errorf("%s: %v %s %v, want %v %s", tt.name, got, uplink, err, tt.want, tt.uplink)
		}
	}
}
