package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMappedPorts(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		want []uint16
	}{
		{"only the tested ports", 2, []uint16{iperfPort, connPort}},
		{"below the minimum", 0, []uint16{iperfPort, connPort}},
		{"tested ports last", 5, []uint16{10000, 10001, 10002, iperfPort, connPort}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, mappedPorts(tc.n)); diff != "" {
				t.Errorf("mappedPorts(%d) (-want +got):\n%s", tc.n, diff)
			}
		})
	}
	ports := mappedPorts(maxMappings)
	seen := make(map[uint16]bool)
	for _, p := range ports {
		if p == 0 || seen[p] {
			t.Fatalf("mappedPorts(%d): port %d is 0 or given twice", maxMappings, p)
		}
		seen[p] = true
	}
}

func TestLinearRuleset(t *testing.T) {
	rs := linearRuleset(mappedPorts(4))
	text := rs.text()
	for _, want := range []string{
		"\t\tjump prerouting_miniupnpd\n",
		"\t\tiifname \"wan\" tcp dport 10001 dnat to 192.168.1.10:10001\n\t\tiifname \"wan\" tcp dport 5201 dnat to 192.168.1.10:5201\n\t\tiifname \"wan\" tcp dport 5202 dnat to 192.168.1.10:5202\n\t}\n",
		"\t\tjump miniupnpd\n\t\tct state established,related accept\n",
		"\t\tip daddr 192.168.1.10 tcp dport 5202 accept\n\t}\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, text)
		}
	}
	want := map[string]int{
		"ip nat prerouting":           1,
		"ip nat prerouting_miniupnpd": 4,
		"ip nat postrouting":          1,
		"ip filter forward":           4,
		"ip filter miniupnpd":         4,
	}
	if diff := cmp.Diff(want, rs.shape().Chains); diff != "" {
		t.Errorf("shape (-want +got):\n%s", diff)
	}
}

// nftJSON is trimmed output of `nft -j list ruleset` (nftables 1.0.6).
const nftJSON = `{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "gateway", "handle": 1}},
{"map": {"family": "inet", "name": "fwd4", "table": "gateway", "type": ["inet_proto", "inet_service"], "handle": 1, "map": ["ipv4_addr", "inet_service"], "elem": [[{"concat": ["tcp", 5201]}, {"concat": ["192.168.1.10", 5201]}], [{"concat": ["tcp", 5202]}, {"concat": ["192.168.1.10", 5202]}]]}},
{"set": {"family": "inet", "name": "wan_input", "table": "gateway", "type": ["inet_proto", "inet_service"], "handle": 4}},
{"chain": {"family": "inet", "table": "gateway", "name": "prerouting", "handle": 5, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
{"chain": {"family": "inet", "table": "gateway", "name": "forward", "handle": 8, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
{"rule": {"family": "inet", "table": "gateway", "chain": "prerouting", "handle": 9, "expr": []}},
{"table": {"family": "ip", "name": "empty", "handle": 2}}
]}`

func TestParseRuleset(t *testing.T) {
	got, err := parseRuleset([]byte(nftJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := shape{
		Tables: map[string]bool{"inet gateway": true, "ip empty": true},
		Chains: map[string]int{"inet gateway prerouting": 1, "inet gateway forward": 0},
		Elems:  map[string]int{"inet gateway fwd4": 2, "inet gateway wan_input": 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseRuleset (-want +got):\n%s", diff)
	}
	if d := want.diff(got); d != "" {
		t.Errorf("diff of equal shapes = %q", d)
	}
	if d := newShape().diff(got); !strings.Contains(d, "tables") || !strings.Contains(d, "unexpected chain inet gateway prerouting") {
		t.Errorf("diff against the empty ruleset = %q, want the tables and chains named", d)
	}
	empty, err := parseRuleset([]byte(`{"nftables": [{"metainfo": {"version": "1.0.6"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := newShape().diff(empty); d != "" {
		t.Errorf("empty ruleset differs from the empty shape: %s", d)
	}
}

func TestReport(t *testing.T) {
	r := &results{mappings: 10, repeat: 3, cpus: 2, duration: time.Second,
		configs: []configInfo{{"masq", "ref"}, {"ours10", "ours"}}}
	for _, v := range []float64{90, 100, 200} {
		for m := range numMetrics {
			r.add("masq", m, v)
		}
	}
	for _, v := range []float64{96, 96, 1} {
		for m := range numMetrics {
			r.add("ours10", m, v)
		}
	}
	if q, _ := r.ratio("ours10", "masq", connIn, median); q != 0.96 {
		t.Errorf("ratio = %v, want 0.96 (medians 96/100)", q)
	}
	if holds, misses, known := r.goal("ours10", "masq", median); !holds || !known || len(misses) > 0 {
		t.Errorf("goal = %v %v %v, want it to hold", holds, misses, known)
	}
	r.add("ours10", tcpIn, 1) // median now (1+96)/2
	if holds, misses, _ := r.goal("ours10", "masq", median); holds || len(misses) != 1 || !strings.HasPrefix(misses[0], "TCP in") {
		t.Errorf("goal = %v %v, want a miss on TCP in", holds, misses)
	}
	if holds, _, _ := r.goal("ours10", "masq", best); holds {
		t.Errorf("goal on the best rounds holds, want a miss (best 96 against 200)")
	}
	md := r.markdown("masq", "ours10")
	for _, want := range []string{"| **ours10/masq** |", "**does not hold**", "compare only figures of the same run"} {
		if !strings.Contains(strings.ToLower(md), strings.ToLower(want)) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
