package lab

import (
	"context"
	"slices"
	"strings"
	"testing"

	"gateway/internal/testenv"
)

func TestRunBatchNamesTheFailedCommand(t *testing.T) {
	testenv.Tool(t, "ip", "iproute2")
	b := batch{cmds: [][]string{{"link", "show", "lo"}, {"link", "show", "gwl-nosuch0"}, {"link", "show", "lo"}}}
	err := runBatch(context.Background(), b)
	if err == nil {
		t.Fatal("runBatch: no error")
	}
	for _, want := range []string{"ip link show gwl-nosuch0", "does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("runBatch: %v; want it to say %q", err, want)
		}
	}
}

func TestPlanDigestIgnoresName(t *testing.T) {
	topo := newTopology()
	a := digest((&Lab{Name: "a"}).plan(topo), "a")
	b := digest((&Lab{Name: "b2"}).plan(topo), "b2")
	if a != b {
		t.Errorf("digests of labs a and b2 differ: %s, %s", a, b)
	}
}

// planView flattens a plan into lines, one per command or sysctl, each
// prefixed by the host it runs in ("" for the root namespace).
func planView(l *Lab, t *topology) map[string][]string {
	view := map[string][]string{}
	for _, p := range l.plan(t) {
		for _, b := range p.batches {
			host := strings.TrimPrefix(b.ns, l.NS(""))
			for _, c := range b.cmds {
				view[host] = append(view[host], strings.Join(c, " "))
			}
		}
		for _, s := range p.sysctls {
			view[s.host] = append(view[s.host], "sysctl "+s.path+"="+s.value)
		}
	}
	return view
}

func TestPlanSitesAndRelay(t *testing.T) {
	l := &Lab{Name: "p"}
	view := planView(l, newTopology())
	tests := []struct {
		name   string
		host   string
		want   []string // lines the host's part of the plan has
		refuse []string // substrings none of its lines has
	}{
		{"the ISP routes 6to4 space to the relay", ISP,
			[]string{"route add 2002::/16 via 2001:db8:100::20", "addr add 192.0.2.1/24 dev gwb-wan", "link set rly0 master br-inet"}, nil},
		{"the relay: native IPv6, forwarding, default routes via the ISP", Relay,
			[]string{"addr add 198.51.100.20/24 dev eth0", "addr add 2001:db8:100::20/64 dev eth0 nodad",
				"route add default via 198.51.100.1", "route add default via 2001:db8:100::1",
				"sysctl net/ipv4/ip_forward=1", "sysctl net/ipv6/conf/all/forwarding=1"}, nil},
		{"site B's gateway: IPv4 only from the ISP", GatewayB,
			[]string{"addr add 192.0.2.2/24 dev wan", "addr add 192.168.2.1/24 dev br-lan", "link set lanb master br-lan",
				"route add default via 192.0.2.1", "sysctl net/ipv4/ip_forward=1", "sysctl net/bridge/bridge-nf-call-iptables=0"},
			[]string{"2001:db8", "route add default via 2001"}},
		{"site B's LAN host: a fixed MAC, SLAAC on, nothing static", LANB,
			[]string{"link set eth0 address 02:00:00:00:02:10", "sysctl net/ipv6/conf/eth0/accept_ra=1",
				"sysctl net/ipv6/conf/eth0/autoconf=1", "sysctl net/ipv6/conf/eth0/forwarding=0"},
			[]string{"addr add", "route add", "ip_forward=1"}},
		{"veth pairs of the new hosts", "",
			[]string{"link add gwb-wan netns gwl-p-isp type veth peer name wan netns gwl-p-gwb",
				"link add rly0 netns gwl-p-isp type veth peer name eth0 netns gwl-p-rly",
				"link add lanb netns gwl-p-gwb type veth peer name eth0 netns gwl-p-lanb"}, nil},
		{"the ISP routes Teredo space to the Miredo relay and masquerades site B's CGNAT", ISP,
			[]string{"route add 2001::/32 via 2001:db8:100::50", "addr add 100.64.0.1/24 dev gwb-wan", "link set tsrv0 master br-inet",
				"link set natc0 master br-inet", "link set trly0 master br-inet"}, nil},
		{"the Teredo server: two consecutive addresses and native IPv6", TeredoServer,
			[]string{"addr add 198.51.100.30/24 dev eth0", "addr add 198.51.100.31/24 dev eth0", "addr add 2001:db8:100::30/64 dev eth0 nodad"}, nil},
		{"site C's NAT: IPv4 only, forwarding", NATC,
			[]string{"addr add 198.51.100.40/24 dev wan", "addr add 192.168.3.1/24 dev lan", "route add default via 198.51.100.1", "sysctl net/ipv4/ip_forward=1"},
			[]string{"2001:"}},
		{"site C's host: a private address behind natc", TeredoPeer,
			[]string{"addr add 192.168.3.10/24 dev eth0", "route add default via 192.168.3.1"}, []string{"2001:"}},
		{"site A's LAN hosts take IPv6 by SLAAC", LAN1,
			[]string{"sysctl net/ipv6/conf/eth0/accept_ra=1", "sysctl net/ipv6/conf/eth0/autoconf=1"},
			[]string{"2001:db8:1:1", "route add default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := view[tt.host]
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("plan of %q lacks %q; it has:\n%s", tt.host, w, strings.Join(got, "\n"))
				}
			}
			for _, r := range tt.refuse {
				for _, g := range got {
					if strings.Contains(g, r) {
						t.Errorf("plan of %q has %q, want nothing with %q", tt.host, g, r)
					}
				}
			}
		})
	}
	want := []string{ISP, Public, Relay, Gateway, LAN1, LAN2, GatewayB, LANB, TeredoServer, TeredoRelay, NATC, TeredoPeer}
	var got []string
	for _, h := range Hosts() {
		got = append(got, h.Name)
	}
	if !slices.Equal(want, got) {
		t.Errorf("Hosts: %q, want %q", got, want)
	}
}
