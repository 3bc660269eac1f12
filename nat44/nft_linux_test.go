package nat44

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
)

// These tests program nftables in a network namespace of their own and
// read the result back with nft(8). They need root.

func requireRoot(t *testing.T) {
	t.Helper()
	testenv.Root(t)
	testenv.Tool(t, "ip", "iproute2")
	testenv.Tool(t, "nft", "nftables")
}

// testNS is a network namespace that the test created and removes.
type testNS struct {
	name string
	fd   int
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "nat44t-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v\n%s", name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &testNS{name: name, fd: fd}
}

// nft runs nft(8) in the namespace, as another process would.
func (ns *testNS) nft(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ns.nftErr(args...)
	if err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (ns *testNS) nftErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name, "nft"}, args...)...).CombinedOutput()
	return string(out), err
}

func newTestNFTables(t *testing.T, ns *testNS) *NFTables {
	t.Helper()
	d, err := NewNFTables(ns.fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// kernelTable is what `nft -j list table inet gateway` shows, reduced to
// what the tests compare.
type kernelTable struct {
	Chains   []string            // "name type hook prio policy", in order
	Comments map[string][]string // rule comments by chain, in order
	Elements map[string][]string // set and map elements, sorted

	// Handles are the table's handle and its rules' by chain, in order.
	// A rebuild makes a new table; an element change keeps them all.
	Handles handles
}

type handles struct {
	Table int
	Rules map[string][]int
}

func readTable(t *testing.T, ns *testNS) kernelTable {
	t.Helper()
	out := ns.nft(t, "-j", "list", "table", "inet", TableName)
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j output: %v\n%s", err, out)
	}
	kt := kernelTable{Comments: map[string][]string{}, Elements: map[string][]string{}, Handles: handles{Rules: map[string][]int{}}}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			switch kind {
			case "table":
				var tb struct{ Handle int }
				if err := json.Unmarshal(raw, &tb); err != nil {
					t.Fatal(err)
				}
				kt.Handles.Table = tb.Handle
			case "chain":
				var c struct {
					Name, Type, Hook, Policy string
					Prio                     int
				}
				if err := json.Unmarshal(raw, &c); err != nil {
					t.Fatal(err)
				}
				kt.Chains = append(kt.Chains, fmt.Sprintf("%s %s %s %d %s", c.Name, c.Type, c.Hook, c.Prio, c.Policy))
			case "rule":
				var r struct {
					Chain, Comment string
					Handle         int
				}
				if err := json.Unmarshal(raw, &r); err != nil {
					t.Fatal(err)
				}
				kt.Comments[r.Chain] = append(kt.Comments[r.Chain], r.Comment)
				kt.Handles.Rules[r.Chain] = append(kt.Handles.Rules[r.Chain], r.Handle)
			case "map", "set":
				var s struct {
					Name string
					Elem []json.RawMessage
				}
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatal(err)
				}
				elems := []string{}
				for _, e := range s.Elem {
					elems = append(elems, elemText(t, e))
				}
				slices.Sort(elems)
				kt.Elements[s.Name] = elems
			}
		}
	}
	return kt
}

// elemText writes an element of nft's JSON as "k . k : v . v".
func elemText(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var text func(any) string
	text = func(v any) string {
		switch v := v.(type) {
		case []any: // a map element: key and value
			var parts []string
			for _, p := range v {
				parts = append(parts, text(p))
			}
			return strings.Join(parts, " : ")
		case map[string]any:
			if c, ok := v["concat"].([]any); ok {
				var parts []string
				for _, p := range c {
					parts = append(parts, text(p))
				}
				return strings.Join(parts, " . ")
			}
			if e, ok := v["elem"].(map[string]any); ok {
				return text(e["val"])
			}
		case float64:
			return fmt.Sprint(v)
		case string:
			return v
		}
		t.Fatalf("unexpected element %s", raw)
		return ""
	}
	return text(v)
}

// wantTable is what the kernel must show for s: the chains and rules of
// buildRuleset and the elements of s, written as nft writes them.
func wantTable(s *State) kernelTable {
	kt := kernelTable{
		Chains: []string{
			"prerouting nat prerouting -100 accept",
			"postrouting nat postrouting 100 accept",
			"input filter input 0 accept",
			"forward filter forward 0 accept",
		},
		Comments: map[string][]string{},
		Elements: map[string][]string{},
	}
	if s.Filtering != AddressAndPortDependent {
		kt.Chains = append(kt.Chains, "ctevents filter prerouting -150 accept", "ctevents_local filter output -150 accept")
	}
	for _, name := range setNames {
		kt.Elements[name] = []string{}
	}
	for _, c := range buildRuleset(s).chains {
		for _, r := range c.rules {
			kt.Comments[c.chain.Name] = append(kt.Comments[c.chain.Name], r.text)
		}
	}
	ap := func(a netip.AddrPort) string { return fmt.Sprintf("%v . %d", a.Addr(), a.Port()) }
	if s.Mappings != nil {
		s.Mappings.All(func(m Mapping) {
			if m.Remote.IsValid() {
				kt.Elements[setForwardRemote] = append(kt.Elements[setForwardRemote], fmt.Sprintf("%v . %v . %d : %s", m.Remote, m.Proto, m.ExternalPort, ap(m.Internal)))
				return
			}
			kt.Elements[setForward] = append(kt.Elements[setForward], fmt.Sprintf("%v . %d : %s", m.Proto, m.ExternalPort, ap(m.Internal)))
		})
	}
	if s.Pinholes != nil {
		s.Pinholes.All(func(p Pinhole) {
			if p.Remote.IsValid() {
				kt.Elements[setPinholesFrom] = append(kt.Elements[setPinholesFrom], fmt.Sprintf("%v . %v . %v . %d", p.Remote, p.Internal.Addr(), p.Proto, p.Internal.Port()))
				return
			}
			kt.Elements[setPinholes] = append(kt.Elements[setPinholes], fmt.Sprintf("%v . %v . %d", p.Internal.Addr(), p.Proto, p.Internal.Port()))
		})
	}
	// NAT66: each port of a ULA host's pinhole leads to it (the goldens
	// give each port one ULA host), once, whatever the remote hosts.
	if s.NAT66Addr.IsValid() && s.Pinholes != nil {
		ula := netip.MustParsePrefix("fc00::/7")
		seen := map[string]bool{}
		s.Pinholes.All(func(p Pinhole) {
			e := fmt.Sprintf("%v . %d : %s", p.Proto, p.Internal.Port(), ap(p.Internal))
			if ula.Contains(p.Internal.Addr()) && !seen[e] {
				seen[e] = true
				kt.Elements[setNAT66] = append(kt.Elements[setNAT66], e)
			}
		})
	}
	kt.Elements[setOutside] = append(kt.Elements[setOutside], outsideNames(s)...)
	for p, a := range s.Cone {
		kt.Elements[setCone] = append(kt.Elements[setCone], fmt.Sprintf("%d : %s", p, ap(a)))
	}
	for k, a := range s.Remotes {
		kt.Elements[setRemotes] = append(kt.Elements[setRemotes], fmt.Sprintf("%v . %d : %s", k.Remote, k.ExternalPort, ap(a)))
	}
	for _, k := range s.WANInput {
		kt.Elements[setWANInput] = append(kt.Elements[setWANInput], fmt.Sprintf("%v . %d", k.Proto, k.ExternalPort))
	}
	for _, e := range kt.Elements {
		slices.Sort(e)
	}
	return kt
}

func checkTable(t *testing.T, ns *testNS, s *State) kernelTable {
	t.Helper()
	got := readTable(t, ns)
	noHandles := got
	noHandles.Handles = handles{}
	if diff := gocmp.Diff(wantTable(s), noHandles); diff != "" {
		t.Errorf("kernel table (-want +got):\n%s", diff)
	}
	return got
}

// checkComments checks that each rule's comment says what the rule does:
// it must read as nft(8) prints the rule's expressions, less the noise
// (the inet table's nfproto guards, quotes, zero counters) and the
// explanation after a colon.
func checkComments(t *testing.T, ns *testNS) {
	t.Helper()
	out := ns.nft(t, "list", "table", "inet", TableName)
	normal := strings.NewReplacer(
		"meta nfproto ipv4 ", "", "meta nfproto ipv6 ", "",
		`"`, "", " packets 0 bytes 0", "",
	)
	n := 0
	for line := range strings.Lines(out) {
		rule, comment, ok := strings.Cut(strings.TrimSpace(line), ` comment "`)
		if !ok {
			continue
		}
		n++
		comment = strings.TrimSuffix(comment, `"`)
		comment, _, _ = strings.Cut(comment, ": ")
		if got, want := normal.Replace(rule), normal.Replace(comment); got != want {
			t.Errorf("the rule does not do what its comment says:\nnft:     %s\ncomment: %s", got, want)
		}
	}
	if n == 0 {
		t.Errorf("no rule with a comment in:\n%s", out)
	}
}

func TestNFTablesApplyReadBack(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	for _, tt := range goldenStates(t) {
		t.Run(tt.name, func(t *testing.T) {
			ns := newTestNS(t)
			d := newTestNFTables(t, ns)
			if err := d.Apply(tt.state); err != nil {
				t.Fatal(err)
			}
			got := checkTable(t, ns, tt.state)
			checkComments(t, ns)
			if drifted, err := d.Drifted(); drifted || err != nil {
				t.Errorf("Drifted right after Apply = %v, %v", drifted, err)
			}
			// Spot checks that do not come from buildRuleset.
			if a := tt.state.WANAddr; a.IsValid() {
				want := []string{
					fmt.Sprintf("ip daddr %v dnat ip to ip saddr . meta l4proto . th dport map @fwd4r", a),
					fmt.Sprintf("ip daddr %v dnat ip to meta l4proto . th dport map @fwd4", a),
				}
				if got := got.Comments["prerouting"]; len(got) < 2 || !slices.Equal(got[:2], want) {
					t.Errorf("prerouting rules = %q, want first %q", got, want)
				}
			} else if len(got.Comments["prerouting"]) != 0 {
				t.Errorf("without a WAN address prerouting has rules: %q", got.Comments["prerouting"])
			}
			for _, chain := range []string{"input", "forward"} {
				if last := got.Comments[chain]; len(last) == 0 || last[len(last)-1] != "iifname @outside counter drop" {
					t.Errorf("%s chain does not end in a drop: %q", chain, last)
				}
			}
			if !slices.Contains(got.Elements[setOutside], tt.state.WAN) {
				t.Errorf("@outside = %q lacks the WAN %s", got.Elements[setOutside], tt.state.WAN)
			}
		})
	}
}

// watchGenerations reports every ruleset generation committed in ns.
func watchGenerations(t *testing.T, ns *testNS) <-chan *nftables.MonitorEvents {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(1024))
	ch, err := c.AddGenerationalMonitor(mon)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mon.Close()
		for range ch { // let the monitor's goroutine end
		}
	})
	return ch
}

// generationsBefore commits a generation of its own with nft (a new,
// empty table) and returns the generations committed before it.
func generationsBefore(t *testing.T, ns *testNS, gens <-chan *nftables.MonitorEvents) []*nftables.MonitorEvents {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	sentinel := "sentinel" + hex.EncodeToString(b)
	ns.nft(t, "add", "table", "inet", sentinel)
	var before []*nftables.MonitorEvents
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-gens:
			if !ok {
				t.Fatal("the generation monitor stopped")
			}
			for _, c := range ev.Changes {
				if tb, ok := c.Data.(*nftables.Table); ok && tb.Name == sentinel {
					return before
				}
			}
			before = append(before, ev)
		case <-timeout:
			t.Fatalf("no generation event for table %s after 5s", sentinel)
		}
	}
}

func TestNFTablesApplyIsIdempotent(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	before := readTable(t, ns)
	ruleset := ns.nft(t, "list", "ruleset")
	gens := watchGenerations(t, ns)

	// The same state, and an equal one built anew, change nothing.
	same := *s
	same.Mappings = NewTable()
	s.Mappings.All(func(m Mapping) { same.Mappings.Replace(m) })
	same.Cone = maps.Clone(s.Cone)
	same.WANInput = slices.Clone(s.WANInput)
	slices.Reverse(same.WANInput)
	for _, st := range []*State{s, &same, s} {
		if err := d.Apply(st); err != nil {
			t.Fatal(err)
		}
	}
	if got := ns.nft(t, "list", "ruleset"); got != ruleset {
		t.Errorf("the ruleset changed:\n%s", gocmp.Diff(ruleset, got))
	}
	after := readTable(t, ns)
	if diff := gocmp.Diff(before.Handles, after.Handles); diff != "" {
		t.Errorf("handles changed (-before +after):\n%s", diff)
	}
	if got := generationsBefore(t, ns, gens); len(got) != 0 {
		t.Errorf("Apply of the same state committed %d generations", len(got))
	}
}

func TestNFTablesElementDiffs(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	s.Remotes = map[RemoteKey]netip.AddrPort{}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	handles := readTable(t, ns).Handles
	gens := watchGenerations(t, ns)
	ap := netip.MustParseAddrPort
	steps := []struct {
		name string
		edit func(*State)
	}{
		{"add a mapping", func(s *State) {
			mustPut(t, s.Mappings, t0, Mapping{Proto: TCP, ExternalPort: 22, Internal: ap("192.168.1.40:22"), Owner: OwnerAdmin})
		}},
		{"move a mapping to another host", func(s *State) {
			s.Mappings.Replace(Mapping{Proto: TCP, ExternalPort: 22, Internal: ap("192.168.1.41:2222"), Owner: OwnerAdmin})
		}},
		{"remove a mapping", func(s *State) { s.Mappings.Delete(Key{TCP, 8080}) }},
		{"add and remove at once", func(s *State) {
			s.Mappings.Delete(Key{TCP, 22})
			mustPut(t, s.Mappings, t0, Mapping{Proto: UDP, ExternalPort: 22, Internal: ap("192.168.1.41:22"), Owner: OwnerAdmin})
		}},
		{"open a cone entry", func(s *State) { s.Cone[6000] = ap("192.168.1.42:6000") }},
		{"close a cone entry", func(s *State) { delete(s.Cone, 5000) }},
		{"a remote (kept while the mode changes nothing)", func(s *State) {
			s.Remotes[RemoteKey{netip.MustParseAddr("198.51.100.9"), 7000}] = ap("192.168.1.43:7000")
		}},
		{"wan_input", func(s *State) { s.WANInput = []Key{{UDP, 3544}, {UDP, 51820}} }},
		{"a tunnel comes", func(s *State) { s.Outside = append(s.Outside, "teredo") }},
		{"the tunnels go", func(s *State) { s.Outside = nil }},
		{"a mapping gets a remote host", func(s *State) {
			s.Mappings.Replace(Mapping{Proto: UDP, ExternalPort: 3074, Internal: ap("192.168.1.20:3074"), Remote: netip.MustParseAddr("198.51.100.5"), Owner: OwnerUPnP})
		}},
		{"another remote host", func(s *State) {
			s.Mappings.Replace(Mapping{Proto: UDP, ExternalPort: 3074, Internal: ap("192.168.1.20:3074"), Remote: netip.MustParseAddr("198.51.100.6"), Owner: OwnerUPnP})
		}},
		{"the remote host goes", func(s *State) {
			s.Mappings.Replace(Mapping{Proto: UDP, ExternalPort: 3074, Internal: ap("192.168.1.20:3074"), Owner: OwnerUPnP})
		}},
		{"open pinholes", func(s *State) {
			for _, p := range []Pinhole{
				{PinholeKey: PinholeKey{Proto: UDP, Internal: ap("[2001:db8:1::20]:3478")}, Owner: OwnerPCP},
				{PinholeKey: PinholeKey{Proto: TCP, Internal: ap("[2001:db8:1::20]:22"), Remote: netip.MustParseAddr("2001:db8:9::1")}, Owner: OwnerAdmin},
			} {
				if _, err := s.Pinholes.Put(p, now0); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"close a pinhole", func(s *State) {
			s.Pinholes.Delete(PinholeKey{Proto: TCP, Internal: ap("[2001:db8:1::10]:443")})
		}},
		{"no pinholes", func(s *State) { s.Pinholes = nil }},
		{"remove every mapping", func(s *State) { s.Mappings = nil }},
	}
	for _, st := range steps {
		st.edit(s)
		if err := d.Apply(s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := checkTable(t, ns, s)
		if diff := gocmp.Diff(handles, got.Handles); diff != "" {
			t.Errorf("%s: the rules were rebuilt (-before +after):\n%s", st.name, diff)
		}
		if g := generationsBefore(t, ns, gens); len(g) != 1 {
			t.Errorf("%s: %d generations, want the one transaction", st.name, len(g))
		}
		if drifted, err := d.Drifted(); drifted || err != nil {
			t.Errorf("%s: Drifted = %v, %v", st.name, drifted, err)
		}
	}
}

func TestNFTablesDrift(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	tests := []struct {
		name string
		nft  string
	}{
		{"delete element", "delete element inet gateway fwd4 { tcp . 8080 }"},
		{"add element", "add element inet gateway fwd4 { tcp . 9 : 192.168.1.99 . 9 }"},
		{"change element", "delete element inet gateway cone4 { 5000 } ; add element inet gateway cone4 { 5000 : 192.168.1.99 . 5000 }"},
		{"flush map", "flush map inet gateway cone4"},
		{"flush table", "flush table inet gateway"},
		{"delete table", "delete table inet gateway"},
		{"add rule", "add rule inet gateway forward counter"},
		{"delete rule", "flush chain inet gateway postrouting"},
		{"add chain", "add chain inet gateway extra"},
		{"delete pinhole", "delete element inet gateway pin6 { 2001:db8:1::10 . tcp . 443 }"},
		{"add to outside", "add element inet gateway outside { \"eth9\" }"},
		{"delete remote mapping", "delete element inet gateway fwd4r { 198.51.100.44 . tcp . 2222 }"},
		{"chain policy", "add chain inet gateway forward { type filter hook forward priority 0; policy drop; }"},
	}
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	// An edited rule: same chain, same number of rules, same comment,
	// other content (the last drop now accepts).
	tests = append(tests, struct{ name, nft string }{"replace rule", ""})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if drifted, err := d.Drifted(); drifted || err != nil {
				t.Fatalf("Drifted before the change = %v, %v", drifted, err)
			}
			if tt.nft == "" {
				h := readTable(t, ns).Handles.Rules["forward"]
				tt.nft = fmt.Sprintf(`replace rule inet gateway forward handle %d iifname @outside counter accept comment "iifname @outside counter drop"`, h[len(h)-1])
			}
			ns.nft(t, tt.nft)
			if drifted, err := d.Drifted(); !drifted || err != nil {
				t.Fatalf("Drifted after %q = %v, %v; want true", tt.nft, drifted, err)
			}
			if err := d.Apply(s); err != nil {
				t.Fatalf("Apply after drift: %v", err)
			}
			checkTable(t, ns, s)
			checkComments(t, ns) // the rules do what they say again
			if drifted, err := d.Drifted(); drifted || err != nil {
				t.Errorf("Drifted after the rebuild = %v, %v", drifted, err)
			}
		})
	}
}

func TestNFTablesBaseChangeRebuilds(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	handles := readTable(t, ns).Handles
	steps := []struct {
		name string
		edit func(*State)
	}{
		{"WAN address", func(s *State) { s.WANAddr = netip.MustParseAddr("198.51.100.200") }},
		{"no WAN address", func(s *State) { s.WANAddr = netip.Addr{} }},
		{"WAN address back", func(s *State) { s.WANAddr = netip.MustParseAddr("203.0.113.7") }},
		{"filtering", func(s *State) { s.Filtering = AddressDependent }},
		{"LANs", func(s *State) { s.LANs = []string{"br-lan", "guest"} }},
		{"WAN interface", func(s *State) { s.WAN = "ppp0" }},
	}
	for _, st := range steps {
		st.edit(s)
		if err := d.Apply(s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := checkTable(t, ns, s)
		if got.Handles.Table == handles.Table {
			t.Errorf("%s: the table kept its handle %d; want a rebuild", st.name, handles.Table)
		}
		handles = got.Handles
	}
	checkComments(t, ns)
}

func TestNFTablesClose(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	t.Run("applied", func(t *testing.T) {
		ns := newTestNS(t)
		d, err := NewNFTables(ns.fd)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Apply(goldenStates(t)[2].state); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if out, err := ns.nftErr("list", "table", "inet", TableName); err == nil {
			t.Errorf("the table outlived Close:\n%s", out)
		}
	})
	t.Run("already deleted by someone", func(t *testing.T) {
		ns := newTestNS(t)
		d, err := NewNFTables(ns.fd)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Apply(goldenStates(t)[0].state); err != nil {
			t.Fatal(err)
		}
		ns.nft(t, "delete", "table", "inet", TableName)
		if err := d.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	t.Run("never applied", func(t *testing.T) {
		ns := newTestNS(t)
		ns.nft(t, "add", "table", "inet", TableName) // not ours: left alone
		d, err := NewNFTables(ns.fd)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		ns.nft(t, "list", "table", "inet", TableName)
	})
}

func TestNFTablesTenThousandMappings(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	big := *s
	big.Mappings = NewTable()
	for i := range 10000 {
		internal := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(1 + i%250)}), uint16(1024+i))
		mustPut(t, big.Mappings, t0, Mapping{Proto: []Proto{TCP, UDP}[i%2], ExternalPort: uint16(10000 + i), Internal: internal, Owner: OwnerUPnP})
	}
	timed := func(name string, st *State) time.Duration {
		t.Helper()
		start := time.Now()
		if err := d.Apply(st); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		took := time.Since(start)
		t.Logf("%s: %v", name, took)
		return took
	}
	if took := timed("add 10000 mappings", &big); took > 2*time.Second {
		t.Errorf("adding 10000 mappings took %v, want under 2s", took)
	}
	if got := len(readTable(t, ns).Elements[setForward]); got != 10000 {
		t.Errorf("fwd4 has %d elements, want 10000", got)
	}
	timed("apply the same 10000 again", &big)
	big.Mappings.Delete(Key{TCP, 10000})
	timed("remove one of 10000", &big)
	if drifted, err := d.Drifted(); drifted || err != nil {
		t.Errorf("Drifted with 9999 mappings = %v, %v", drifted, err)
	}
	empty := *s
	empty.Mappings = nil
	if took := timed("remove 9999 mappings", &empty); took > 2*time.Second {
		t.Errorf("removing 9999 mappings took %v, want under 2s", took)
	}
	checkTable(t, ns, &empty)
}

func TestNFTablesWatchDrift(t *testing.T) {
	requireRoot(t)
	leakcheck.Check(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}

	reports := make(chan struct{}, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.WatchDrift(ctx, func() { reports <- struct{}{} }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchDrift = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("WatchDrift did not return within 5s of its context ending")
		}
	})
	report := func(within time.Duration) bool {
		select {
		case <-reports:
			return true
		case <-time.After(within):
			return false
		}
	}
	quiet := func(what string) {
		t.Helper()
		if report(300 * time.Millisecond) {
			t.Errorf("%s was reported", what)
		}
	}

	// WatchDrift subscribes in its own time: poke the table until it
	// reports, then take the table back.
	ready := false
	for i := 0; i < 50 && !ready; i++ {
		ns.nft(t, fmt.Sprintf("add element inet gateway wan_input { tcp . %d }", 1000+i))
		ready = report(100 * time.Millisecond)
	}
	if !ready {
		t.Fatal("WatchDrift reported no change by nft within 5s")
	}
	for report(300 * time.Millisecond) { // the reports of the other pokes
	}
	if drifted, _ := d.Drifted(); !drifted {
		t.Fatal("the pokes went unnoticed by Drifted")
	}

	// Our own Applies, rebuild and element changes alike, are not
	// reported; nor is another table.
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s.Mappings, t0, Mapping{Proto: TCP, ExternalPort: 22, Internal: netip.MustParseAddrPort("192.168.1.40:22"), Owner: OwnerAdmin})
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	ns.nft(t, "add table inet someone_else ; add chain inet someone_else c")
	// A change by nft after them is the first and only report.
	ns.nft(t, "delete element inet gateway fwd4 { tcp . 22 }")
	if !report(5 * time.Second) {
		t.Fatal("a change by nft was not reported within 5s")
	}
	quiet("our own Apply, or a change to another table,")

	for _, cmd := range []string{"flush table inet gateway", "delete table inet gateway"} {
		ns.nft(t, cmd)
		if !report(5 * time.Second) {
			t.Errorf("%q was not reported within 5s", cmd)
		}
		if drifted, _ := d.Drifted(); !drifted {
			t.Errorf("Drifted after %q = false", cmd)
		}
		if err := d.Apply(s); err != nil {
			t.Fatal(err)
		}
		quiet("the rebuild")
	}
	checkTable(t, ns, s)
}

// TestNFTablesChangedHint: with State.Changed, Apply compares only the
// keys named there (its cost is the size of the change); without it, Apply
// compares everything and catches up.
func TestNFTablesChangedHint(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	mustPut(t, s.Mappings, t0, Mapping{Proto: TCP, ExternalPort: 22, Internal: ap("192.168.1.40:22"), Owner: OwnerAdmin})
	mustPut(t, s.Mappings, t0, Mapping{Proto: TCP, ExternalPort: 23, Internal: ap("192.168.1.40:23"), Owner: OwnerAdmin})
	s.Changed = map[Key]bool{{TCP, 22}: true} // 23 is left out on purpose
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	elems := strings.Join(readTable(t, ns).Elements[setForward], " ")
	if !strings.Contains(elems, "tcp . 22 ") || strings.Contains(elems, "tcp . 23 ") {
		t.Fatalf("with Changed={tcp/22}: fwd4 = %s; want tcp/22 and not tcp/23", elems)
	}
	s.Changed = nil
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	checkTable(t, ns, s)
}

// TestNFTablesChangedPinholesHint: ChangedPinholes is to pinholes what
// Changed is to mappings.
func TestNFTablesChangedPinholesHint(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	a := PinholeKey{Proto: TCP, Internal: ap("[2001:db8:1::30]:80")}
	b := PinholeKey{Proto: TCP, Internal: ap("[2001:db8:1::30]:81"), Remote: netip.MustParseAddr("2001:db8:9::2")}
	for _, k := range []PinholeKey{a, b} {
		if _, err := s.Pinholes.Put(Pinhole{PinholeKey: k, Owner: OwnerUPnP}, now0); err != nil {
			t.Fatal(err)
		}
	}
	s.ChangedPinholes = map[PinholeKey]bool{a: true} // b is left out on purpose
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	got := readTable(t, ns).Elements
	if !slices.Contains(got[setPinholes], "2001:db8:1::30 . tcp . 80") || len(got[setPinholesFrom]) != 1 {
		t.Fatalf("with ChangedPinholes={%v}: pin6 = %q, pin6r = %q; want a and not b", a, got[setPinholes], got[setPinholesFrom])
	}
	s.ChangedPinholes = nil
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	checkTable(t, ns, s)
}

// TestNFTablesRefusesElements: an element that does not fit its set is
// refused before anything is sent, by an incremental Apply and by a
// rebuild alike.
func TestNFTablesRefusesElements(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[1].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	gens := watchGenerations(t, ns)
	before := readTable(t, ns)
	tests := []struct {
		name string
		edit func(*State)
	}{
		{"outside name too long", func(s *State) { s.Outside = []string{"a-very-long-tunnel-name"} }},
	}
	for _, tt := range tests {
		for _, rebuild := range []bool{false, true} {
			bad := *s
			tt.edit(&bad)
			if rebuild {
				bad.Filtering = AddressDependent // another base
			}
			if err := d.Apply(&bad); err == nil {
				t.Errorf("%s (rebuild %v): Apply accepted it", tt.name, rebuild)
			}
		}
	}
	if g := generationsBefore(t, ns, gens); len(g) != 0 {
		t.Errorf("refused Applies committed %d generations", len(g))
	}
	if diff := gocmp.Diff(before, readTable(t, ns)); diff != "" {
		t.Errorf("refused Applies changed the table (-before +after):\n%s", diff)
	}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	checkTable(t, ns, s)
}

// TestElementChecks: elements that do not fit their set's type are
// refused before they are encoded (an IPv4 address in an ipv6_addr field
// would silently become another IPv6 address).
func TestElementChecks(t *testing.T) {
	ap, addr := netip.MustParseAddrPort, netip.MustParseAddr
	refused := func(name string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	accepted := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	pin := func(k PinholeKey) error {
		_, err := diffSet(setPinholes, map[PinholeKey]bool{}, mapSeq(map[PinholeKey]bool{k: true}), pinholeCodec)
		return err
	}
	refused("IPv4 pinhole", pin(PinholeKey{Proto: TCP, Internal: ap("192.168.1.5:80")}))
	refused("IPv4-mapped pinhole", pin(PinholeKey{Proto: TCP, Internal: ap("[::ffff:192.168.1.5]:80")}))
	refused("IPv4-mapped remote", pin(PinholeKey{Proto: UDP, Internal: ap("[2001:db8::5]:80"), Remote: addr("::ffff:198.51.100.1")}))
	refused("pinhole port 0", pin(PinholeKey{Proto: UDP, Internal: ap("[2001:db8::5]:0")}))
	refused("ICMP pinhole", pin(PinholeKey{Proto: 1, Internal: ap("[2001:db8::5]:1")}))
	accepted("pinhole", pin(PinholeKey{Proto: UDP, Internal: ap("[2001:db8::5]:80"), Remote: addr("2001:db8:9::1")}))

	fwdr := func(v remoteDNAT) error {
		_, err := diffSet(setForwardRemote, map[Key]remoteDNAT{}, mapSeq(map[Key]remoteDNAT{{TCP, 80}: v}), fwdRemoteCodec)
		return err
	}
	refused("IPv6 remote host", fwdr(remoteDNAT{addr("2001:db8::1"), ap("192.168.1.5:80")}))
	refused("IPv6 target", fwdr(remoteDNAT{addr("198.51.100.1"), ap("[2001:db8::1]:80")}))
	accepted("remote-filtered mapping", fwdr(remoteDNAT{addr("198.51.100.1"), ap("192.168.1.5:80")}))

	out := func(n string) error {
		_, err := diffSet(setOutside, map[string]bool{}, listSeq([]string{n}), outsideCodec)
		return err
	}
	refused("empty interface name", out(""))
	refused("16-byte interface name", out("0123456789abcdef"))
	accepted("15-byte interface name", out("0123456789abcde"))
}

// TestNFTablesNAT66Elements: the nat66 map follows the ULA hosts'
// pinholes element by element, with the ChangedPinholes hint as the
// service passes it; a new NAT66 address rebuilds, and without one the map
// is empty and no rule DNATs.
func TestNFTablesNAT66Elements(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	d := newTestNFTables(t, ns)
	s := goldenStates(t)[2].state
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	handles := checkTable(t, ns, s).Handles
	ap := netip.MustParseAddrPort
	put := func(k PinholeKey) {
		if _, err := s.Pinholes.Put(Pinhole{PinholeKey: k, Owner: OwnerUPnP}, now0); err != nil {
			t.Fatal(err)
		}
	}
	a := PinholeKey{Proto: UDP, Internal: ap("[fd12:3456:789a:1::20]:3478")}
	aFrom := PinholeKey{Proto: UDP, Internal: a.Internal, Remote: netip.MustParseAddr("2001:db8:9::1")}
	global := PinholeKey{Proto: TCP, Internal: ap("[2001:db8:1::20]:22")}
	old := PinholeKey{Proto: TCP, Internal: ap("[fd12:3456:789a:1::10]:8080")}
	steps := []struct {
		name string
		edit func() []PinholeKey
	}{
		{"a ULA host's pinhole", func() []PinholeKey { put(a); return []PinholeKey{a} }},
		{"the same port for one remote host", func() []PinholeKey { put(aFrom); return []PinholeKey{aFrom} }},
		{"a global host's pinhole", func() []PinholeKey { put(global); return []PinholeKey{global} }},
		{"one of two pinholes on a port closes", func() []PinholeKey { s.Pinholes.Delete(a); return []PinholeKey{a} }},
		{"the last one closes", func() []PinholeKey { s.Pinholes.Delete(aFrom); return []PinholeKey{aFrom} }},
		{"a golden one closes", func() []PinholeKey { s.Pinholes.Delete(old); return []PinholeKey{old} }},
	}
	for _, st := range steps {
		s.ChangedPinholes = map[PinholeKey]bool{}
		for _, k := range st.edit() {
			s.ChangedPinholes[k] = true
		}
		if err := d.Apply(s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := checkTable(t, ns, s)
		if diff := gocmp.Diff(handles, got.Handles); diff != "" {
			t.Errorf("%s: the rules were rebuilt (-before +after):\n%s", st.name, diff)
		}
		// What the kernel holds reads back as what was recorded.
		if drifted, err := d.Drifted(); drifted || err != nil {
			t.Errorf("%s: Drifted = %v, %v", st.name, drifted, err)
		}
	}
	// Someone else edits the map: that is drift.
	ns.nft(t, "add", "element", "inet", TableName, setNAT66, "{ tcp . 9999 : fd12:3456:789a:1::99 . 9999 }")
	if drifted, err := d.Drifted(); !drifted || err != nil {
		t.Errorf("after an element added behind our back: Drifted = %v, %v", drifted, err)
	}
	s.ChangedPinholes = nil
	s.NAT66Addr = netip.MustParseAddr("2001:0:c633:6401:0:fbff:9bfe:1")
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if got := checkTable(t, ns, s); got.Handles.Table == handles.Table {
		t.Errorf("a new NAT66 address kept the table: its rule names the address")
	}
	s.NAT66Addr = netip.Addr{}
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	if got := checkTable(t, ns, s); len(got.Elements[setNAT66]) != 0 || strings.Contains(strings.Join(got.Comments["prerouting"], "\n"), "nat66") {
		t.Errorf("without a NAT66 address: nat66 = %q, prerouting = %q", got.Elements[setNAT66], got.Comments["prerouting"])
	}
}
