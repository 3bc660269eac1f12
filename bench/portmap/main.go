// Command portmap measures the port-mapping protocols, UPnP IGD, NAT-PMP
// and PCP, of our daemon against miniupnpd 2.3.1 (nftables), one after
// the other in a lab of network namespaces that it builds and removes
// itself, through each protocol's wire interface from a LAN host, with
// the same client for both:
//
//	go run ./bench/portmap [-quick] [-loads 100,1000,10000] [-repeat 3] [-out FILE]
//
// It needs root, miniupnpd (Debian miniupnpd-nftables), stund
// (stun-server), iperf3 and nft. See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gateway/bench/internal/benchmain"
)

// options are the command line.
type options struct {
	quick       bool
	loads       []int         // mappings installed when measuring, ascending
	ops         int           // requests per measurement, at most
	opTime      time.Duration // time per measurement, at most
	iperfAt     int           // the load at which iperf3 runs (0: never)
	iperfTime   time.Duration
	repeat      int
	window      int // NAT-PMP requests in flight while installing the base load
	stateParent string
	oursExtra   string // config sections appended to ours's config
	sides       []string
	out         string
}

// Limits of the load: the base load spreads over LAN addresses so that no
// host holds more than hostShare mappings (nat44's per-host limit is 128
// by default).
const (
	hostShare = 120
	maxHosts  = 150 // 192.168.1.100-249
	maxLoad   = 20000
	maxOps    = 5000
)

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("portmap", flag.ContinueOnError)
	var o options
	var loads, extra, sides string
	fs.BoolVar(&o.quick, "quick", false, "short smoke run: loads 100,1000, 200 requests or 2s per measurement, 1 round (flags given explicitly still win)")
	fs.StringVar(&loads, "loads", "100,1000,10000", "mappings installed when measuring, ascending, comma-separated")
	fs.IntVar(&o.ops, "ops", 1000, "requests per measurement, at most")
	fs.DurationVar(&o.opTime, "op-time", 10*time.Second, "time per measurement, at most (at least 10 requests are made)")
	fs.IntVar(&o.iperfAt, "iperf-at", 1000, "mappings installed when iperf3 runs through a mapped port (0: no iperf3)")
	fs.DurationVar(&o.iperfTime, "iperf-time", 5*time.Second, "length of the iperf3 run (whole seconds)")
	fs.IntVar(&o.repeat, "repeat", 3, "rounds over both daemons (order alternating); the tables show medians")
	fs.IntVar(&o.window, "window", 4, "NAT-PMP requests in flight while installing the base load")
	fs.StringVar(&o.stateParent, "state-parent", "", "where the daemons' state directories are made (default: the system's temp dir; use a disk)")
	fs.StringVar(&extra, "ours-extra", "", "file of config sections appended to our daemon's config (the lab's config), e.g. upnp/natpmp/pcp sections if it does not turn them on")
	fs.StringVar(&sides, "sides", "miniupnpd,ours", "daemons to run, comma-separated")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	set, err := benchmain.Parse(fs, args, "usage: go run ./bench/portmap [flags]\n\nRuns as root; builds and removes its own namespace lab.")
	if err != nil {
		return o, err
	}
	if o.quick {
		if !set["loads"] {
			loads = "100,1000"
		}
		if !set["ops"] {
			o.ops = 200
		}
		if !set["op-time"] {
			o.opTime = 2 * time.Second
		}
		if !set["iperf-time"] {
			o.iperfTime = 2 * time.Second
		}
		if !set["repeat"] {
			o.repeat = 1
		}
	}
	for _, f := range strings.Split(loads, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxLoad {
			return o, fmt.Errorf("-loads %q: want numbers from 1 to %d", loads, maxLoad)
		}
		o.loads = append(o.loads, n)
	}
	if !slices.IsSorted(o.loads) || len(slices.Compact(slices.Clone(o.loads))) != len(o.loads) {
		return o, fmt.Errorf("-loads %q: want them ascending", loads)
	}
	for _, s := range strings.Split(sides, ",") {
		if s != miniName && s != oursName {
			return o, fmt.Errorf("-sides %q: want %s and/or %s", sides, miniName, oursName)
		}
		o.sides = append(o.sides, s)
	}
	if extra != "" {
		b, err := os.ReadFile(extra)
		if err != nil {
			return o, fmt.Errorf("-ours-extra: %w", err)
		}
		o.oursExtra = "\n" + string(b)
	}
	switch {
	case o.ops < 10 || o.ops > maxOps:
		return o, fmt.Errorf("-ops %d: want 10 to %d", o.ops, maxOps)
	case o.opTime < 100*time.Millisecond || o.opTime > 10*time.Minute:
		return o, fmt.Errorf("-op-time %v: want 100ms to 10m", o.opTime)
	case o.iperfTime < time.Second || o.iperfTime > 5*time.Minute:
		return o, fmt.Errorf("-iperf-time %v: want 1s to 5m", o.iperfTime)
	case o.repeat < 1 || o.repeat > 20:
		return o, fmt.Errorf("-repeat %d: want 1 to 20", o.repeat)
	case o.window < 1 || o.window > 64:
		return o, fmt.Errorf("-window %d: want 1 to 64", o.window)
	case hostsFor(o) > maxHosts:
		return o, fmt.Errorf("-loads and -ops: %d mappings at once need more than %d LAN addresses", o.loads[len(o.loads)-1]+o.ops, maxHosts)
	}
	return o, nil
}

// hostsFor is how many LAN addresses the load comes from.
func hostsFor(o options) int {
	n := o.loads[len(o.loads)-1] + o.ops
	return max(100, (n+hostShare-1)/hostShare)
}

func main() {
	benchmain.Main("bench/portmap", parseFlags, func(o options) string { return o.out }, run, "the lab and the state directories are removed")
}
