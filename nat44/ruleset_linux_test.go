package nat44

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// now0 is the time of the tables that the datapath tests build.
var now0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// mappingTable returns a table holding ms.
func mappingTable(t *testing.T, ms ...Mapping) *Table {
	t.Helper()
	tb := NewTable()
	for _, m := range ms {
		if err := tb.Put(m, now0); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

// pinholeTable returns a table holding ps.
func pinholeTable(t *testing.T, ps ...Pinhole) *PinholeTable {
	t.Helper()
	tb := NewPinholeTable()
	for _, p := range ps {
		if _, err := tb.Put(p, now0); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

// goldenStates are the states of the golden tests and of the namespace
// tests that read the same rules back from the kernel.
func goldenStates(t *testing.T) []struct {
	name  string
	state *State
} {
	t.Helper()
	ap, addr := netip.MustParseAddrPort, netip.MustParseAddr
	return []struct {
		name  string
		state *State
	}{
		{"no-wan-address", &State{
			WAN:  "wan0",
			LANs: []string{"br-lan"},
		}},
		{"public-endpoint-independent", &State{
			WAN:       "eth1",
			LANs:      []string{"br-lan"},
			WANAddr:   addr("203.0.113.7"),
			Filtering: EndpointIndependent,
			Mappings: mappingTable(t,
				Mapping{Proto: TCP, ExternalPort: 8080, Internal: ap("192.168.1.10:80"), Owner: OwnerStatic, Description: "web"},
				Mapping{Proto: UDP, ExternalPort: 3074, Internal: ap("192.168.1.20:3074"), Owner: OwnerUPnP},
				Mapping{Proto: TCP, ExternalPort: 2222, Internal: ap("192.168.1.21:22"), Remote: addr("198.51.100.44"), Owner: OwnerPCP},
			),
			Cone: map[uint16]netip.AddrPort{
				40000: ap("192.168.1.30:40000"),
				5000:  ap("192.168.1.31:5000"),
			},
			WANInput:  []Key{{UDP, 3544}, {TCP, 443}},
			Outside:   []string{"tun6to4", "eth1"},
			SixToFour: true,
			LAN6:      []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParsePrefix("2002:cb00:7107:1::/64")},
			Pinholes: pinholeTable(t,
				Pinhole{PinholeKey: PinholeKey{Proto: TCP, Internal: ap("[2001:db8:1::10]:443")}, Owner: OwnerUPnP},
				Pinhole{PinholeKey: PinholeKey{Proto: UDP, Internal: ap("[2001:db8:1::11]:9000"), Remote: addr("2001:db8:ffff::9")}, Owner: OwnerPCP},
			),
		}},
		{"address-dependent-two-lans", &State{
			WAN:       "wan",
			LANs:      []string{"lan1", "lan2"},
			WANAddr:   addr("100.64.1.2"),
			Filtering: AddressDependent,
			Mappings:  mappingTable(t, Mapping{Proto: TCP, ExternalPort: 22, Internal: ap("10.0.0.2:22"), Owner: OwnerAdmin}),
			Remotes: map[RemoteKey]netip.AddrPort{
				{addr("198.51.100.7"), 5000}: ap("10.0.0.5:5000"),
				{addr("198.51.100.8"), 5000}: ap("10.0.0.5:5000"),
			},
			Outside:   []string{"teredo"},
			NAT66:     []string{"teredo"},
			NAT66Addr: addr("2001:0:c633:6401:0:fbff:9bfe:fefd"),
			LAN6:      []netip.Prefix{netip.MustParsePrefix("fd12:3456:789a:1::/64")},
			Pinholes: pinholeTable(t,
				Pinhole{PinholeKey: PinholeKey{Proto: TCP, Internal: ap("[fd12:3456:789a:1::10]:8080")}, Owner: OwnerUPnP},
				Pinhole{PinholeKey: PinholeKey{Proto: UDP, Internal: ap("[fd12:3456:789a:1::11]:9000"), Remote: addr("2001:db8:ffff::9")}, Owner: OwnerPCP},
			),
		}},
	}
}

func TestRulesetGolden(t *testing.T) {
	for _, tt := range goldenStates(t) {
		t.Run(tt.name, func(t *testing.T) {
			got := render(buildRuleset(tt.state), tt.state)
			path := filepath.Join("testdata", "ruleset-"+tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./nat44 -run Golden -update to create it)", err)
			}
			if diff := gocmp.Diff(string(want), got); diff != "" {
				t.Errorf("render differs from %s (-want +got):\n%s", path, diff)
			}
			// Rendering is a pure function of the state.
			if again := render(buildRuleset(tt.state), tt.state); again != got {
				t.Errorf("a second render differs")
			}
		})
	}
}

// TestRulesetShape checks, independently of the golden text, the promises
// that the datapath relies on: the same chains in every state, rules that
// depend only on the base of the state, and comments that are unique
// within a chain.
func TestRulesetShape(t *testing.T) {
	for _, tt := range goldenStates(t) {
		t.Run(tt.name, func(t *testing.T) {
			rs := buildRuleset(tt.state)
			var chains []string
			for _, c := range rs.chains {
				chains = append(chains, c.chain.Name)
				seen := map[string]bool{}
				for _, r := range c.rules {
					if seen[r.text] {
						t.Errorf("chain %s: two rules say %q", c.chain.Name, r.text)
					}
					seen[r.text] = true
					if len(r.exprs) == 0 {
						t.Errorf("chain %s: rule %q has no expressions", c.chain.Name, r.text)
					}
				}
			}
			want := []string{"prerouting", "postrouting", "input", "forward"}
			if f := tt.state.Filtering; f == EndpointIndependent || f == AddressDependent {
				want = append(want, "ctevents", "ctevents_local")
			}
			if diff := gocmp.Diff(want, chains); diff != "" {
				t.Errorf("chains (-want +got):\n%s", diff)
			}
			// Elements do not shape rules: a state with other map contents
			// but the same base renders the same rules.
			other := *tt.state
			other.Mappings, other.Cone, other.Remotes, other.WANInput = nil, nil, nil, nil
			other.Outside, other.Pinholes = nil, nil
			a, b := render(buildRuleset(tt.state), &other), render(buildRuleset(&other), &other)
			if a != b {
				t.Errorf("map contents changed the rules:\n%s", gocmp.Diff(a, b))
			}
			hasAddr := tt.state.WANAddr.IsValid()
			text := render(rs, tt.state)
			if got := strings.Contains(text, "dnat ip to"); got != hasAddr {
				t.Errorf("DNAT rules present = %v, want %v (WAN address %v)", got, hasAddr, tt.state.WANAddr)
			}
		})
	}
}
