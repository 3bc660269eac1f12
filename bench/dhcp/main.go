// Command dhcp measures our DHCPv4 server (package dhcp, run as its own
// process by dhcpserve) against dnsmasq 2.90, in two network namespaces
// that it builds and removes itself:
//
//	go run ./bench/dhcp [-quick] [-out FILE]
//
// It needs root, ip (iproute2) and dnsmasq. See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"time"

	"gateway/bench/internal/benchmain"
)

// maxClients keeps every run within dnsmasq's dhcp-lease-max (20,000 in the
// conf we write) and well inside the pool.
const maxClients = 19000

// options are the command line.
type options struct {
	quick      bool
	small      int           // clients of the small load run
	large      int           // clients of the large load run
	burst      int           // clients that start at once, conflict detection on
	window     int           // outstanding transactions of a load run
	limit      time.Duration // time limit of one load run
	burstLimit time.Duration // how long the burst run waits for leases
	out        string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("dhcp", flag.ContinueOnError)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "short smoke run: 200 and 1000 clients, a burst of 50 waited for 10s, 30s limit (flags given explicitly still win)")
	fs.IntVar(&o.small, "small", 1000, "clients of the small load run")
	fs.IntVar(&o.large, "large", 10000, "clients of the large load run")
	fs.IntVar(&o.burst, "burst", 200, "clients starting at once in the conflict-detection run")
	fs.IntVar(&o.window, "window", 64, "outstanding transactions in the load runs")
	fs.DurationVar(&o.limit, "limit", 150*time.Second, "time limit of one load run (the rate reached by then is reported)")
	fs.DurationVar(&o.burstLimit, "burst-limit", 60*time.Second, "how long the burst run waits for leases")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	set, err := benchmain.Parse(fs, args, "usage: go run ./bench/dhcp [flags]\n\nRuns as root; builds and removes the namespaces bdhcp-srv and bdhcp-cli.")
	if err != nil {
		return o, err
	}
	if o.quick {
		if !set["small"] {
			o.small = 200
		}
		if !set["large"] {
			o.large = 1000
		}
		if !set["burst"] {
			o.burst = 50
		}
		if !set["limit"] {
			o.limit = 30 * time.Second
		}
		if !set["burst-limit"] {
			o.burstLimit = 10 * time.Second
		}
	}
	switch {
	case o.small < 1 || o.small > maxClients:
		return o, fmt.Errorf("-small %d: want 1 to %d", o.small, maxClients)
	case o.large < 1 || o.large > maxClients:
		return o, fmt.Errorf("-large %d: want 1 to %d", o.large, maxClients)
	case o.burst < 1 || o.burst > 250:
		return o, fmt.Errorf("-burst %d: want 1 to 250 (our server queues at most 256 probe results)", o.burst)
	case o.window < 1 || o.window > 1024:
		return o, fmt.Errorf("-window %d: want 1 to 1024", o.window)
	case o.limit < time.Second || o.limit > 30*time.Minute:
		return o, fmt.Errorf("-limit %v: want 1s to 30m", o.limit)
	case o.burstLimit < time.Second || o.burstLimit > 10*time.Minute:
		return o, fmt.Errorf("-burst-limit %v: want 1s to 10m", o.burstLimit)
	}
	return o, nil
}

func main() {
	benchmain.Main("bench/dhcp", parseFlags, func(o options) string { return o.out }, run, "servers stopped, namespaces removed")
}
