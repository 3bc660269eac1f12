// Command nat measures the NAT44 datapath against the kernel's plain
// masquerade and against what miniupnpd installs, in a lab of network
// namespaces that it builds and removes itself:
//
//	go run ./bench/nat [-quick] [-duration 5s] [-mappings 10000] [-repeat 3] [-out FILE]
//
// It needs root, iperf3, nft and conntrack. See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"time"

	"gateway/bench/internal/benchmain"
)

// options are the command line.
type options struct {
	quick    bool
	duration time.Duration // per measurement
	mappings int
	repeat   int
	conns    int           // concurrent dialers of the connection test
	singles  time.Duration // time limit of the one-at-a-time adds
	out      string
	diagCT   bool // add a configuration whose nat44 hears no conntrack events
	p2p      bool // add ours with N mappings in the P2P filtering modes
	persist  bool // time one-mapping adds with a state directory on disk
	stateDir string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("nat", flag.ContinueOnError)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "short smoke run: 1s measurements, 1 round, 1000 mappings (flags given explicitly still win)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measurement (iperf3 rounds it to whole seconds)")
	fs.IntVar(&o.mappings, "mappings", 10000, "mappings in the big configurations (tested ports included)")
	fs.IntVar(&o.repeat, "repeat", 3, "rounds over all configurations; the table shows medians")
	fs.IntVar(&o.conns, "conns", 32, "concurrent dialers in the new-connection test")
	fs.DurationVar(&o.singles, "single-limit", 15*time.Second, "time limit of the one-mapping-per-Add run")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.BoolVar(&o.p2p, "p2p", true, "also measure new connections/s of ours with N mappings in the address-dependent and endpoint-independent UDP filtering modes")
	fs.BoolVar(&o.persist, "persist", true, "also time one-mapping requests with persistence on (a state directory on disk), after the rounds")
	fs.StringVar(&o.stateDir, "state-parent", "", "where the state directory of -persist is made (default: the system's temp dir; use the disk you mean to measure)")
	fs.BoolVar(&o.diagCT, "diag-ct", false, "diagnostic: add a configuration of ours with N mappings whose conntrack delivers no events")
	set, err := benchmain.Parse(fs, args, "usage: go run ./bench/nat [flags]\n\nRuns as root; builds and removes its own namespace lab.")
	if err != nil {
		return o, err
	}
	if o.quick {
		if !set["duration"] {
			o.duration = time.Second
		}
		if !set["mappings"] {
			o.mappings = 1000
		}
		if !set["repeat"] {
			o.repeat = 1
		}
		if !set["single-limit"] {
			o.singles = 2 * time.Second
		}
	}
	switch {
	case o.duration < 100*time.Millisecond || o.duration > 5*time.Minute:
		return o, fmt.Errorf("-duration %v: want 100ms to 5m", o.duration)
	case o.mappings < 2 || o.mappings > maxMappings:
		return o, fmt.Errorf("-mappings %d: want 2 to %d (the two tested ports are among them)", o.mappings, maxMappings)
	case o.repeat < 1 || o.repeat > 20:
		return o, fmt.Errorf("-repeat %d: want 1 to 20", o.repeat)
	case o.conns < 1 || o.conns > 256:
		return o, fmt.Errorf("-conns %d: want 1 to 256", o.conns)
	case o.singles < 0 || o.singles > 10*time.Minute:
		return o, fmt.Errorf("-single-limit %v: want 0 to 10m", o.singles)
	}
	return o, nil
}

func main() {
	benchmain.Main("bench/nat", parseFlags, func(o options) string { return o.out }, run, "the lab is removed")
}
