package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"gateway/gateway/lab"
)

// Ports the measurements use. Every configuration forwards both from the
// WAN address to lanHost, so the inbound tests have somewhere to go.
const (
	iperfPort = 5201 // iperf3, TCP and UDP
	connPort  = 5202 // the new-connection load generator
	// fillerBase is the first of the ports that only make the tables big.
	fillerBase = 10000
	// maxMappings keeps fillerBase+n below 65536.
	maxMappings = 50000
)

// lanHost is where every mapping points.
var lanHost = lab.LAN1Addr.Addr()

// mappedPorts returns n distinct external ports with the tested ones last,
// so that in a linear chain every test connection walks all the others
// first. n is at least 2: the tested ports are always there.
func mappedPorts(n int) []uint16 {
	n = max(n, 2)
	ports := make([]uint16, 0, n)
	for p := fillerBase; len(ports) < n-2; p++ {
		ports = append(ports, uint16(p))
	}
	return append(ports, iperfPort, connPort)
}

// nftTable is a table written for `nft -f`, kept as data so that the text
// loaded and the shape checked afterwards cannot disagree.
type nftTable struct {
	family, name string
	chains       []nftChain
}

type nftChain struct {
	name string
	base string // "type … hook … priority …; policy …;"; "" for a regular chain
	// rules are in nft syntax, in order.
	rules []string
}

func (t nftTable) text(b *strings.Builder) {
	fmt.Fprintf(b, "table %s %s {\n", t.family, t.name)
	for _, c := range t.chains {
		fmt.Fprintf(b, "\tchain %s {\n", c.name)
		if c.base != "" {
			fmt.Fprintf(b, "\t\t%s\n", c.base)
		}
		for _, r := range c.rules {
			fmt.Fprintf(b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
}

// ruleset is what one configuration loads with `nft -f`.
type ruleset []nftTable

func (rs ruleset) text() string {
	var b strings.Builder
	for _, t := range rs {
		t.text(&b)
	}
	return b.String()
}

// shape is what the check after loading expects to find.
func (rs ruleset) shape() shape {
	s := newShape()
	for _, t := range rs {
		s.Tables[t.family+" "+t.name] = true
		for _, c := range t.chains {
			s.Chains[t.family+" "+t.name+" "+c.name] = len(c.rules)
		}
	}
	return s
}

const (
	natPre   = "type nat hook prerouting priority dstnat; policy accept;"
	natPost  = "type nat hook postrouting priority srcnat; policy accept;"
	filtFwd  = "type filter hook forward priority filter; policy accept;"
	wanQuote = `"` + lab.GatewayWAN + `"`
)

func dnatRule(port uint16) string {
	return fmt.Sprintf("iifname %s tcp dport %d dnat to %v", wanQuote, port, netip.AddrPortFrom(lanHost, port))
}

// masqRuleset is the reference, fw4 with no mappings: masquerade out of the
// WAN, a DNAT for each tested port, and a forward filter that lets in only
// established flows and DNATed ones, as nat44's forward chain does.
func masqRuleset() ruleset {
	return ruleset{
		{family: "ip", name: "nat", chains: []nftChain{
			{name: "prerouting", base: natPre, rules: []string{dnatRule(iperfPort), dnatRule(connPort)}},
			{name: "postrouting", base: natPost, rules: []string{"oifname " + wanQuote + " masquerade"}},
		}},
		{family: "ip", name: "filter", chains: []nftChain{
			{name: "forward", base: filtFwd, rules: []string{
				"ct state established,related accept",
				"iifname " + wanQuote + " ct status dnat accept",
				"iifname " + wanQuote + " drop",
			}},
		}},
	}
}

// linearRuleset is what miniupnpd makes of len(ports) mappings (ANCHORS.md):
// one DNAT rule and one forward-accept rule per mapping, appended to chains
// that the base chains jump to first. NAT chains see only the first packet
// of a connection; the forward chain sees every packet, and walks all the
// mapping rules before it reaches the established-flow accept.
func linearRuleset(ports []uint16) ruleset {
	dnat := make([]string, len(ports))
	accept := make([]string, len(ports))
	for i, p := range ports {
		dnat[i] = dnatRule(p)
		accept[i] = fmt.Sprintf("ip daddr %v tcp dport %d accept", lanHost, p)
	}
	return ruleset{
		{family: "ip", name: "nat", chains: []nftChain{
			{name: "prerouting", base: natPre, rules: []string{"jump prerouting_miniupnpd"}},
			{name: "prerouting_miniupnpd", rules: dnat},
			{name: "postrouting", base: natPost, rules: []string{"oifname " + wanQuote + " masquerade"}},
		}},
		{family: "ip", name: "filter", chains: []nftChain{
			{name: "forward", base: filtFwd, rules: []string{
				"jump miniupnpd",
				"ct state established,related accept",
				"iifname " + wanQuote + " ct status dnat accept",
				"iifname " + wanQuote + " drop",
			}},
			{name: "miniupnpd", rules: accept},
		}},
	}
}

// shape summarises a ruleset: its tables ("family name"), rules per chain
// and elements per set or map (both keyed "family table name").
type shape struct {
	Tables map[string]bool
	Chains map[string]int
	Elems  map[string]int
}

func newShape() shape {
	return shape{Tables: make(map[string]bool), Chains: make(map[string]int), Elems: make(map[string]int)}
}

// tables lists the tables, sorted.
func (s shape) tables() []string { return slices.Sorted(maps.Keys(s.Tables)) }

// diff says how got differs from want, or "". Sets and maps are compared
// only by name: want lists the ones it expects with their sizes, and a
// size of -1 accepts any.
func (want shape) diff(got shape) string {
	var out []string
	if w, g := want.tables(), got.tables(); !slices.Equal(w, g) {
		out = append(out, fmt.Sprintf("tables %q, want %q", g, w))
	}
	for _, k := range slices.Sorted(maps.Keys(want.Chains)) {
		g, ok := got.Chains[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("chain %s missing", k))
		case want.Chains[k] >= 0 && g != want.Chains[k]:
			out = append(out, fmt.Sprintf("chain %s has %d rules, want %d", k, g, want.Chains[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got.Chains)) {
		if _, ok := want.Chains[k]; !ok {
			out = append(out, fmt.Sprintf("unexpected chain %s (%d rules)", k, got.Chains[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want.Elems)) {
		g, ok := got.Elems[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("set %s missing", k))
		case want.Elems[k] >= 0 && g != want.Elems[k]:
			out = append(out, fmt.Sprintf("set %s has %d elements, want %d", k, g, want.Elems[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got.Elems)) {
		if _, ok := want.Elems[k]; !ok {
			out = append(out, fmt.Sprintf("unexpected set %s (%d elements)", k, got.Elems[k]))
		}
	}
	return strings.Join(out, "; ")
}

// parseRuleset reads the output of `nft -j list ruleset`.
func parseRuleset(b []byte) (shape, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return shape{}, fmt.Errorf("nft -j: %w", err)
	}
	s := newShape()
	type obj struct {
		Family string            `json:"family"`
		Table  string            `json:"table"`
		Name   string            `json:"name"`
		Chain  string            `json:"chain"`
		Elem   []json.RawMessage `json:"elem"`
	}
	for _, item := range doc.Nftables {
		for kind, raw := range item {
			switch kind {
			case "table", "chain", "rule", "set", "map":
			default:
				continue // metainfo, counters, flowtables…
			}
			var o obj
			if err := json.Unmarshal(raw, &o); err != nil {
				return shape{}, fmt.Errorf("nft -j: %s: %w", kind, err)
			}
			switch kind {
			case "table":
				s.Tables[o.Family+" "+o.Name] = true
			case "chain":
				s.Chains[o.Family+" "+o.Table+" "+o.Name] += 0
			case "rule":
				s.Chains[o.Family+" "+o.Table+" "+o.Chain]++
			case "set", "map":
				s.Elems[o.Family+" "+o.Table+" "+o.Name] = len(o.Elem)
			}
		}
	}
	return s, nil
}
