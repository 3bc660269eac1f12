// Command dhcpserve runs the gateway's DHCPv4 server (package dhcp) on one
// interface until SIGINT or SIGTERM, for the DHCP benchmark (bench/dhcp),
// which starts it as a separate process inside a network namespace:
//
//	dhcpserve -iface veth0 -addr 10.77.0.1/16 -pool-start 10.77.1.0 \
//	    -pool-end 10.77.255.254 -state DIR [-probe=false] [-lease 12h]
//
// On exit it writes the server's counters as one JSON line to standard
// error, so that the benchmark can show drops and failures.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// options are the command line.
type options struct {
	iface              string
	addr               netip.Prefix
	poolStart, poolEnd netip.Addr
	state              string // "" = leases in memory only
	probe              bool
	lease              time.Duration
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("dhcpserve", flag.ContinueOnError)
	var o options
	var addr, start, end string
	fs.StringVar(&o.iface, "iface", "", "interface to serve (required)")
	fs.StringVar(&addr, "addr", "", "server address and prefix on that interface, e.g. 10.77.0.1/16 (required)")
	fs.StringVar(&start, "pool-start", "", "first address of the pool (with -pool-end; both empty = the default pool)")
	fs.StringVar(&end, "pool-end", "", "last address of the pool")
	fs.StringVar(&o.state, "state", "", "state directory for durable leases (empty = in memory only)")
	fs.BoolVar(&o.probe, "probe", true, "ARP-probe an address before offering it (conflict detection)")
	fs.DurationVar(&o.lease, "lease", 12*time.Hour, "lease time")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.iface == "" || addr == "" {
		return o, fmt.Errorf("-iface and -addr are required")
	}
	var err error
	if o.addr, err = netip.ParsePrefix(addr); err != nil {
		return o, fmt.Errorf("-addr: %w", err)
	}
	if start != "" {
		if o.poolStart, err = netip.ParseAddr(start); err != nil {
			return o, fmt.Errorf("-pool-start: %w", err)
		}
	}
	if end != "" {
		if o.poolEnd, err = netip.ParseAddr(end); err != nil {
			return o, fmt.Errorf("-pool-end: %w", err)
		}
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "dhcpserve:", err)
		os.Exit(2)
	}
	if err := serve(o); err != nil {
		fmt.Fprintln(os.Stderr, "dhcpserve:", err)
		os.Exit(1)
	}
}
