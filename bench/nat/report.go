package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// metric is one measurement taken in every configuration.
type metric int

const (
	tcpOut metric = iota
	tcpIn
	connOut
	connIn
	udpOut
	numMetrics
)

// metricInfo describes the columns. Values are stored in base units
// (bit/s, connections/s, packets/s) and divided by scale for display.
var metricInfo = [numMetrics]struct {
	head   string
	scale  float64
	format string
	goal   bool // part of the 95 % goal
}{
	tcpOut:  {"TCP out (Gb/s)", 1e9, "%.2f", true},
	tcpIn:   {"TCP in (Gb/s)", 1e9, "%.2f", true},
	connOut: {"new conn/s out", 1, "%.0f", true},
	connIn:  {"new conn/s in", 1, "%.0f", true},
	udpOut:  {"64-byte UDP out (kpkt/s)", 1e3, "%.0f", false},
}

func (m metric) String() string { return metricInfo[m].head }

func (m metric) format(v float64) string {
	return fmt.Sprintf(metricInfo[m].format, v/metricInfo[m].scale)
}

// goalRatio is the share of plain masquerade that ours must keep with
// every mapping installed.
const goalRatio = 0.95

// goalP2P is the share of masquerade's new connections/s that ours must
// keep in the P2P filtering modes, where nat44 listens to conntrack.
const goalP2P = 0.9

// goalBatch is how long one batch of mappings may take to add or remove.
const goalBatch = time.Second

// persistRun is the one-mapping-per-request run with a state directory on
// disk, as a router keeps its mappings.
type persistRun struct {
	api     string // "Map" (the mapping service) or "Add" (when Map is not there yet)
	dir     string // the state directory's parent, for the report
	n       int    // requests granted
	elapsed time.Duration
	// firstK covers the first 1,000 requests: the table growing from 0 to
	// 1,000 mappings (miniupnpd's reference figure is at 1,000 installed).
	firstK        int
	firstElapsed  time.Duration
	lastN         int // the last tenth
	lastElapsed   time.Duration
	capped        bool
	stateBytes    int64 // the state directory's files at the end
	hosts         int   // LAN hosts the requests came from
	lifetime      time.Duration
	afterRestart  int // mappings a new nat44 read back from the state directory
	restartFailed string
}

// results holds every sample of one run.
type results struct {
	// Meta
	started  time.Time
	elapsed  time.Duration
	kernel   string
	cpus     int
	mappings int
	duration time.Duration
	repeat   int
	conns    int
	// loadStart and loadEnd are the machine's 1-minute load average when
	// the run started and ended: other work on the machine shows there.
	loadStart, loadEnd string

	configs []configInfo // in the order of the table's rows
	samples map[string]*[numMetrics][]float64

	// nat44 mapping operations, one sample per round, with the N mappings.
	batchAdd, batchRemove []time.Duration
	// linearLoad is how long `nft -f` took to load the linear ruleset.
	linearLoad []time.Duration
	single     singleAdds
	persist    *persistRun // nil when not run
	// warnings are what nat44 logged at Warn or above, with counts.
	warnings []string
}

type configInfo struct {
	name, about string
}

// singleAdds is the run of one-mapping Add calls.
type singleAdds struct {
	n       int           // adds done
	elapsed time.Duration // for all n
	// lastN and lastElapsed cover the last tenth of them, when the table
	// was nearly full.
	lastN       int
	lastElapsed time.Duration
	capped      bool // stopped by the time limit before all N
}

func (r *results) add(config string, m metric, v float64) {
	if r.samples == nil {
		r.samples = make(map[string]*[numMetrics][]float64)
	}
	s := r.samples[config]
	if s == nil {
		s = new([numMetrics][]float64)
		r.samples[config] = s
	}
	s[m] = append(s[m], v)
}

// stat reduces the samples of one metric to one figure.
type stat func([]float64) float64

// best is the highest sample: noise on this machine only ever slows a
// measurement down, so the best round is the least disturbed one.
func best(vs []float64) float64 { return slices.Max(vs) }

// median returns the median of config's samples of m; ok is false if there
// are none.
func (r *results) median(config string, m metric) (float64, bool) {
	return r.stat(config, m, median)
}

func (r *results) stat(config string, m metric, f stat) (float64, bool) {
	s := r.samples[config]
	if s == nil || len(s[m]) == 0 {
		return 0, false
	}
	return f(s[m]), true
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func medianDuration(ds []time.Duration) time.Duration {
	vs := make([]float64, len(ds))
	for i, d := range ds {
		vs[i] = float64(d)
	}
	return time.Duration(median(vs))
}

// ratio is config's figure over the reference's, per metric.
func (r *results) ratio(config, ref string, m metric, f stat) (float64, bool) {
	a, ok1 := r.stat(config, m, f)
	b, ok2 := r.stat(ref, m, f)
	if !ok1 || !ok2 || b == 0 {
		return 0, false
	}
	return a / b, true
}

// goal checks ours with N mappings against masq on the goal metrics. It
// returns whether the goal holds, and the metrics that miss it.
func (r *results) goal(ours, ref string, f stat) (holds bool, misses []string, known bool) {
	known = true
	for m := range numMetrics {
		if !metricInfo[m].goal {
			continue
		}
		q, ok := r.ratio(ours, ref, m, f)
		if !ok {
			known = false
			continue
		}
		if q < goalRatio {
			misses = append(misses, fmt.Sprintf("%s %.2f", m, q))
		}
	}
	return known && len(misses) == 0, misses, known
}

// markdown renders the run. ref is the reference configuration, ours the
// one the goal is about.
func (r *results) markdown(ref, ours string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## NAT44 benchmark\n\n")
	rounds := "one round"
	if r.repeat > 1 {
		rounds = fmt.Sprintf("median of %d rounds (configurations interleaved, order rotated each round)", r.repeat)
	}
	fmt.Fprintf(&b, "%s, kernel %s, %d CPUs; %d mappings; %v per measurement; %s; %d concurrent dialers; run took %v.\n\n",
		r.started.Format("2006-01-02 15:04 MST"), r.kernel, r.cpus, r.mappings, r.duration, rounds, r.conns, r.elapsed.Round(time.Second))
	// The load at the end includes the benchmark's own; at the start it is
	// all other work.
	if busy(r.loadStart, r.cpus) {
		fmt.Fprintf(&b, "**The machine was busy with other work when this run started (load average %s on %d CPUs): the figures are unreliable; run again when it is quiet.**\n\n", r.loadStart, r.cpus)
	}
	fmt.Fprintf(&b, "> This machine is small and shared (%d CPUs, other jobs running; 1-minute load average %s at the start, %s at the end, the benchmark's own included): single samples of the same configuration differ by up to 50 %% and absolute figures move from run to run. Compare only figures of the same run, and the ratios to `%s` only where they are well away from the threshold.\n\n", r.cpus, or(r.loadStart, "?"), or(r.loadEnd, "?"), ref)

	b.WriteString("| configuration |")
	for m := range numMetrics {
		fmt.Fprintf(&b, " %s |", m)
	}
	b.WriteString("\n|---|")
	for range numMetrics {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, c := range r.configs {
		fmt.Fprintf(&b, "| %s |", c.name)
		for m := range numMetrics {
			if v, ok := r.median(c.name, m); ok {
				fmt.Fprintf(&b, " %s |", m.format(v))
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	for _, c := range r.configs {
		if c.name == ref {
			continue
		}
		fmt.Fprintf(&b, "| **%s/%s** |", c.name, ref)
		for m := range numMetrics {
			if q, ok := r.ratio(c.name, ref, m, median); ok {
				fmt.Fprintf(&b, " %.2f |", q)
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")

	if r.repeat > 1 {
		fmt.Fprintf(&b, "The same ratios from each configuration's best round (noise only slows a run down):\n\n")
		b.WriteString("| best/best |")
		for m := range numMetrics {
			fmt.Fprintf(&b, " %s |", m)
		}
		b.WriteString("\n|---|")
		for range numMetrics {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		for _, c := range r.configs {
			if c.name == ref {
				continue
			}
			fmt.Fprintf(&b, "| %s/%s |", c.name, ref)
			for m := range numMetrics {
				if q, ok := r.ratio(c.name, ref, m, best); ok {
					fmt.Fprintf(&b, " %.2f |", q)
				} else {
					b.WriteString(" – |")
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}

	verdict := func(f stat) string {
		holds, misses, known := r.goal(ours, ref, f)
		switch {
		case !known:
			return "not measured"
		case holds:
			return "**holds**"
		}
		return "**does not hold** (" + strings.Join(misses, ", ") + ")"
	}
	fmt.Fprintf(&b, "**Goal** (%s keeps ≥ %.0f %% of %s in TCP throughput and new connections/s, in and out): on the medians %s", ours, goalRatio*100, ref, verdict(median))
	if r.repeat > 1 {
		fmt.Fprintf(&b, "; on the best rounds %s", verdict(best))
	}
	b.WriteString(".\n")
	if len(r.batchAdd) > 0 && len(r.batchRemove) > 0 {
		add, rm := medianDuration(r.batchAdd), medianDuration(r.batchRemove)
		verdict := "**holds**"
		if add >= goalBatch || rm >= goalBatch {
			verdict = "**does not hold**"
		}
		fmt.Fprintf(&b, "**Goal** (add and remove %d mappings in under %v each): %s (add %s, remove %s).\n", r.mappings, goalBatch, verdict, fmtDur(add), fmtDur(rm))
	}
	b.WriteString("\n")
	r.p2pMarkdown(&b, ref, ours)

	b.WriteString("| mapping operation | median | samples |\n|---|---:|---|\n")
	row := func(what string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		ss := make([]string, len(ds))
		for i, d := range ds {
			ss[i] = fmtDur(d)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", what, fmtDur(medianDuration(ds)), strings.Join(ss, ", "))
	}
	row(fmt.Sprintf("ours: Add %d mappings, one batch", r.mappings), r.batchAdd)
	row(fmt.Sprintf("ours: Remove %d mappings, one batch", r.mappings), r.batchRemove)
	row(fmt.Sprintf("linear: `nft -f` of %d DNAT + %d forward rules", r.mappings, r.mappings), r.linearLoad)
	if s := r.single; s.n > 0 {
		rate := float64(s.n) / s.elapsed.Seconds()
		note := ""
		if s.capped {
			note = " (stopped by the time limit)"
		}
		last := ""
		if s.lastN > 0 && s.lastElapsed > 0 {
			last = fmt.Sprintf("; last %d: %.0f adds/s", s.lastN, float64(s.lastN)/s.lastElapsed.Seconds())
		}
		fmt.Fprintf(&b, "| ours: one mapping per Add call, from 0 | %.0f adds/s | %d adds in %s%s%s |\n", rate, s.n, fmtDur(s.elapsed), last, note)
	}
	b.WriteString("\n")

	r.persistMarkdown(&b)

	if len(r.warnings) > 0 {
		b.WriteString("nat44 logged during the run (count × message). Where a warning says part of it stopped, the measurements after it do not include that part's cost:\n\n")
		for _, w := range r.warnings {
			fmt.Fprintf(&b, "- `%s`\n", w)
		}
		b.WriteString("\n")
	}

	b.WriteString("<details><summary>Every sample</summary>\n\n| configuration | metric | samples |\n|---|---|---|\n")
	for _, c := range r.configs {
		s := r.samples[c.name]
		if s == nil {
			continue
		}
		for m := range numMetrics {
			if len(s[m]) == 0 {
				continue
			}
			vs := make([]string, len(s[m]))
			for i, v := range s[m] {
				vs[i] = m.format(v)
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", c.name, m, strings.Join(vs, ", "))
		}
	}
	b.WriteString("\n</details>\n\nConfigurations:\n\n")
	for _, c := range r.configs {
		fmt.Fprintf(&b, "- `%s`: %s\n", c.name, c.about)
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

// countName writes n the short way for configuration names: 10000 is
// "10k", 1500 is "1500".
func countName(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// busy reports whether a load average is above the CPU count.
func busy(load string, cpus int) bool {
	v, err := strconv.ParseFloat(load, 64)
	return err == nil && cpus > 0 && v > float64(cpus)
}

// p2pMarkdown is the table of new connections/s in every filtering mode,
// with each mode's goal: the default (ours) keeps goalRatio of ref, the
// P2P modes (ours-adf, ours-eif) goalP2P.
func (r *results) p2pMarkdown(b *strings.Builder, ref, ours string) {
	var modes []configInfo
	for _, c := range r.configs {
		if c.name == ours || strings.HasPrefix(c.name, ours+"-") && !strings.HasSuffix(c.name, "-noct") {
			modes = append(modes, c)
		}
	}
	if len(modes) < 2 {
		return
	}
	b.WriteString("New connections/s by UDP filtering mode (conntrack event listener on in the P2P modes), ratio to `" + ref + "`; goal ≥ 0.95 in the default mode, ≥ 0.9 in the P2P modes:\n\n")
	b.WriteString("| configuration | filtering | new conn/s out | /" + ref + " | new conn/s in | /" + ref + " | goal | verdict (medians) |")
	if r.repeat > 1 {
		b.WriteString(" verdict (best rounds) |")
	}
	b.WriteString("\n|---|---|---:|---:|---:|---:|---:|---|")
	if r.repeat > 1 {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, c := range modes {
		goal, mode := goalRatio, "address-and-port-dependent (default)"
		switch {
		case strings.HasSuffix(c.name, "-adf"):
			goal, mode = goalP2P, "address-dependent"
		case strings.HasSuffix(c.name, "-eif"):
			goal, mode = goalP2P, "endpoint-independent"
		}
		verdict := func(f stat) string {
			var miss []string
			for _, m := range []metric{connOut, connIn} {
				q, ok := r.ratio(c.name, ref, m, f)
				if !ok {
					return "not measured"
				}
				if q < goal {
					miss = append(miss, fmt.Sprintf("%s %.2f", m, q))
				}
			}
			if len(miss) > 0 {
				return "**misses** (" + strings.Join(miss, ", ") + ")"
			}
			return "**holds**"
		}
		fmt.Fprintf(b, "| %s | %s |", c.name, mode)
		for _, m := range []metric{connOut, connIn} {
			v, ok1 := r.median(c.name, m)
			q, ok2 := r.ratio(c.name, ref, m, median)
			if ok1 && ok2 {
				fmt.Fprintf(b, " %s | %.2f |", m.format(v), q)
			} else {
				b.WriteString(" – | – |")
			}
		}
		fmt.Fprintf(b, " %.2f | %s |", goal, verdict(median))
		if r.repeat > 1 {
			fmt.Fprintf(b, " %s |", verdict(best))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// persistMarkdown reports the one-request-at-a-time run with a state
// directory, beside miniupnpd's figure.
func (r *results) persistMarkdown(b *strings.Builder) {
	p := r.persist
	if p == nil {
		return
	}
	rate := func(n int, d time.Duration) string {
		if n == 0 || d <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f/s", float64(n)/d.Seconds())
	}
	b.WriteString("Single-mapping requests **with persistence on** (a state directory on disk, in " + p.dir + "):\n\n")
	b.WriteString("| who | what each request does | requests | rate from 0 | first 1,000 | last tenth |\n|---|---|---:|---:|---:|---:|\n")
	what := "nat44.NAT.Map (UPnP owner, the request policy, exact port, 1 h lifetime): the mapping goes into the kernel's map (one nftables batch) and its record into the journal, fsynced before the call returns; nat44 logs at Warn and above only (nothing per request)"
	if p.api == "Add" {
		what = "nat44.NAT.Add of one mapping (UPnP owner, 1 h expiry; **nat44.NAT.Map is not implemented yet**, so no request policy): the mapping goes into the kernel's map (one nftables batch) and its record into the journal, fsynced before the call returns; nat44 logs at Warn and above only (nothing per request)"
	}
	note := ""
	if p.capped {
		note = " (stopped by -single-limit)"
	}
	fmt.Fprintf(b, "| ours | %s | %d from %d hosts%s | %s | %s | %s |\n", what, p.n, p.hosts, note, rate(p.n, p.elapsed), rate(p.firstK, p.firstElapsed), rate(p.lastN, p.lastElapsed))
	b.WriteString("| miniupnpd 2.3.1 (ANCHORS.md, not run here) | UPnP AddPortMapping over SOAP/HTTP from upnpc: one DNAT and one forward-accept rule appended per mapping (nftables); measured without -d debug logging; ANCHORS.md does not say whether its lease_file was set | – | ~310/s at 100 installed | ~100/s at 1,000 installed | – |\n\n")
	fmt.Fprintf(b, "Not like for like: ours is timed at the Go API (no SOAP, HTTP or socket), miniupnpd end to end from a client. State directory at the end: %d bytes. ", p.stateBytes)
	if p.restartFailed != "" {
		fmt.Fprintf(b, "**A new nat44 could not read it back: %s.**\n\n", p.restartFailed)
	} else {
		verdict := "every mapping"
		if p.afterRestart < p.n {
			verdict = fmt.Sprintf("**%d missing**", p.n-p.afterRestart)
		}
		fmt.Fprintf(b, "A new nat44 read back %d mappings from it (%s).\n\n", p.afterRestart, verdict)
	}
}
