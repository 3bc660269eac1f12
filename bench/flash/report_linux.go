package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// goalSyncs is the most fsyncs per hour the daemon may cost a home load.
const goalSyncs = 12

type result struct {
	opt      options
	started  time.Time
	elapsed  time.Duration // of the load, real
	headroom time.Duration // nat44's, real
	dmLease  time.Duration // dnsmasq's lease time, real
	sides    []*sideResult // ours, dnsmasq

	grants     map[string]grant // last grant per mapping key
	grantCount int
	mapLost    int // granted mappings missing from disk after SIGKILL
	mapShort   int // on disk with an earlier expiry than granted
	mapErr     string
}

type sideResult struct {
	name    string
	hours   []hourStat
	files   map[string]*hourStat
	clients clientStats
	acks    map[string]ack

	verified  bool
	verifyErr string
	lost      int // ACKed bindings missing after SIGKILL
	short     int // on disk with an earlier expiry than the ACK promised
}

func (s *sideResult) total() hourStat {
	var t hourStat
	for _, h := range s.hours {
		t.syncs += h.syncs
		t.writes += h.writes
		t.renames += h.renames
		t.bytes += h.bytes
	}
	return t
}

// steady is the per-hour average after the first hour (which holds the
// first leases and mappings), or over the whole run when it is shorter
// than two hours.
func (r *result) steady(s *sideResult) (syncs, bytes float64, from int) {
	hs := s.hours
	full := int(r.opt.hours) // hours fully inside the run
	if full >= 2 {
		from = 1
	} else {
		return float64(s.total().syncs) / r.opt.hours, float64(s.total().bytes) / r.opt.hours, 0
	}
	var n int
	for i := from; i < full; i++ {
		if i < len(hs) {
			syncs += float64(hs[i].syncs)
			bytes += float64(hs[i].bytes)
		}
		n++
	}
	return syncs / float64(n), bytes / float64(n), from
}

func (r *result) markdown() string {
	var b strings.Builder
	o := r.opt
	fmt.Fprintf(&b, "## Flash wear: writes to the state directory under a home load\n\n")
	fmt.Fprintf(&b, "%s; %.1f simulated hours in %v real (time compressed %.0f×); state directories on %s.\n\n",
		r.started.Format("2006-01-02 15:04 MST"), o.hours, r.elapsed.Round(time.Second), o.scale, or(o.parent, "the system's temp dir"))
	api := "nat44.NAT.Map"
	for _, g := range r.grants {
		if g.API == "Add" {
			api = "nat44.NAT.Add (**nat44.NAT.Map is not implemented yet**: each request is an Add of the whole mapping with its new expiry, no request policy)"
		}
		break
	}
	fmt.Fprintf(&b, "The load, the same for both sides where both do it:\n\n")
	fmt.Fprintf(&b, "- %d DHCP clients (synthetic, in a namespace of their own): one DORA each at the start, then a renewal every %v (half the %v lease; a REQUEST with ciaddr, broadcast).\n", o.clients, o.lease/2, o.lease)
	fmt.Fprintf(&b, "- ours only: a torrent client re-adding the same %d UPnP mappings every %v (lifetime %v) and a console renewing one PCP mapping every %v (lifetime %v), through %s, owners upnp and pcp.\n\n", o.upnpMaps, o.upnp, o.upnpLife, o.pcp, o.pcpLife, api)
	fmt.Fprintf(&b, "What each side is:\n\n")
	fmt.Fprintf(&b, "- **ours**: one process (bench/flash's worker) running our DHCP server (package dhcp, durable leases, no conflict detection) on a veth and the mapping core (package nat44 with the in-memory datapath of nat44test: the kernel is not programmed, the state directory is what is measured), both keeping their state in one directory as the daemon does (leases.jsonl, mappings.jsonl); logging at Warn and above to standard error, not to the state directory.\n")
	fmt.Fprintf(&b, "- **dnsmasq** 2.90: `-k --port=0`, dhcp-authoritative, no-ping, quiet-dhcp, log to standard error (discarded), its lease file in its state directory; lease time %v (its minimum is 2 minutes; the clients renew on the schedule above whatever it grants).\n\n", r.dmLease.Round(time.Second))
	fmt.Fprintf(&b, "How: time is compressed by dividing every period and lifetime by %.0f, the load's and the services' own alike: our DHCP lease time (%v real), nat44's Headroom (its default 30 min: %v real) and its Policy.MinLifetime (120 s: %v real). A fixed interval inside a service that is not a config field would not be scaled (none at the time of writing). Each daemon runs under `strace -f -y --seccomp-bpf` (traced: %s); the writes (bytes returned), fsync/fdatasync/sync_file_range/syncfs and renames on files of its state directory are counted exactly and put into the simulated hour in which they happened. At the end both daemons are killed with SIGKILL, and their state directories read back: ours by new dhcp and nat44 services, dnsmasq's lease file as text.\n\n",
		o.scale, o.sim(o.lease), r.headroom, o.sim(2*time.Minute), traced)

	b.WriteString("| side | fsyncs/hour, whole run | fsyncs/hour, steady state | bytes/hour, steady state | writes | renames | goal ≤ 12 fsyncs/hour |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.sides {
		t := s.total()
		syncs, bytes, from := r.steady(s)
		verdict := "–"
		if s.name == "ours" {
			verdict = "**holds**"
			if syncs > goalSyncs {
				verdict = fmt.Sprintf("**misses** (%.1f)", syncs)
			}
		}
		steadyNote := ""
		if from > 0 {
			steadyNote = fmt.Sprintf(" (hours %d-%d)", from+1, int(o.hours))
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f%s | %.0f | %d | %d | %s |\n", s.name, float64(t.syncs)/o.hours, syncs, steadyNote, bytes, t.writes, t.renames, verdict)
	}
	b.WriteString("\n")

	b.WriteString("Per simulated hour (fsyncs / bytes written):\n\n| hour |")
	for _, s := range r.sides {
		fmt.Fprintf(&b, " %s |", s.name)
	}
	b.WriteString("\n|---|")
	for range r.sides {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	nh := 0
	for _, s := range r.sides {
		nh = max(nh, len(s.hours))
	}
	for h := range nh {
		fmt.Fprintf(&b, "| %d |", h+1)
		for _, s := range r.sides {
			if h < len(s.hours) {
				fmt.Fprintf(&b, " %d / %d |", s.hours[h].syncs, s.hours[h].bytes)
			} else {
				b.WriteString(" 0 / 0 |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\nBy file, whole run:\n\n| side | file | fsyncs | writes | bytes | renames |\n|---|---|---:|---:|---:|---:|\n")
	for _, s := range r.sides {
		names := make([]string, 0, len(s.files))
		for n := range s.files {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			f := s.files[n]
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d |\n", s.name, n, f.syncs, f.writes, f.bytes, f.renames)
		}
	}

	b.WriteString("\nWhat the replies promised, after SIGKILL and a restart:\n\n| side | DHCP: bound / renewals ACKed / failed exchanges / NAKs | leases missing or moved | leases with an earlier expiry on disk than ACKed |\n|---|---|---:|---:|\n")
	for _, s := range r.sides {
		c := s.clients
		if !s.verified {
			fmt.Fprintf(&b, "| %s | %d / %d / %d / %d | could not read back: %s | – |\n", s.name, c.bound, c.renewals, c.failed, c.naks, s.verifyErr)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d / %d / %d / %d | %s | %d |\n", s.name, c.bound, c.renewals, c.failed, c.naks, zeroBold(s.lost), s.short)
	}
	b.WriteString("\n")
	if r.mapErr != "" {
		fmt.Fprintf(&b, "Mappings: **could not read back: %s**.\n\n", r.mapErr)
	} else {
		fmt.Fprintf(&b, "Mappings (ours): %d requests granted, %d mappings; after SIGKILL %s missing, %d with an earlier expiry on disk than granted.\n\n", r.grantCount, len(r.grants), zeroBold(r.mapLost), r.mapShort)
	}
	b.WriteString("A lease or mapping missing after the kill is a promise broken. An earlier expiry on disk than promised is what folding renewals may cost: DESIGN.md allows a renewal that only moves an expiry to be written at a bounded rate; the client then keeps its binding as long as the expiry on disk has not passed when the daemon restarts.\n")
	return b.String()
}

func zeroBold(n int) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("**%d**", n)
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
