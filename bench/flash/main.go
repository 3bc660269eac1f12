// Command flash measures what a home load costs the router's flash: bytes
// written and fsyncs per hour to the state directory, for our daemon's
// services (DHCP and the mapping core) and for dnsmasq doing the same DHCP
// work, in one run:
//
//	go run ./bench/flash [-quick] [-hours 4] [-scale 60] [-lease 1h] [-out FILE]
//
// Time is compressed by -scale: every period and lifetime of the load and
// of the services' configs is divided by it. It needs root, ip, strace and
// dnsmasq. See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"gateway/bench/internal/benchmain"
)

// options are the command line.
type options struct {
	quick    bool
	hours    float64       // simulated hours
	scale    float64       // simulated seconds per real second
	clients  int           // DHCP clients
	lease    time.Duration // DHCP lease time (simulated)
	upnp     time.Duration // the torrent client re-adds its mappings this often (simulated)
	upnpLife time.Duration
	upnpMaps int
	pcp      time.Duration // the console renews its PCP mapping this often (simulated)
	pcpLife  time.Duration
	parent   string // where the state directories are made
	out      string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("flash", flag.ContinueOnError)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1 simulated hour at -scale 120 (30 s; flags given explicitly still win)")
	fs.Float64Var(&o.hours, "hours", 4, "simulated hours")
	fs.Float64Var(&o.scale, "scale", 60, "time compression: simulated seconds per real second (the DHCP lease/S must stay >= 10 s, dnsmasq's >= 120 s is handled)")
	fs.IntVar(&o.clients, "clients", 30, "DHCP clients renewing")
	fs.DurationVar(&o.lease, "lease", time.Hour, "DHCP lease time (clients renew at half of it; dnsmasq's default is 1h, OpenWrt's 12h)")
	fs.DurationVar(&o.upnp, "upnp-every", 10*time.Minute, "the torrent client re-adds its UPnP mappings this often")
	fs.DurationVar(&o.upnpLife, "upnp-lifetime", time.Hour, "lifetime of the UPnP mappings")
	fs.IntVar(&o.upnpMaps, "upnp-mappings", 4, "UPnP mappings of the torrent client")
	fs.DurationVar(&o.pcp, "pcp-every", 2*time.Minute, "the console renews its PCP mapping this often")
	fs.DurationVar(&o.pcpLife, "pcp-lifetime", 240*time.Second, "lifetime of the PCP mapping")
	fs.StringVar(&o.parent, "state-parent", "", "where the state directories are made (default: the system's temp dir; use the disk you mean to measure)")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	set, err := benchmain.Parse(fs, args, "usage: go run ./bench/flash [flags]\n\nRuns as root; builds and removes its own namespaces.")
	if err != nil {
		return o, err
	}
	if o.quick {
		if !set["hours"] {
			o.hours = 1
		}
		if !set["scale"] {
			o.scale = 120
		}
	}
	switch {
	case o.hours <= 0 || o.hours > 48:
		return o, fmt.Errorf("-hours %v: want (0, 48]", o.hours)
	case o.scale < 1 || o.scale > 600:
		return o, fmt.Errorf("-scale %v: want 1 to 600", o.scale)
	case o.clients < 1 || o.clients > 200:
		return o, fmt.Errorf("-clients %d: want 1 to 200", o.clients)
	case o.sim(o.lease) < 10*time.Second:
		return o, fmt.Errorf("-lease %v / -scale %v is under our DHCP server's 10 s minimum", o.lease, o.scale)
	case o.upnpMaps < 0 || o.upnpMaps > 100:
		return o, fmt.Errorf("-upnp-mappings %d: want 0 to 100", o.upnpMaps)
	case o.sim(o.pcp) < 100*time.Millisecond || o.sim(o.upnp) < 100*time.Millisecond:
		return o, fmt.Errorf("-pcp-every and -upnp-every / -scale must be at least 100 ms")
	}
	return o, nil
}

// sim is the real duration of a simulated one.
func (o options) sim(d time.Duration) time.Duration {
	return time.Duration(float64(d) / o.scale)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		workerMain(os.Args[2:])
		return
	}
	benchmain.Main("bench/flash", parseFlags, func(o options) string { return o.out }, run, "the namespaces and state directories are removed")
}
