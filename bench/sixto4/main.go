// Command sixto4 measures our 6to4 tunnel (package sixto4) against the
// plain IPv4 path it runs over, in namespaces it builds and removes:
//
//	go run ./bench/sixto4 [-quick] [-duration 5s] [-repeat 2] [-out FILE]
//
// Two sites A (192.0.2.2) and B (198.51.100.2) hang off a routing "inet"
// namespace; each runs a Router-mode tunnel as a child process (this
// binary with -tunnel), so that /proc gives the tunnel's own CPU time.
// Measured, in the same run: TCP throughput (iperf3) and 64-byte UDP
// packet rate A→B between the two WAN addresses over plain IPv4 and
// between the two 2002:: addresses through the tunnels, and the CPU time
// of both tunnel processes per gigabyte carried. Needs root and iperf3.
package main

import (
	"flag"
	"fmt"
	"time"

	"gateway/bench/internal/benchmain"
)

type options struct {
	quick    bool
	duration time.Duration
	repeat   int
	out      string
	wanRate  string        // tc rate of the WAN-rate bottleneck; "" for none
	tunnel   tunnelOptions // -tunnel: the child mode
}

// tunnelOptions are the flags of the child that runs one tunnel.
type tunnelOptions struct {
	on    bool
	local string
	relay string
	name  string
	prof  string // CPU profile file
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("sixto4", flag.ContinueOnError)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1s measurements, 1 round")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measurement (iperf3 rounds it to whole seconds)")
	fs.IntVar(&o.repeat, "repeat", 2, "rounds; the table shows medians")
	fs.StringVar(&o.wanRate, "wan-rate", "1gbit", "also measure TCP through a bottleneck of this rate (tc tbf), a real WAN's; \"\" for none")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.BoolVar(&o.tunnel.on, "tunnel", false, "internal: run one Router-mode tunnel until SIGTERM (the benchmark starts these)")
	fs.StringVar(&o.tunnel.local, "local", "", "internal, with -tunnel: our IPv4 address")
	fs.StringVar(&o.tunnel.relay, "relay", "", "internal, with -tunnel: the relay's IPv4 address")
	fs.StringVar(&o.tunnel.name, "name", "6to4", "internal, with -tunnel: the TUN device's name")
	fs.StringVar(&o.tunnel.prof, "tunnel-cpuprofile", "", "diagnostic: the tunnel children write a CPU profile to this file plus .a/.b")
	set, err := benchmain.Parse(fs, args, "usage: go run ./bench/sixto4 [flags]\n\nRuns as root; builds and removes its own namespaces.")
	if err != nil {
		return o, err
	}
	if o.quick {
		if !set["duration"] {
			o.duration = time.Second
		}
		if !set["repeat"] {
			o.repeat = 1
		}
	}
	switch {
	case o.duration < time.Second || o.duration > time.Minute:
		return o, fmt.Errorf("-duration %v: want 1s to 1m", o.duration)
	case o.repeat < 1 || o.repeat > 5:
		return o, fmt.Errorf("-repeat %d: want 1 to 5 (the run stays under 2 minutes at the default duration)", o.repeat)
	}
	return o, nil
}

func main() {
	benchmain.Main("bench/sixto4", parseFlags, func(o options) string { return o.out }, run, "the namespaces are removed")
}
