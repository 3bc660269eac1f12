// Command ra measures how fast router solicitations are answered: our
// ra.Service against radvd (Debian), on the same veth in namespaces it
// builds and removes itself, in the same run:
//
//	go run ./bench/ra [-quick] [-out FILE]
//
// It needs root, ip (iproute2) and radvd. See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"time"

	"gateway/bench/internal/benchmain"
)

// maxSources bounds -rs: each RS of a round leaves from an address of its
// own (see bench_linux.go), added to the host's interface.
const maxSources = 1000

type options struct {
	quick  bool
	rs     int           // solicitations per side per round
	gap    time.Duration // between solicitations
	wait   time.Duration // how long an answer is waited for
	rounds int           // rounds, the order of the sides alternating
	sides  string
	out    string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("ra", flag.ContinueOnError)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 50 solicitations, 1 round")
	fs.IntVar(&o.rs, "rs", 200, "solicitations per side and round, each from its own link-local address")
	fs.DurationVar(&o.gap, "gap", 25*time.Millisecond, "time between solicitations (ours answers 50/s by unicast at most)")
	fs.DurationVar(&o.wait, "wait", 500*time.Millisecond, "how long an answer is waited for")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds; the order of the sides alternates")
	fs.StringVar(&o.sides, "sides", "ours,radvd", "sides to run")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	set, err := benchmain.Parse(fs, args, "usage: go run ./bench/ra [flags]\n\nRuns as root; builds and removes its namespaces (bra-*).")
	if err != nil {
		return o, err
	}
	if o.quick {
		if !set["rs"] {
			o.rs = 50
		}
		if !set["rounds"] {
			o.rounds = 1
		}
	}
	switch {
	case o.rs < 1 || o.rs > maxSources:
		return o, fmt.Errorf("-rs %d: want 1 to %d", o.rs, maxSources)
	case o.rounds < 1 || o.rounds > 20:
		return o, fmt.Errorf("-rounds %d: want 1 to 20", o.rounds)
	case o.gap < 0 || o.wait < time.Millisecond:
		return o, fmt.Errorf("-gap %v, -wait %v", o.gap, o.wait)
	}
	return o, nil
}

func main() {
	benchmain.Main("bench/ra", parseFlags, func(o options) string { return o.out }, run, "daemons stopped, namespaces removed")
}
