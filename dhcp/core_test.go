package dhcp

import (
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	// The options of an OFFER/ACK to a client without a parameter request
	// list, with testConfig (no MTU, no routes).
	leaseOpts = []uint8{1, 3, 6, 15, 28, 51, 53, 54, 58, 59}
	nakOpts   = []uint8{53, 54, 56}
	infoOpts  = []uint8{1, 3, 6, 15, 28, 53, 54}
)

func TestValidate(t *testing.T) {
	mac1 := mac("02:00:00:00:00:01")
	tests := []struct {
		name string
		cfg  CoreConfig
		want []string // substrings, one per expected problem; nil = valid
	}{
		{name: "minimal", cfg: CoreConfig{ServerAddr: netip.MustParsePrefix("10.0.0.1/24")}},
		{name: "small subnet gets a pool from host 1", cfg: CoreConfig{ServerAddr: netip.MustParsePrefix("10.0.0.1/29")}},
		{name: "missing", cfg: CoreConfig{}, want: []string{"ServerAddr is required"}},
		{name: "ipv6", cfg: CoreConfig{ServerAddr: netip.MustParsePrefix("fd00::1/64")}, want: []string{"not an IPv4 prefix"}},
		{name: "slash 31", cfg: CoreConfig{ServerAddr: netip.MustParsePrefix("10.0.0.1/31")}, want: []string{"between /8 and /30"}},
		{name: "server is network address", cfg: CoreConfig{ServerAddr: netip.MustParsePrefix("10.0.0.0/24")}, want: []string{"network or broadcast"}},
		{
			name: "every problem at once",
			cfg: CoreConfig{
				ServerAddr: netip.MustParsePrefix("192.168.1.1/24"),
				PoolStart:  ip("192.168.1.200"), PoolEnd: ip("192.168.2.10"),
				LeaseTime: MinLeaseTime - time.Second, OfferHold: -1, Quarantine: -1,
				Router: ip("10.0.0.1"),
				DNS:    []netip.Addr{ip("::1")},
				Domain: "bad_domain",
				MTU:    60,
				Routes: []Route{
					{Dest: netip.MustParsePrefix("10.1.2.3/16"), Gateway: ip("192.168.1.254")},
					{Dest: netip.MustParsePrefix("10.2.0.0/16"), Gateway: ip("172.16.0.1")},
				},
				Reservations: []Reservation{
					{MAC: mac1, Addr: ip("192.168.1.50")},
					{MAC: mac1, Addr: ip("192.168.1.51")},
					{MAC: mac("02:00:00:00:00:02"), Addr: ip("192.168.1.50")},
					{MAC: mac("01:00:5e:00:00:01"), Addr: ip("192.168.1.1"), Hostname: "-x"},
					{MAC: net.HardwareAddr{1, 2, 3}, Addr: ip("10.0.0.9")},
				},
			},
			want: []string{
				"PoolEnd 192.168.2.10 is not a host address",
				"LeaseTime " + (MinLeaseTime - time.Second).String(),
				"OfferHold -1ns is negative",
				"Quarantine -1ns is negative",
				"Router 10.0.0.1 is not a host address",
				"DNS server ::1",
				`Domain "bad_domain"`,
				"MTU 60",
				"route 10.1.2.3/16: destination has host bits set (did you mean 10.1.0.0/16?)",
				"route 10.2.0.0/16: gateway 172.16.0.1",
				"02:00:00:00:00:01: MAC reserved twice",
				"192.168.1.50 is already reserved for 02:00:00:00:00:01",
				"multicast",
				"192.168.1.1 is the server's own address",
				`hostname "-x"`,
				"MAC must be 6 bytes",
				"10.0.0.9 is not a host address",
			},
		},
		{
			name: "pool reversed and one-sided",
			cfg:  CoreConfig{ServerAddr: netip.MustParsePrefix("192.168.1.1/24"), PoolStart: ip("192.168.1.100"), PoolEnd: ip("192.168.1.20")},
			want: []string{"PoolStart 192.168.1.100 is after PoolEnd 192.168.1.20"},
		},
		{
			name: "only one pool bound",
			cfg:  CoreConfig{ServerAddr: netip.MustParsePrefix("192.168.1.1/24"), PoolStart: ip("192.168.1.100")},
			want: []string{"PoolStart and PoolEnd must be set together"},
		},
		{
			name: "pool of the server alone",
			cfg:  CoreConfig{ServerAddr: netip.MustParsePrefix("192.168.1.1/24"), PoolStart: ip("192.168.1.1"), PoolEnd: ip("192.168.1.1")},
			want: []string{"holds only the server's own address"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := NewCore(tt.cfg); err != nil {
					t.Fatalf("NewCore: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %d problems", len(tt.want))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "dhcp: ") {
					t.Errorf("problem without the package prefix: %q", l)
				}
			}
			if _, err := NewCore(tt.cfg); err == nil {
				t.Errorf("NewCore accepted what Validate refused")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name      string
		cfg       CoreConfig
		wantStart netip.Addr
		wantEnd   netip.Addr
		wantFree  int
	}{
		{"slash 24", testConfig(), ip("192.168.1.10"), ip("192.168.1.254"), 245},
		{"server inside the pool", CoreConfig{ServerAddr: netip.MustParsePrefix("10.0.0.100/24")}, ip("10.0.0.10"), ip("10.0.0.254"), 244},
		{"slash 29", CoreConfig{ServerAddr: netip.MustParsePrefix("10.0.0.1/29")}, ip("10.0.0.1"), ip("10.0.0.6"), 5},
		{"slash 16", CoreConfig{ServerAddr: netip.MustParsePrefix("172.16.0.1/16")}, ip("172.16.0.10"), ip("172.16.255.254"), 65536 - 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(t, tt.cfg)
			if c.cfg.PoolStart != tt.wantStart || c.cfg.PoolEnd != tt.wantEnd {
				t.Errorf("pool %s-%s, want %s-%s", c.cfg.PoolStart, c.cfg.PoolEnd, tt.wantStart, tt.wantEnd)
			}
			if s := c.Stats(); s.Free != tt.wantFree {
				t.Errorf("Free = %d, want %d", s.Free, tt.wantFree)
			}
			if c.cfg.LeaseTime != 12*time.Hour || c.cfg.OfferHold != time.Minute || c.cfg.Quarantine != 10*time.Minute {
				t.Errorf("times: %v %v %v", c.cfg.LeaseTime, c.cfg.OfferHold, c.cfg.Quarantine)
			}
			if c.cfg.Router != tt.cfg.ServerAddr.Addr() || !slices.Equal(c.cfg.DNS, []netip.Addr{tt.cfg.ServerAddr.Addr()}) {
				t.Errorf("router %s, DNS %v: want the server", c.cfg.Router, c.cfg.DNS)
			}
			mustCheck(t, c)
		})
	}
}

// step is one message (or probe result) of a conversation and what the core
// must answer.
type step struct {
	msg       *dhcpv4.DHCPv4
	at        time.Duration // after t0
	probeDone netip.Addr    // instead of msg: the result of a probe
	inUse     bool
	want      summary
}

func runSteps(t *testing.T, c *Core, steps []step) {
	t.Helper()
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.probeDone.IsValid() {
			c.ProbeDone(s.probeDone, s.inUse, now)
			mustCheck(t, c)
			continue
		}
		got := summarize(handle(c, s.msg, now))
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Fatalf("step %d (%s): (-want +got)\n%s", i, s.msg.MessageType(), diff)
		}
		mustCheck(t, c)
	}
}

func TestStateMachine(t *testing.T) {
	a := newClient("02:00:00:00:00:0a")
	b := newClient("02:00:00:00:00:0b")
	bc := &client{mac: a.mac, bcast: true}
	relayed := &client{mac: a.mac, giaddr: ip("192.168.1.3")}
	farRelay := &client{mac: a.mac, giaddr: ip("10.9.9.9")}
	a50, a60, a77 := ip("192.168.1.50"), ip("192.168.1.60"), ip("192.168.1.77")
	hwA50 := "hardware 192.168.1.50 02:00:00:00:00:0a"
	want50 := a.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(a50))))

	// dora binds a50 to a without a broadcast flag.
	dora := []step{
		{msg: want50, want: summary{Probe: "192.168.1.50"}},
		{probeDone: a50},
		{msg: want50, want: summary{Type: "OFFER", Yiaddr: "192.168.1.50", To: hwA50, Options: leaseOpts}},
		{msg: a.selecting(serverIP, a50), want: summary{Type: "ACK", Yiaddr: "192.168.1.50", To: hwA50, Options: leaseOpts, Commit: "192.168.1.50"}},
	}
	nak := summary{Type: "NAK", To: "broadcast 255.255.255.255", Options: nakOpts}
	tests := []struct {
		name  string
		cfg   func(*CoreConfig)
		steps []step
	}{
		{name: "DISCOVER OFFER REQUEST ACK to chaddr", steps: dora},
		{name: "broadcast flag", steps: []step{
			{msg: bc.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(a50)))), want: summary{Probe: "192.168.1.50"}},
			{probeDone: a50},
			{msg: bc.discover(), want: summary{Type: "OFFER", Yiaddr: "192.168.1.50", Broadcast: true, To: "broadcast 255.255.255.255", Options: leaseOpts}},
			{msg: bc.selecting(serverIP, a50), want: summary{Type: "ACK", Yiaddr: "192.168.1.50", Broadcast: true, To: "broadcast 255.255.255.255", Options: leaseOpts, Commit: "192.168.1.50"}},
		}},
		{name: "relayed: replies to the relay, NAK with broadcast bit", steps: []step{
			{msg: relayed.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(a50)))), want: summary{Probe: "192.168.1.50"}},
			{probeDone: a50},
			{msg: relayed.discover(), want: summary{Type: "OFFER", Yiaddr: "192.168.1.50", Giaddr: "192.168.1.3", To: "relay 192.168.1.3", Options: leaseOpts}},
			{msg: relayed.selecting(serverIP, a60), want: summary{Type: "NAK", Giaddr: "192.168.1.3", Broadcast: true, To: "relay 192.168.1.3", Options: nakOpts}},
		}},
		{name: "relayed from a subnet we do not serve", steps: []step{
			{msg: farRelay.discover(), want: summary{Drop: DropOtherSubnet}},
		}},
		{name: "SELECTING another server forgets our offer", steps: []step{
			dora[0], dora[1], dora[2],
			{msg: a.selecting(otherSrv, ip("192.168.1.99")), want: summary{Drop: DropWrongServer}},
			{msg: a.selecting(serverIP, a50), want: nak},
		}},
		{name: "SELECTING an address not offered", steps: []step{
			dora[0], dora[1], dora[2],
			{msg: a.selecting(serverIP, a60), want: nak},
		}},
		{name: "REQUEST retransmitted after the ACK", steps: append(slices.Clone(dora),
			step{msg: a.selecting(serverIP, a50), at: time.Second, want: dora[3].want}),
		},
		{name: "DISCOVER from a bound client offers its lease without probe", steps: append(slices.Clone(dora),
			step{msg: a.discover(), want: summary{Type: "OFFER", Yiaddr: "192.168.1.50", To: hwA50, Options: leaseOpts}}),
		},
		{name: "INIT-REBOOT with its lease", steps: append(slices.Clone(dora),
			step{msg: a.initReboot(a50), at: time.Hour, want: summary{Type: "ACK", Yiaddr: "192.168.1.50", To: hwA50, Options: leaseOpts, Commit: "192.168.1.50"}}),
		},
		{name: "INIT-REBOOT on the wrong network", steps: []step{
			{msg: a.initReboot(ip("10.0.0.5")), want: nak},
		}},
		{name: "INIT-REBOOT with an address held by another", steps: append(slices.Clone(dora),
			step{msg: b.initReboot(a50), want: nak}),
		},
		{name: "INIT-REBOOT unknown, authoritative: lease rebuilt without probe", steps: []step{
			{msg: a.initReboot(a77), want: summary{Type: "ACK", Yiaddr: "192.168.1.77", To: "hardware 192.168.1.77 02:00:00:00:00:0a", Options: leaseOpts, Commit: "192.168.1.77"}},
		}},
		{name: "INIT-REBOOT unknown, not authoritative: silent", cfg: notAuthoritative, steps: []step{
			{msg: a.initReboot(a77), want: summary{Drop: DropUnknownClient}},
		}},
		{name: "INIT-REBOOT outside the pool, authoritative", steps: []step{
			{msg: a.initReboot(ip("192.168.1.5")), want: nak},
		}},
		{name: "INIT-REBOOT outside the pool, not authoritative", cfg: notAuthoritative, steps: []step{
			{msg: a.initReboot(ip("192.168.1.5")), want: summary{Drop: DropUnknownClient}},
		}},
		{name: "INIT-REBOOT for the server's address", steps: []step{
			{msg: a.initReboot(serverIP), want: nak},
		}},
		{name: "INIT-REBOOT after its lease expired, not authoritative: our record says it is the client's", cfg: notAuthoritative, steps: append(slices.Clone(dora),
			step{msg: a.initReboot(a50), at: 13 * time.Hour, want: summary{Type: "ACK", Yiaddr: "192.168.1.50", To: hwA50, Options: leaseOpts, Commit: "192.168.1.50"}}),
		},
		{name: "INIT-REBOOT with another address than its lease", steps: append(slices.Clone(dora),
			step{msg: a.initReboot(a77), want: nak}),
		},
		{name: "RENEWING: ACK unicast to ciaddr", steps: append(slices.Clone(dora),
			step{msg: a.renew(a50), at: 6 * time.Hour, want: summary{Type: "ACK", Yiaddr: "192.168.1.50", Ciaddr: "192.168.1.50", To: "unicast 192.168.1.50", Options: leaseOpts, Commit: "192.168.1.50"}}),
		},
		{name: "REBINDING with the broadcast flag: still unicast to ciaddr", steps: append(slices.Clone(dora),
			step{msg: bc.renew(a50), at: 11 * time.Hour, want: summary{Type: "ACK", Yiaddr: "192.168.1.50", Ciaddr: "192.168.1.50", Broadcast: true, To: "unicast 192.168.1.50", Options: leaseOpts, Commit: "192.168.1.50"}}),
		},
		{name: "RENEWING another client's address", steps: append(slices.Clone(dora),
			step{msg: b.renew(a50), want: nak}),
		},
		{name: "RENEWING unknown, not authoritative", cfg: notAuthoritative, steps: []step{
			{msg: a.renew(a77), want: summary{Drop: DropUnknownClient}},
		}},
		{name: "REQUEST without any address", steps: []step{
			{msg: a.msg(dhcpv4.MessageTypeRequest), want: summary{Drop: DropMalformed}},
		}},
		{name: "SELECTING and DECLINE without option 50", steps: append(slices.Clone(dora),
			step{msg: a.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(netIPv4(serverIP))), dhcpv4.WithClientIP(netIPv4(a50))),
				want: summary{Drop: DropMalformed}},
			step{msg: a.msg(dhcpv4.MessageTypeDecline, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(netIPv4(serverIP))), dhcpv4.WithClientIP(netIPv4(a50))),
				want: summary{Drop: DropMalformed}},
		)},
		{name: "RELEASE, then the same address back without probe", steps: append(slices.Clone(dora),
			step{msg: a.release(serverIP, a50), at: time.Minute, want: summary{Type: "none", Released: "192.168.1.50"}},
			step{msg: a.renew(a50), at: 2 * time.Minute, want: summary{Type: "ACK", Yiaddr: "192.168.1.50", Ciaddr: "192.168.1.50", To: "unicast 192.168.1.50", Options: leaseOpts, Commit: "192.168.1.50"}},
			step{msg: a.release(serverIP, a50), at: 3 * time.Minute, want: summary{Type: "none", Released: "192.168.1.50"}},
			step{msg: a.discover(), at: 4 * time.Minute, want: summary{Type: "OFFER", Yiaddr: "192.168.1.50", To: hwA50, Options: leaseOpts}},
		)},
		{name: "RELEASE of another client's address", steps: append(slices.Clone(dora),
			step{msg: b.release(serverIP, a50), want: summary{Drop: DropNotOurs}},
			step{msg: a.release(otherSrv, a50), want: summary{Drop: DropWrongServer}},
		)},
		{name: "DECLINE quarantines the address until Quarantine ends", steps: append(slices.Clone(dora),
			step{msg: b.decline(serverIP, a50), want: summary{Drop: DropNotOurs}},
			step{msg: a.decline(serverIP, a50), at: time.Second, want: summary{Type: "none", Released: "192.168.1.50"}},
			step{msg: b.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(a50)))), at: 2 * time.Second,
				want: summary{Probe: c0pickIn(testConfig(), b.mac)}},
			step{msg: a.renew(a50), at: 3 * time.Second, want: nak},
			step{msg: newClient("02:00:00:00:00:0c").discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(a50)))), at: 10*time.Minute + 2*time.Second,
				want: summary{Probe: "192.168.1.50"}},
		)},
		{name: "INFORM", steps: []step{
			{msg: a.inform(a77), want: summary{Type: "ACK", Ciaddr: "192.168.1.77", To: "unicast 192.168.1.77", Options: infoOpts}},
			{msg: a.inform(ip("10.1.1.1")), want: summary{Drop: DropOtherSubnet}},
			{msg: a.msg(dhcpv4.MessageTypeInform), want: summary{Drop: DropMalformed}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			runSteps(t, newCore(t, cfg), tt.steps)
		})
	}
}

func notAuthoritative(c *CoreConfig) { c.Authoritative = false }

func TestMalformed(t *testing.T) {
	k := newClient("02:00:00:00:00:01")
	mod := func(f func(m *dhcpv4.DHCPv4)) *dhcpv4.DHCPv4 {
		m := k.discover()
		f(m)
		return m
	}
	tests := []struct {
		name string
		msg  *dhcpv4.DHCPv4
		want string
	}{
		{"nil", nil, DropMalformed},
		{"BOOTREPLY", mod(func(m *dhcpv4.DHCPv4) { m.OpCode = dhcpv4.OpcodeBootReply }), DropNotRequest},
		{"no message type (BOOTP)", mod(func(m *dhcpv4.DHCPv4) { m.Options.Del(dhcpv4.OptionDHCPMessageType) }), DropMalformed},
		{"message type of 2 bytes", mod(func(m *dhcpv4.DHCPv4) { m.Options[53] = []byte{1, 1} }), DropMalformed},
		{"OFFER from a client", mod(func(m *dhcpv4.DHCPv4) { m.Options[53] = []byte{2} }), DropNotRequest},
		{"LEASEQUERY", mod(func(m *dhcpv4.DHCPv4) { m.Options[53] = []byte{10} }), DropUnsupported},
		{"token ring", mod(func(m *dhcpv4.DHCPv4) { m.HWType = iana.HWTypeIEEE802 }), DropMalformed},
		{"16-byte chaddr", mod(func(m *dhcpv4.DHCPv4) { m.ClientHWAddr = make(net.HardwareAddr, 16) }), DropMalformed},
		{"zero chaddr", mod(func(m *dhcpv4.DHCPv4) { m.ClientHWAddr = make(net.HardwareAddr, 6) }), DropMalformed},
		{"broadcast chaddr", mod(func(m *dhcpv4.DHCPv4) { m.ClientHWAddr = mac("ff:ff:ff:ff:ff:ff") }), DropMalformed},
		{"requested address of 3 bytes", mod(func(m *dhcpv4.DHCPv4) { m.Options[50] = []byte{1, 2, 3} }), DropMalformed},
		{"server id of 5 bytes", mod(func(m *dhcpv4.DHCPv4) { m.Options[54] = []byte{1, 2, 3, 4, 5} }), DropMalformed},
		{"IPv6 ciaddr", mod(func(m *dhcpv4.DHCPv4) { m.ClientIPAddr = net.ParseIP("2001:db8::1") }), DropMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(t, testConfig())
			got := handle(c, tt.msg, t0)
			if diff := cmp.Diff(summary{Drop: tt.want}, summarize(got)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if n := c.Stats().Drops[tt.want]; n != 1 {
				t.Errorf("Drops[%s] = %d, want 1", tt.want, n)
			}
		})
	}
}

func TestProbeFlow(t *testing.T) {
	t.Run("offer withheld until the probe is done; conflict probes the next address", func(t *testing.T) {
		c := newCore(t, testConfig())
		k := newClient("02:00:00:00:00:01")
		d := k.discover()
		a1 := handle(c, d, t0)
		if !a1.Probe.IsValid() || a1.Reply != nil {
			t.Fatalf("first DISCOVER: %+v, want a probe and no reply", summarize(a1))
		}
		if got := summarize(handle(c, d, t0.Add(time.Second))); got.Drop != DropProbePending {
			t.Fatalf("DISCOVER during the probe: %+v, want %s", got, DropProbePending)
		}
		c.ProbeDone(a1.Probe, true, t0.Add(time.Second))
		a2 := handle(c, d, t0.Add(time.Second))
		if !a2.Probe.IsValid() || a2.Probe == a1.Probe {
			t.Fatalf("after a conflict: %+v, want a probe of another address than %s", summarize(a2), a1.Probe)
		}
		c.ProbeDone(a2.Probe, false, t0.Add(2*time.Second))
		a3 := handle(c, d, t0.Add(2*time.Second))
		if got := summarize(a3); got.Type != "OFFER" || got.Yiaddr != a2.Probe.String() {
			t.Fatalf("after a clean probe: %+v, want OFFER of %s", got, a2.Probe)
		}
		s := c.Stats()
		if s.Probes != 2 || s.Conflicts != 1 || s.Quarantined != 1 || s.Offered != 1 {
			t.Errorf("stats %+v", s)
		}
		// The conflicting address stays out of the pool until Quarantine.
		other := newClient("02:00:00:00:00:02")
		if got := summarize(handle(c, other.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(a1.Probe)))), t0.Add(3*time.Second))); got.Probe == a1.Probe.String() {
			t.Errorf("quarantined %s probed for another client", a1.Probe)
		}
		mustCheck(t, c)
	})
	t.Run("stale probe results are ignored", func(t *testing.T) {
		c := newCore(t, testConfig())
		c.ProbeDone(ip("192.168.1.20"), true, t0)
		if s := c.Stats(); s.Quarantined != 0 || s.Free != 245 {
			t.Errorf("stats after a stale probe: %+v", s)
		}
	})
	t.Run("a probe whose answer never comes is released after OfferHold", func(t *testing.T) {
		c := newCore(t, testConfig())
		k := newClient("02:00:00:00:00:01")
		a := handle(c, k.discover(), t0)
		if got := c.Expire(t0.Add(time.Minute)); len(got) != 0 {
			t.Errorf("Expire returned %v: probes are not leases", got)
		}
		if s := c.Stats(); s.Offered != 0 || s.Free != 245 {
			t.Errorf("stats %+v", s)
		}
		c.ProbeDone(a.Probe, false, t0.Add(time.Minute)) // too late: ignored
		if got := summarize(handle(c, k.discover(), t0.Add(time.Minute))); got.Probe != a.Probe.String() {
			t.Errorf("DISCOVER again: %+v, want the same address probed again", got)
		}
	})
	t.Run("never probe a reservation nor the client's own previous address", func(t *testing.T) {
		cfg := testConfig()
		r := newClient("02:00:00:00:00:77")
		cfg.Reservations = []Reservation{{MAC: r.mac, Addr: ip("192.168.1.200")}}
		c := newCore(t, cfg)
		if got := summarize(handle(c, r.discover(), t0)); got.Type != "OFFER" || got.Yiaddr != "192.168.1.200" {
			t.Errorf("reserved client: %+v, want OFFER of .200 without probe", got)
		}
		k := newClient("02:00:00:00:00:01")
		addr := bindClient(t, c, k, t0)
		c.Expire(t0.Add(13 * time.Hour))
		if got := summarize(handle(c, k.discover(), t0.Add(13*time.Hour))); got.Type != "OFFER" || got.Yiaddr != addr.String() {
			t.Errorf("returning client: %+v, want OFFER of %s without probe", got, addr)
		}
		if s := c.Stats(); s.Probes != 1 {
			t.Errorf("Probes = %d, want 1 (the first binding)", s.Probes)
		}
	})
}

func TestAllocation(t *testing.T) {
	t.Run("stable pick is the same on every core", func(t *testing.T) {
		var first []netip.Addr
		for run := range 3 {
			c := newCore(t, testConfig())
			var got []netip.Addr
			for i := range 20 {
				got = append(got, offerFor(t, c, newClient(net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}.String()), t0))
			}
			if run == 0 {
				first = got
				continue
			}
			if diff := cmp.Diff(first, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Fatalf("run %d picked differently (-first +got)\n%s", run, diff)
			}
		}
	})
	t.Run("client id wins over chaddr", func(t *testing.T) {
		c := newCore(t, testConfig())
		k := &client{mac: mac("02:00:00:00:00:01"), id: []byte{1, 2, 0, 0, 0, 0, 0, 1}}
		addr := bindClient(t, c, k, t0)
		moved := &client{mac: mac("02:00:00:00:00:99"), id: k.id} // same client, new NIC
		if got := summarize(handle(c, moved.renew(addr), t0.Add(time.Hour))); got.Type != "ACK" {
			t.Errorf("renew from a new MAC with the same client id: %+v", got)
		}
		if l := c.Leases(); len(l) != 1 || l[0].MAC != "02:00:00:00:00:99" || l[0].ClientID != "0102000000000001" {
			t.Errorf("leases %+v", l)
		}
		other := newClient("02:00:00:00:00:01") // same MAC, no client id: another client
		if got := summarize(handle(c, other.renew(addr), t0.Add(time.Hour))); got.Type != "NAK" {
			t.Errorf("renew by chaddr alone: %+v, want NAK", got)
		}
	})
	t.Run("same address back after expiry while others come and go", func(t *testing.T) {
		c := newCore(t, testConfig())
		k := newClient("02:00:00:00:00:01")
		addr := bindClient(t, c, k, t0)
		later := t0.Add(24 * time.Hour)
		if got := c.Expire(later); len(got) != 1 || got[0].Addr != addr {
			t.Fatalf("Expire = %+v", got)
		}
		for i := range 200 { // most of the pool, but fresh addresses go first
			bindClient(t, c, newClient(net.HardwareAddr{2, 0, 0, 0, 2, byte(i)}.String()), later)
		}
		if got := offerFor(t, c, k, later); got != addr {
			t.Errorf("returning client offered %s, want its old %s", got, addr)
		}
		mustCheck(t, c)
	})
	t.Run("previous address before the requested one (RFC 2131 4.3.1)", func(t *testing.T) {
		c := newCore(t, testConfig())
		k := newClient("02:00:00:00:00:01")
		old := bindClient(t, c, k, t0)
		handle(c, k.release(serverIP, old), t0)
		other := ip("192.168.1.200")
		if other == old {
			other = ip("192.168.1.201")
		}
		a := handle(c, k.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(other)))), t0)
		if got := summarize(a); got.Type != "OFFER" || got.Yiaddr != old.String() {
			t.Errorf("DISCOVER asking for %s: %+v, want its previous %s", other, got, old)
		}
	})
	t.Run("exhaustion: no offer, a counter, no crash", func(t *testing.T) {
		cfg := testConfig()
		cfg.PoolStart, cfg.PoolEnd = ip("192.168.1.10"), ip("192.168.1.13")
		c := newCore(t, cfg)
		for i := range 4 {
			bindClient(t, c, newClient(net.HardwareAddr{2, 0, 0, 0, 3, byte(i)}.String()), t0)
		}
		late := newClient("02:00:00:00:04:00")
		for range 2 {
			if got := summarize(handle(c, late.discover(), t0)); !cmp.Equal(got, summary{Drop: DropNoFreeAddress}) {
				t.Fatalf("DISCOVER on a full pool: %+v", got)
			}
		}
		if got := summarize(handle(c, late.initReboot(ip("192.168.1.10")), t0)); got.Type != "NAK" {
			t.Errorf("INIT-REBOOT for a taken address on a full pool: %+v", got)
		}
		s := c.Stats()
		if s.Drops[DropNoFreeAddress] != 2 || s.Free != 0 || s.Bound != 4 {
			t.Errorf("stats %+v", s)
		}
		mustCheck(t, c)
	})
	t.Run("10,000 clients fill a pool without scanning it", func(t *testing.T) {
		cfg := CoreConfig{ServerAddr: netip.MustParsePrefix("10.0.0.1/18"), PoolStart: ip("10.0.0.2"), PoolEnd: ip("10.0.39.17")} // 10,000 addresses
		c := newCore(t, cfg)
		seen := map[netip.Addr]bool{}
		for i := range 10000 {
			k := &client{mac: net.HardwareAddr{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}}
			addr := bindClient(t, c, k, t0)
			if seen[addr] {
				t.Fatalf("client %d got %s twice", i, addr)
			}
			seen[addr] = true
		}
		s := c.Stats()
		if s.Bound != 10000 || s.Free != 0 {
			t.Fatalf("stats %+v", s)
		}
		// Each search reads at most a few words per level of the bitmap; a
		// scan of the pool would read ~157 words per search on average.
		searches := 10000 * 2
		if steps := c.pool.free.steps + c.pool.fresh.steps; steps > searches*8 {
			t.Errorf("%d bitmap words read for %d searches: that is a scan", steps, searches)
		}
		if got := summarize(handle(c, newClient("02:ff:00:00:00:00").discover(), t0)); got.Drop != DropNoFreeAddress {
			t.Errorf("DISCOVER on the full pool: %+v", got)
		}
		mustCheck(t, c)
	})
}

func TestReservations(t *testing.T) {
	r := newClient("02:00:00:00:00:77")
	k := newClient("02:00:00:00:00:01")
	res := Reservation{MAC: r.mac, Addr: ip("192.168.1.20"), Hostname: "printer"}
	t.Run("reserved address goes to its MAC only, with its host name", func(t *testing.T) {
		cfg := testConfig()
		cfg.PoolStart, cfg.PoolEnd = ip("192.168.1.20"), ip("192.168.1.21") // the reservation takes half the pool
		cfg.Reservations = []Reservation{res}
		c := newCore(t, cfg)
		if s := c.Stats(); s.Free != 1 || s.Reservations != 1 {
			t.Fatalf("stats %+v", s)
		}
		got := bindClient(t, c, k, t0)
		if got != ip("192.168.1.21") {
			t.Fatalf("other client got %s", got)
		}
		if a := summarize(handle(c, newClient("02:00:00:00:00:02").discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(res.Addr)))), t0)); a.Drop != DropNoFreeAddress {
			t.Errorf("a third client asking for the reserved address: %+v", a)
		}
		r.prl = []uint8{1, 3, 12}
		defer func() { r.prl = nil }()
		a := handle(c, r.discover(), t0)
		if got := summarize(a); got.Type != "OFFER" || got.Yiaddr != "192.168.1.20" {
			t.Fatalf("reserved client: %+v", got)
		}
		if h := a.Reply.HostName(); h != "printer" {
			t.Errorf("option 12 = %q, want the reservation's", h)
		}
		ack := handle(c, r.selecting(serverIP, res.Addr), t0)
		if ack.Commit == nil || !ack.Commit.Reserved || ack.Commit.Hostname != "printer" {
			t.Errorf("commit %+v", ack.Commit)
		}
		mustCheck(t, c)
	})
	t.Run("runtime add moves the client at its next request; remove keeps its lease", func(t *testing.T) {
		c := newCore(t, testConfig())
		dyn := bindClient(t, c, r, t0)
		if err := c.AddReservation(res); err != nil {
			t.Fatal(err)
		}
		if got := summarize(handle(c, r.renew(dyn), t0.Add(time.Hour))); got.Type != "NAK" || got.Released != dyn.String() {
			t.Errorf("renewing the old address: %+v, want NAK and the old lease released", got)
		}
		if got := bindClient(t, c, r, t0.Add(time.Hour)); got != res.Addr {
			t.Errorf("rebound to %s, want %s", got, res.Addr)
		}
		if err := c.RemoveReservation(r.mac); err != nil {
			t.Fatal(err)
		}
		if l := c.Leases(); len(l) != 1 || l[0].Reserved || l[0].Addr != res.Addr {
			t.Errorf("leases after remove %+v", l)
		}
		if got := summarize(handle(c, r.renew(res.Addr), t0.Add(2*time.Hour))); got.Type != "ACK" {
			t.Errorf("renewing the formerly reserved pool address: %+v", got)
		}
		if err := c.RemoveReservation(r.mac); err == nil {
			t.Errorf("second remove succeeded")
		}
		mustCheck(t, c)
	})
	t.Run("reservation outside the pool; its lease is not renewed once removed", func(t *testing.T) {
		c := newCore(t, testConfig())
		out := Reservation{MAC: r.mac, Addr: ip("192.168.1.5")}
		if err := c.AddReservation(out); err != nil {
			t.Fatal(err)
		}
		if got := bindClient(t, c, r, t0); got != out.Addr {
			t.Fatalf("got %s", got)
		}
		if err := c.RemoveReservation(r.mac); err != nil {
			t.Fatal(err)
		}
		if got := summarize(handle(c, r.renew(out.Addr), t0.Add(time.Hour))); got.Type != "NAK" || got.Released != "192.168.1.5" {
			t.Errorf("renew: %+v", got)
		}
		mustCheck(t, c)
	})
	t.Run("conflicts refused", func(t *testing.T) {
		c := newCore(t, testConfig())
		taken := bindClient(t, c, k, t0)
		if err := c.AddReservation(res); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			r    Reservation
			want string
		}{
			{Reservation{MAC: mac("02:00:00:00:00:55"), Addr: res.Addr}, "already reserved for 02:00:00:00:00:77"},
			{Reservation{MAC: r.mac, Addr: ip("192.168.1.30")}, "already has a reservation"},
			{Reservation{MAC: mac("02:00:00:00:00:55"), Addr: ip("10.0.0.1")}, "not a host address"},
			{Reservation{MAC: mac("02:00:00:00:00:55"), Addr: serverIP}, "server's own address"},
			{Reservation{MAC: mac("02:00:00:00:00:55"), Addr: ip("192.168.1.255")}, "not a host address"},
			{Reservation{MAC: mac("02:00:00:00:00:55"), Addr: taken}, "is leased to 02:00:00:00:00:01"},
		} {
			err := c.AddReservation(tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "dhcp: ") {
				t.Errorf("AddReservation(%s → %s) = %v, want %q", tc.r.MAC, tc.r.Addr, err, tc.want)
			}
		}
		if err := c.AddReservation(Reservation{MAC: r.mac, Addr: res.Addr, Hostname: "renamed"}); err != nil {
			t.Errorf("re-adding the same reservation with a new name: %v", err)
		}
		if err := c.AddReservation(Reservation{MAC: k.mac, Addr: taken}); err != nil {
			t.Errorf("reserving a client's own leased address: %v", err)
		}
		if l := c.Leases(); len(l) != 1 || !l[0].Reserved {
			t.Errorf("leases %+v", l)
		}
		mustCheck(t, c)
	})
	t.Run("an offer to another client is withdrawn", func(t *testing.T) {
		c := newCore(t, testConfig())
		offered := offerFor(t, c, k, t0)
		if err := c.AddReservation(Reservation{MAC: r.mac, Addr: offered}); err != nil {
			t.Fatal(err)
		}
		if got := summarize(handle(c, k.selecting(serverIP, offered), t0)); got.Type != "NAK" {
			t.Errorf("REQUEST of the withdrawn offer: %+v", got)
		}
		mustCheck(t, c)
	})
	t.Run("a declined reservation is replaced by a pool address meanwhile", func(t *testing.T) {
		cfg := testConfig()
		cfg.Reservations = []Reservation{res}
		c := newCore(t, cfg)
		bindClient(t, c, r, t0)
		if got := summarize(handle(c, r.decline(serverIP, res.Addr), t0)); got.Type != "none" {
			t.Fatalf("DECLINE: %+v", got)
		}
		if got := offerFor(t, c, r, t0); got == res.Addr {
			t.Errorf("quarantined reservation offered again")
		}
		if got := offerFor(t, c, newClient("02:00:00:00:00:78"), t0.Add(11*time.Minute)); got == res.Addr {
			t.Errorf("reserved address given to another MAC after its quarantine")
		}
		mustCheck(t, c)
	})
}

func TestExpire(t *testing.T) {
	cfg := testConfig()
	cfg.LeaseTime = time.Hour
	c := newCore(t, cfg)
	if _, ok := c.NextExpiry(); ok {
		t.Errorf("NextExpiry on an empty core")
	}
	k1, k2 := newClient("02:00:00:00:00:01"), newClient("02:00:00:00:00:02")
	a1 := bindClient(t, c, k1, t0)
	a2 := bindClient(t, c, k2, t0.Add(10*time.Minute))
	handle(c, k1.decline(serverIP, a1), t0.Add(15*time.Minute))            // quarantined until +25m
	offerFor(t, c, newClient("02:00:00:00:00:03"), t0.Add(20*time.Minute)) // held until +21m

	wantNext := []time.Duration{21 * time.Minute, 25 * time.Minute, 70 * time.Minute}
	for _, w := range wantNext {
		next, ok := c.NextExpiry()
		if !ok || !next.Equal(t0.Add(w)) {
			t.Fatalf("NextExpiry = %v %v, want +%v", next.Sub(t0), ok, w)
		}
		got := c.Expire(next.Add(-time.Nanosecond))
		if len(got) != 0 {
			t.Fatalf("Expire before +%v returned %v", w, got)
		}
		got = c.Expire(next)
		if w == 70*time.Minute {
			if len(got) != 1 || got[0].Addr != a2 || got[0].MAC != "02:00:00:00:00:02" {
				t.Fatalf("Expire(+70m) = %+v", got)
			}
		} else if len(got) != 0 {
			t.Fatalf("Expire(+%v) = %+v: offers and quarantines are not leases", w, got)
		}
	}
	if _, ok := c.NextExpiry(); ok {
		t.Errorf("NextExpiry after everything expired")
	}
	if s := c.Stats(); s.Bound+s.Offered+s.Quarantined != 0 || s.Free != 245 {
		t.Errorf("stats %+v", s)
	}
	// A lease that Handle found expired is still returned by the next Expire.
	a3 := bindClient(t, c, k1, t0.Add(2*time.Hour))
	handle(c, k2.discover(), t0.Add(4*time.Hour))
	if got := c.Expire(t0.Add(4 * time.Hour)); len(got) != 1 || got[0].Addr != a3 {
		t.Errorf("Expire after Handle expired a lease = %+v", got)
	}
	mustCheck(t, c)
}

func TestRestore(t *testing.T) {
	k := newClient("02:00:00:00:00:01")
	c1 := newCore(t, testConfig())
	addr := bindClient(t, c1, k, t0)
	gone := bindClient(t, c1, newClient("02:00:00:00:00:02"), t0)
	handle(c1, newClient("02:00:00:00:00:02").release(serverIP, gone), t0)
	// Persist and load the leases as the store would.
	b, err := json.Marshal(c1.Leases())
	if err != nil {
		t.Fatal(err)
	}
	var stored []Lease
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c1.Leases(), stored, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Fatalf("JSON round trip changed the leases (-want +got)\n%s", diff)
	}
	expired := Lease{Addr: ip("192.168.1.150"), MAC: "02:00:00:00:00:03", Expires: t0.Add(-time.Hour)}
	bad := []Lease{
		{Addr: ip("192.168.1.151"), MAC: "not a mac", Expires: t0.Add(time.Hour)},
		{Addr: ip("10.0.0.1"), MAC: "02:00:00:00:00:04", Expires: t0.Add(time.Hour)},
		{Addr: ip("192.168.1.5"), MAC: "02:00:00:00:00:05", Expires: t0.Add(time.Hour)}, // outside the pool
		{Addr: addr, MAC: "02:00:00:00:00:06", Expires: t0.Add(40 * time.Minute)},       // same address, expires first
		{Addr: ip("192.168.1.152"), MAC: "02:00:00:00:00:07", ClientID: "zz", Expires: t0.Add(time.Hour)},
	}
	c2 := newCore(t, testConfig())
	refused := c2.Restore(append(append(slices.Clone(stored), expired), bad...), t0.Add(time.Hour/2))
	if diff := cmp.Diff(len(bad), len(refused)); diff != "" {
		t.Errorf("refused %+v", refused)
	}
	if diff := cmp.Diff(stored, c2.Leases(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("restored leases (-want +got)\n%s", diff)
	}
	if got := summarize(handle(c2, k.renew(addr), t0.Add(time.Hour))); got.Type != "ACK" {
		t.Errorf("renew after restore: %+v", got)
	}
	if got := offerFor(t, c2, newClient("02:00:00:00:00:03"), t0.Add(time.Hour)); got != expired.Addr {
		t.Errorf("client of an expired stored lease offered %s, want %s back", got, expired.Addr)
	}
	if s := c2.Stats(); s.Probes != 0 {
		t.Errorf("Probes = %d: a client's own previous address is never probed", s.Probes)
	}
	mustCheck(t, c2)
}

func TestLeaseRecordsClientDetails(t *testing.T) {
	c := newCore(t, testConfig())
	k := &client{
		mac: mac("02:00:00:00:00:01"),
		id:  []byte{0xff, 1, 2, 3},
		opts: []dhcpv4.Option{
			dhcpv4.OptHostName("laptop\x00"),
			dhcpv4.OptClassIdentifier("MSFT 5.0"),
			dhcpv4.OptGeneric(dhcpv4.OptionFQDN, append([]byte{0x05, 0, 0}, encodeDNSName("laptop.example.org")...)),
			dhcpv4.OptIPAddressLeaseTime(30 * time.Minute),
		},
	}
	addr := bindClient(t, c, k, t0)
	want := []Lease{{
		Addr: addr, MAC: "02:00:00:00:00:01", ClientID: "ff010203", Hostname: "laptop",
		FQDN: "laptop.example.org", VendorClass: "MSFT 5.0", Expires: t0.Add(30 * time.Minute),
	}}
	if diff := cmp.Diff(want, c.Leases(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// A RENEW without names keeps them.
	k.opts = nil
	handle(c, k.renew(addr), t0.Add(10*time.Minute))
	if l := c.Leases()[0]; l.Hostname != "laptop" || l.Expires != t0.Add(12*time.Hour+10*time.Minute) {
		t.Errorf("after renew: %+v", l)
	}
}
