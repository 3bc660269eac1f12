package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gateway/gateway/lab"
)

// Goals (issues 8 and 9): ours at least goalFactor times miniupnpd's rate
// at goalLoad mappings, p99 under goalP99 at every load, and flat: the
// rate at the largest load at least goalFlat of the rate at the smallest.
const (
	goalFactor = 10
	goalLoad   = 1000
	goalP99    = 5 * time.Millisecond
	goalFlat   = 0.8
)

func (r *results) markdown() string {
	var b strings.Builder
	o := r.opt
	fmt.Fprintf(&b, "## Port-mapping benchmark: ours vs miniupnpd 2.3.1\n\n")
	rounds := "one round"
	if o.repeat > 1 {
		rounds = fmt.Sprintf("median of %d rounds (daemons alternating, order rotated each round)", o.repeat)
	}
	fmt.Fprintf(&b, "%s, kernel %s, %d CPUs; loads %s mappings; up to %d requests or %v per measurement, one at a time; %s; run took %v; state directories under %s.\n\n",
		r.started.Format("2006-01-02 15:04 MST"), r.kernel, r.cpus, joinInts(o.loads), o.ops, o.opTime, rounds, r.elapsed.Round(time.Second), r.stateParent)
	fmt.Fprintf(&b, "> Load average %s at the start, %s at the end (the benchmark's own included), on %d CPUs. Compare only figures of the same run.\n\n", or(r.loadStart, "?"), or(r.loadEnd, "?"), r.cpus)

	for _, s := range []string{miniName, oursName} {
		for _, sr := range r.rounds[s] {
			for _, p := range sortedKeys(sr.unavailable) {
				fmt.Fprintf(&b, "- **%s, round %d: %s not available** (%s)\n", s, sr.round+1, p, sr.unavailable[p])
			}
			if sr.err != "" {
				fmt.Fprintf(&b, "- **%s, round %d stopped early**: %s\n", s, sr.round+1, oneLine(sr.err))
			}
			if sr.note != "" {
				fmt.Fprintf(&b, "- %s, round %d: %s\n", s, sr.round+1, sr.note)
			}
		}
	}
	b.WriteString("\n")

	// One table per op: rows are loads, columns each side's rate, p50 and
	// p99, and the ratio of rates.
	for op := range numOps {
		fmt.Fprintf(&b, "### %s\n\n", op)
		b.WriteString("| mappings installed | miniupnpd req/s | p50 | p99 | ours req/s | p50 | p99 | **ours/miniupnpd** |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, load := range o.loads {
			fmt.Fprintf(&b, "| %d |", load)
			for _, s := range []string{miniName, oursName} {
				rate, ok := r.opStat(s, load, op, rateOf)
				if !ok {
					b.WriteString(" " + r.missing(s) + " | – | – |")
					continue
				}
				p50, _ := r.opStat(s, load, op, p50Of)
				p99, _ := r.opStat(s, load, op, p99Of)
				fmt.Fprintf(&b, " %s | %s | %s |", rateText(rate), ms(p50), ms(p99))
			}
			if q, ok := r.ratio(load, op); ok {
				fmt.Fprintf(&b, " **%.1f** |\n", q)
			} else {
				b.WriteString(" – |\n")
			}
		}
		b.WriteString("\n")
		if op == upnpAdd || op == natpmpMapOp || op == pcpMapOp {
			fmt.Fprintf(&b, "%s\n\n", r.goal(op))
		}
	}

	b.WriteString("### Memory and forwarding\n\n")
	b.WriteString("| | idle RSS at start (MiB) |")
	for _, load := range o.loads {
		fmt.Fprintf(&b, " RSS with %d (MiB) |", load)
	}
	if o.iperfAt > 0 {
		fmt.Fprintf(&b, " TCP through a mapped port, %d installed (Gb/s) |", o.iperfAt)
	}
	b.WriteString(" base load installed |\n|---|---:|")
	for range o.loads {
		b.WriteString("---:|")
	}
	if o.iperfAt > 0 {
		b.WriteString("---:|")
	}
	b.WriteString("---|\n")
	for _, s := range []string{miniName, oursName} {
		if len(r.rounds[s]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", s, mibCell(r.get(s, func(sr *sideRound) (float64, bool) { return float64(sr.rssStart), sr.rssStart > 0 }), "–"))
		for _, load := range o.loads {
			fmt.Fprintf(&b, " %s |", mibCell(r.get(s, func(sr *sideRound) (float64, bool) { v, ok := sr.rss[load]; return float64(v), ok && v > 0 }), r.missing(s)))
		}
		if o.iperfAt > 0 {
			if v, ok := median(r.get(s, func(sr *sideRound) (float64, bool) { return sr.iperf, sr.iperf > 0 })); ok {
				fmt.Fprintf(&b, " %.2f |", v/1e9)
			} else {
				b.WriteString(" " + r.missing(s) + " |")
			}
		}
		fmt.Fprintf(&b, " %s |\n", or(r.installSummary(s), r.missing(s)))
	}
	b.WriteString("\n")
	if mr, or := r.get(miniName, iperfOf), r.get(oursName, iperfOf); len(mr) > 0 && len(or) > 0 {
		m, _ := median(mr)
		q, _ := median(or)
		fmt.Fprintf(&b, "TCP through a mapped port, ours/miniupnpd: **%.2f**. ", q/m)
	}
	if s, ok := r.rssGrowth(oursName); ok {
		fmt.Fprintf(&b, "Ours's RSS grew %.1f MiB from idle to %d mappings (goal: under 2 MiB). ", s, o.loads[len(o.loads)-1])
	}
	b.WriteString("\n\n")
	for _, s := range []string{miniName, oursName} {
		for _, sr := range r.rounds[s] {
			if sr.iperfErr != "" {
				fmt.Fprintf(&b, "- %s, round %d: iperf3 failed: %s\n", s, sr.round+1, oneLine(sr.iperfErr))
			}
		}
	}

	r.whatEachSideDid(&b)
	r.samplesSection(&b)
	return b.String()
}

// missing is what a table cell says when side has no figure.
func (r *results) missing(side string) string {
	if len(r.rounds[side]) == 0 {
		return "not run"
	}
	return "not available"
}

func iperfOf(sr *sideRound) (float64, bool) { return sr.iperf, sr.iperf > 0 }

// ratio is ours's median rate over miniupnpd's.
func (r *results) ratio(load int, o op) (float64, bool) {
	m, ok1 := r.opStat(miniName, load, o, rateOf)
	q, ok2 := r.opStat(oursName, load, o, rateOf)
	if !ok1 || !ok2 || m == 0 {
		return 0, false
	}
	return q / m, true
}

// goal states whether ours meets the goals for o.
func (r *results) goal(o op) string {
	loads := r.opt.loads
	var parts []string
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	known := true
	holds := true
	if slices.Contains(loads, goalLoad) {
		if q, ok := r.ratio(goalLoad, o); ok {
			parts = append(parts, fmt.Sprintf("%.1f× miniupnpd's rate at %d (goal ≥ %d×: %s)", q, goalLoad, goalFactor, verdict(q >= goalFactor)))
			holds = holds && q >= goalFactor
		} else {
			known = false
		}
	} else {
		known = false
	}
	worst := 0.0
	for _, load := range loads {
		p99, ok := r.opStat(oursName, load, o, p99Of)
		if !ok {
			known = false
			continue
		}
		worst = max(worst, p99)
	}
	if worst > 0 {
		parts = append(parts, fmt.Sprintf("p99 at most %s (goal < %s: %s)", ms(worst), ms(float64(goalP99)), verdict(worst < float64(goalP99))))
		holds = holds && worst < float64(goalP99)
	}
	lo, ok1 := r.opStat(oursName, loads[0], o, rateOf)
	hi, ok2 := r.opStat(oursName, loads[len(loads)-1], o, rateOf)
	if ok1 && ok2 && len(loads) > 1 && lo > 0 {
		parts = append(parts, fmt.Sprintf("rate at %d is %.2f of the rate at %d (flat: goal ≥ %.1f: %s)", loads[len(loads)-1], hi/lo, loads[0], goalFlat, verdict(hi/lo >= goalFlat)))
		holds = holds && hi/lo >= goalFlat
	} else {
		known = false
	}
	head := fmt.Sprintf("**Goal (%s)**: ", o.proto())
	switch {
	case len(parts) == 0:
		return head + "not measured: ours does not answer."
	case !known:
		return head + strings.Join(parts, "; ") + "; the rest not measured."
	case holds:
		return head + "**met**: " + strings.Join(parts, "; ") + "."
	}
	return head + "**missed**: " + strings.Join(parts, "; ") + "."
}

func (r *results) rssGrowth(s string) (float64, bool) {
	last := r.opt.loads[len(r.opt.loads)-1]
	g := r.get(s, func(sr *sideRound) (float64, bool) {
		v, ok := sr.rss[last]
		return mib(v - sr.rssStart), ok && v > 0 && sr.rssStart > 0 && len(sr.unavailable) < 3
	})
	return median(g)
}

func (r *results) installSummary(s string) string {
	var parts []string
	via := ""
	for _, sr := range r.rounds[s] {
		via = or(via, sr.installVia)
	}
	for _, load := range r.opt.loads {
		d, ok := median(r.get(s, func(sr *sideRound) (float64, bool) { v, ok := sr.install[load]; return float64(v), ok }))
		if ok {
			parts = append(parts, fmt.Sprintf("to %d in %v", load, time.Duration(d).Round(10*time.Millisecond)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return via + ": " + strings.Join(parts, ", ")
}

// rateText shows a rate with a decimal below 100/s.
func rateText(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func (r *results) whatEachSideDid(b *strings.Builder) {
	o := r.opt
	b.WriteString("### What each side did\n\n")
	fmt.Fprintf(b, `Both run in the gateway namespace of a lab of their own (gateway/lab: lan1 — gw — isp — pub), one after the other, each round from an empty state directory on disk (under %s), and get the same requests from lan1 through the protocols' wire interfaces, with the same client code (bench/portmap: its own SOAP client, 12-byte NAT-PMP and 60-byte PCP MAP requests):

- **Base load**: mappings %d+i (TCP, internal port = external port, lifetime %v) from %d LAN addresses on lan1 (192.168.1.100 and up; no host holds more than %d, below nat44's per-host limit of 128), installed over NAT-PMP with %d requests in flight (over UPnP, one at a time, when NAT-PMP does not answer), growing from one load to the next.
- **Measured**, at each load, one request at a time, each timed from its first byte sent to its answer read: up to %d UPnP AddPortMapping (lease %v, one TCP connection per request, Connection: close, as libminiupnpc does; from the addresses in turn, each mapping to itself), then a DeletePortMapping of each; up to %d NAT-PMP TCP map requests (retransmitted after %v, retries counted), then deleted (lifetime 0, not timed); up to %d PCP MAP requests (TCP, new nonce each, suggested port), then deleted with the same nonce (not timed). Each measurement stops at %v (after at least 10 requests). Rate = successful requests / elapsed.
- **RSS**: VmRSS 1 s after start, before any mapping, and 1 s after each load was installed.
`, r.stateParent, baseFirst, baseLifetime, r.hosts, hostShare, o.window, o.ops, opLifetime, o.ops, udpTimeout, o.ops, o.opTime)
	if o.iperfAt > 0 {
		fmt.Fprintf(b, "- **TCP through a mapped port**: with %d installed, lan1 maps TCP %d to its own address (UPnP; the newest mapping, so last in miniupnpd's chains), and iperf3 runs %v from pub to the gateway's WAN address %v:%d.\n", o.iperfAt, iperfPort, o.iperfTime, gwWAN, iperfPort)
	}
	fmt.Fprintf(b, `
**miniupnpd** (Debian miniupnpd-nftables 2.3.1) runs as a daemon without -d (no debug logging; it logs to syslog, which the lab does not run), with the base ruleset it needs loaded first (table inet filter: chains prerouting_miniupnpd, postrouting_miniupnpd, miniupnpd, jumped to from nat prerouting/postrouting and first thing in a forward chain with policy drop, then established/related and LAN-out accepts, and masquerade out of %s). Its config: ext_ifname=%s, listening_ip=%s, http_port=%d, enable_upnp and enable_natpmp (NAT-PMP and PCP) on, secure_mode, allow 1024-65535 %v 1024-65535 then deny all, uuid fixed, system_uptime, and a lease_file in its state directory. The lab's WAN address (203.0.113.2) is in a range miniupnpd treats as reserved (no forwarding), so it learns its external address by STUN (ext_perform_stun=yes, ext_stun_host=%v) from stund running in pub on %v and %v. The lease file is miniupnpd's only persistence, and not durable: per add it reads /proc/net/tcp, rewrites the whole lease file into a temporary file without any old line for the port and renames it over the old one, then appends the new line, never calling fsync (at the end of its last round the file held %s). Its mappings live in the kernel's rules, one DNAT rule and one forward-accept rule appended per mapping, and it reads its chains back on every request.

**ours** is the binary built from ./cmd/gateway with the lab's config (gateway/labgw.Config: NAT, DHCP, the lab's interfaces) at log level info, its state directory on disk as on a router, plus the sections of -ours-extra if given.
`, "`"+"wan"+"`", "wan", "br-lan", miniHTTPPort, "192.168.1.0/24", gwPub(), gwPub(), gwPub2(), or(r.miniLeaseFile, "nothing: not run"))
	b.WriteString("\n")
}

func (r *results) samplesSection(b *strings.Builder) {
	b.WriteString("<details><summary>Every sample</summary>\n\n")
	b.WriteString("| daemon | round | mappings | request | ok | errors | retries | elapsed | req/s | p50 | p99 | max | first error |\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range []string{miniName, oursName} {
		for _, sr := range r.rounds[s] {
			for _, load := range r.opt.loads {
				ss, ok := sr.samples[load]
				if !ok {
					continue
				}
				for o := range numOps {
					x := ss[o]
					if x.n+x.errs == 0 {
						continue
					}
					fmt.Fprintf(b, "| %s | %d | %d | %s | %d | %d | %d | %v | %s | %s | %s | %s | %s |\n", s, sr.round+1, load, o, x.n, x.errs, x.retries,
						x.elapsed.Round(time.Millisecond), rateText(x.rate()), ms(float64(x.quantile(0.5))), ms(float64(x.quantile(0.99))), ms(float64(x.quantile(1))), oneLine(x.firstErr))
				}
			}
			fmt.Fprintf(b, "| %s | %d | | RSS start %.2f MiB", s, sr.round+1, mib(sr.rssStart))
			for _, load := range r.opt.loads {
				if v, ok := sr.rss[load]; ok {
					fmt.Fprintf(b, ", at %d %.2f MiB", load, mib(v))
				}
			}
			for _, load := range r.opt.loads {
				if d, ok := sr.install[load]; ok {
					fmt.Fprintf(b, "; install to %d %v", load, d.Round(time.Millisecond))
				}
			}
			if sr.iperf > 0 {
				fmt.Fprintf(b, "; iperf3 %.2f Gb/s", sr.iperf/1e9)
			}
			b.WriteString(" | | | | | | | | | |\n")
		}
	}
	b.WriteString("\n</details>\n")
}

func gwPub() string  { return lab.PublicAddrs[0].Addr().String() }
func gwPub2() string { return lab.PublicAddrs[1].Addr().String() }

func ms(ns float64) string {
	if ns == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f ms", ns/1e6)
}

func mibCell(vs []float64, none string) string {
	v, ok := median(vs)
	if !ok {
		return none
	}
	return fmt.Sprintf("%.1f", v/(1<<20))
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	slices.Sort(k)
	return k
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}
