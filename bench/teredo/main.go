// Command teredo measures our Teredo client and relay (package
// sixto4/teredo) against Miredo's in the same places, in namespaces it
// builds and removes:
//
//	go run ./bench/teredo [-quick] [-duration 3s] [-repeat 2] [-out FILE]
//
// A Teredo server (miredo-server) on an "inet" namespace; a peer site, a
// Miredo client behind a masquerade NAT; a gateway site, a LAN host with
// a ULA address behind a router that is the Teredo client and NAT66es
// the ULA to its Teredo address, the router itself behind a carrier's
// NAT; and a relay site, a native IPv6 host behind a Teredo relay. The
// router's client is ours (this binary with -child client) or Miredo's;
// the relay is ours (-child relay) or Miredo's (RelayType cone). Each
// round measures every side, in a rotated order: TCP throughput (iperf3)
// to the peer's Teredo address and back (-R), ping latency, and the CPU
// time of the Teredo process per gigabyte. Needs root, iperf3, miredo,
// miredo-server, nft.
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
	sides    string
	out      string
	prof     string       // CPU profile of our children: FILE.client, FILE.relay
	child    childOptions // -child: the child mode
}

// childOptions are the flags of the child that runs our client or relay.
type childOptions struct {
	mode   string // "client" or "relay"
	server string
	bind   string
	prof   string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("teredo", flag.ContinueOnError)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1s measurements, 1 round")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of each throughput measurement (iperf3 rounds it to whole seconds)")
	fs.IntVar(&o.repeat, "repeat", 2, "rounds; the table shows medians")
	fs.StringVar(&o.sides, "sides", "ours-client,miredo-client,ours-relay,miredo-relay", "which sides to measure")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.StringVar(&o.prof, "cpuprofile", "", "diagnostic: our children write CPU profiles to this file plus .client/.relay")
	fs.StringVar(&o.child.mode, "child", "", "internal: run our Teredo client or relay until SIGTERM (the benchmark starts these)")
	fs.StringVar(&o.child.server, "server", "", "internal, with -child client: the Teredo server")
	fs.StringVar(&o.child.bind, "bind", "", "internal, with -child relay: the relay's UDP address")
	fs.StringVar(&o.child.prof, "child-cpuprofile", "", "internal: the child's CPU profile file")
	set, err := benchmain.Parse(fs, args, "usage: go run ./bench/teredo [flags]\n\nRuns as root; builds and removes its own namespaces.")
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
	case o.duration < time.Second || o.duration > 30*time.Second:
		return o, fmt.Errorf("-duration %v: want 1s to 30s", o.duration)
	case o.repeat < 1 || o.repeat > 5:
		return o, fmt.Errorf("-repeat %d: want 1 to 5", o.repeat)
	}
	return o, nil
}

func main() {
	benchmain.Main("bench/teredo", parseFlags, func(o options) string { return o.out }, run, "the namespaces are removed")
}
