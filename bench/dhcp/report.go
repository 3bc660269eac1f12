package main

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The servers under test.
const (
	serverOurs    = "ours"
	serverDnsmasq = "dnsmasq"
)

// loadResult is what one run of the load generator saw. Every reply is
// counted once: as an OFFER or ACK of an open transaction, as a NAK, or
// as a stray.
type loadResult struct {
	clients    int
	started    int // clients that sent a DISCOVER
	acked      int
	failed     int // gave up: tries sends of one message unanswered, or 3 NAKs
	unfinished int // still waiting when the time limit ended the run
	retries    int // retransmissions
	naks       int
	strays     int // replies to no open transaction, or out of turn (answers to retransmissions)
	sendErrs   int
	wrongAddr  int // ACK of another address than the one requested
	dupAddrs   int // ACK of an address already ACKed to another client
	capped     bool
	elapsed    time.Duration   // first DISCOVER to last ACK
	latency    []time.Duration // sorted: first DISCOVER sent → ACK received
	leased     map[string]netip.Addr
}

// rate is DORA/s over the run.
func (r *loadResult) rate() float64 {
	if r.acked == 0 || r.elapsed <= 0 {
		return 0
	}
	return float64(r.acked) / r.elapsed.Seconds()
}

// quantile of the time to a lease over all clients: a client that got no
// lease counts as never (ok false means the quantile falls on one).
func (r *loadResult) quantile(q float64) (time.Duration, bool) {
	n := r.clients
	if n == 0 {
		return 0, false
	}
	i := int(math.Ceil(q*float64(n))) - 1
	i = max(i, 0)
	if i >= len(r.latency) {
		return 0, false
	}
	return r.latency[i], true
}

// usage is what /proc says about a process.
type usage struct {
	rssKiB int64
	cpu    time.Duration // user + system
}

// measurement is one server under one run.
type measurement struct {
	server  string
	run     string // the row's label
	burst   bool   // the conflict-detection run: time to a lease matters, not the rate
	limit   time.Duration
	res     *loadResult
	before  usage
	after   usage
	stored  string            // what the lease store held afterwards
	durable bool              // every ACKed lease was in the store
	counter map[string]uint64 // ours: its drop and failure counters
	// Datagrams the kernel dropped during the run because a socket's
	// receive buffer was full, in the server's namespace (the server's
	// socket: nothing else listens there) and in the clients' (the
	// generator's: it must stay 0).
	srvRcvbufDrops, cliRcvbufDrops int64
	genCPU                         time.Duration // the load generator's (this process's) CPU time during the run
	note                           string
}

// results is the whole run, for the report.
type results struct {
	opt     options
	started time.Time
	elapsed time.Duration
	kernel  string
	cpus    int
	loadAvg [2]string // at start and end
	stateFS string
	rows    []*measurement
}

func (r *results) find(server, run string) *measurement {
	for _, m := range r.rows {
		if m.server == server && m.run == run {
			return m
		}
	}
	return nil
}

func loadLabel(n int) string  { return fmt.Sprintf("%s clients", thousands(n)) }
func burstLabel(n int) string { return fmt.Sprintf("%s at once, conflict detection on", thousands(n)) }

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# DHCP benchmark: ours vs dnsmasq 2.90\n\n")
	p("%s, kernel %s, %d CPUs, load average %s at start, %s at end; %s in all.\n",
		r.started.Format("2006-01-02 15:04"), r.kernel, r.cpus, r.loadAvg[0], r.loadAvg[1], r.elapsed.Round(time.Second))
	p("Each row: a fresh server process in `bdhcp-srv` with an empty lease store on %s (durable: ours acknowledges after its journal's fsync, dnsmasq rewrites and fsyncs its lease file per change); ", r.stateFS)
	p("clients in `bdhcp-cli` do a full DORA with scrambled MACs and the broadcast flag, %d at a time, retransmit after 2 s, give up after 3 sends of a message (load runs). ", r.opt.window)
	p("The burst run starts every client at once and retransmits until it has a lease or the wait (%v) ends.\n\n", r.opt.burstLimit)
	p("**The machine is noisy (2 shared cores, other jobs running): compare only figures of the same run.**\n\n")
	if r.opt.quick {
		p("**-quick is a smoke run: its load runs last well under a second, so its rates and the verdicts below are not measurements.**\n\n")
	}

	p("| server | run | leased | DORA/s | p50 | p99 | max | failed / retries / NAKs | RSS before → after | CPU s (µs/lease) | generator CPU s | lease store after |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range r.rows {
		res := m.res
		leased := fmt.Sprintf("%s/%s", thousands(res.acked), thousands(res.clients))
		if res.capped {
			leased += fmt.Sprintf(" (stopped at %v)", m.limit)
		}
		q := func(x float64) string {
			d, ok := res.quantile(x)
			if !ok {
				return "no lease"
			}
			return fmtDur(d)
		}
		cpu := m.after.cpu - m.before.cpu
		perLease := "—"
		if res.acked > 0 {
			perLease = fmt.Sprintf("%.0f", float64(cpu.Microseconds())/float64(res.acked))
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %d / %d / %d | %s → %s | %.2f (%s) | %.2f | %s |\n",
			m.server, m.run, leased, fmtRate(res.rate()), q(0.5), q(0.99), q(1),
			res.failed, res.retries, res.naks, fmtKiB(m.before.rssKiB), fmtKiB(m.after.rssKiB),
			cpu.Seconds(), perLease, m.genCPU.Seconds(), m.stored)
	}
	p("\np50/p99/max: time from a client's first DISCOVER to its ACK, over all clients of the run (\"no lease\": the quantile falls on a client that got none). NAKs: REQUESTs for the offered address that the server refused (the client starts over). DORA/s: leases over the time from the first DISCOVER to the last ACK. CPU s: the server process's user+system time during the run (/proc/PID/stat); generator CPU s: this process's, which shares the same 2 cores.\n\n")

	p("## Goals\n\n")
	small, large := loadLabel(r.opt.small), loadLabel(r.opt.large)
	ratio := func(run string) (float64, *measurement, *measurement) {
		o, d := r.find(serverOurs, run), r.find(serverDnsmasq, run)
		if o == nil || d == nil || d.res.rate() == 0 {
			return 0, o, d
		}
		return o.res.rate() / d.res.rate(), o, d
	}
	for _, run := range []string{small, large} {
		if x, o, d := ratio(run); o != nil && d != nil {
			p("- DORA/s ours/dnsmasq, %s: %s / %s = **%.1f×**\n", run, fmtRate(o.res.rate()), fmtRate(d.res.rate()), x)
		}
	}
	if x, o, d := ratio(large); o != nil && d != nil {
		p("- At least 3× dnsmasq's rate at %s leases, durable: %.1f× → **%s**%s\n", thousands(r.opt.large), x, holds(x >= 3 && o.durable && o.res.failed == 0),
			cappedNote(d))
	}
	if o1, o2 := r.find(serverOurs, small), r.find(serverOurs, large); o1 != nil && o2 != nil && o1.res.rate() > 0 {
		x := o2.res.rate() / o1.res.rate()
		p("- Flat cost per lease from %s to %s leases (ours, rate within 20%%): %s/s → %s/s = %.2f → **%s**\n",
			thousands(r.opt.small), thousands(r.opt.large), fmtRate(o1.res.rate()), fmtRate(o2.res.rate()), x, holds(x >= 0.8))
		if d1, d2 := r.find(serverDnsmasq, small), r.find(serverDnsmasq, large); d1 != nil && d2 != nil && d1.res.rate() > 0 {
			p("  (dnsmasq: %.2f)\n", d2.res.rate()/d1.res.rate())
		}
	}
	burst := burstLabel(r.opt.burst)
	if o := r.find(serverOurs, burst); o != nil {
		p99, ok := o.res.quantile(0.99)
		p("- Conflict detection on, %d clients at once, p99 time to a lease under 1 s (ours): %s → **%s**\n",
			r.opt.burst, map[bool]string{true: fmtDur(p99), false: "a client got no lease"}[ok], holds(ok && p99 < time.Second))
	}
	if d := r.find(serverDnsmasq, burst); d != nil {
		p("  (dnsmasq with its ping check: %d of %d leased within %v", d.res.acked, d.res.clients, d.limit)
		if n := len(d.res.latency); n > 0 {
			p(", the last after %s", fmtDur(d.res.latency[n-1]))
		}
		p(")\n")
	}

	var notes []string
	for _, m := range r.rows {
		var parts []string
		if m.note != "" {
			parts = append(parts, m.note)
		}
		res := m.res
		if res.unfinished > 0 || res.started < res.clients {
			parts = append(parts, fmt.Sprintf("%d waiting and %d not started when the run stopped", res.unfinished, res.clients-res.started))
		}
		if res.strays > 0 {
			parts = append(parts, fmt.Sprintf("%d stray replies (answers to retransmissions)", res.strays))
		}
		if res.sendErrs > 0 {
			parts = append(parts, fmt.Sprintf("%d send errors", res.sendErrs))
		}
		if res.wrongAddr > 0 || res.dupAddrs > 0 {
			parts = append(parts, fmt.Sprintf("**%d ACKs of an address not offered, %d addresses ACKed to two clients**", res.wrongAddr, res.dupAddrs))
		}
		if m.srvRcvbufDrops > 0 {
			parts = append(parts, fmt.Sprintf("**the kernel dropped %d requests because the server's socket receive buffer was full** (UdpRcvbufErrors in %s)", m.srvRcvbufDrops, "`bdhcp-srv`"))
		}
		if m.cliRcvbufDrops > 0 {
			parts = append(parts, fmt.Sprintf("the generator's socket dropped %d replies (its figures are off)", m.cliRcvbufDrops))
		}
		if len(m.counter) > 0 {
			var cs []string
			for _, k := range slices.Sorted(maps.Keys(m.counter)) {
				cs = append(cs, fmt.Sprintf("%s %d", k, m.counter[k]))
			}
			parts = append(parts, "server counters: "+strings.Join(cs, ", "))
		}
		if len(parts) > 0 {
			notes = append(notes, fmt.Sprintf("- %s, %s: %s", m.server, m.run, strings.Join(parts, "; ")))
		}
	}
	if len(notes) > 0 {
		p("\n## Notes\n\n%s\n", strings.Join(notes, "\n"))
	}
	return b.String()
}

func holds(ok bool) string {
	if ok {
		return "holds"
	}
	return "does not hold"
}

func cappedNote(d *measurement) string {
	if d.res.capped {
		return fmt.Sprintf(" (dnsmasq stopped at the %v limit after %s leases: its rate is the one reached by then)", d.limit, thousands(d.res.acked))
	}
	return ""
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func fmtRate(r float64) string { return thousands(int(math.Round(r))) }

func fmtKiB(k int64) string { return fmt.Sprintf("%.1f MB", float64(k)/1024) }

// thousands writes n with comma separators: 10,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
