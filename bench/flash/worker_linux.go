package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"gateway/dhcp"
	"gateway/nat44"
	"gateway/nat44/nat44test"
)

// workerArg, as the first argument, makes the program the daemon side of
// the benchmark: our DHCP server on an interface and the mapping core, both
// keeping their state in one directory as the daemon does, with the mapping
// load (UPnP, PCP) driven from inside. The benchmark runs it under strace
// in the server's namespace and kills it with SIGKILL at the end.
const workerArg = "-worker"

// workerOpts are the worker's flags; every duration is real (already
// divided by the time scale).
type workerOpts struct {
	state, iface         string
	addr                 netip.Prefix
	poolStart, poolEnd   netip.Addr
	lease, headroom      time.Duration
	upnpEvery, upnpLife  time.Duration
	upnpMaps             int
	pcpEvery, pcpLife    time.Duration
	minLife              time.Duration
	torrentHost, console netip.Addr
}

// grant is one mapping the core granted: what a reply to the client would
// promise. The worker prints one JSON line per grant.
type grant struct {
	API      string    `json:"api"` // Map, or Add while Map is not implemented
	Owner    string    `json:"owner"`
	Proto    string    `json:"proto"`
	Port     uint16    `json:"port"`
	Internal string    `json:"internal"`
	Expires  time.Time `json:"expires"`
}

func workerMain(args []string) {
	if err := worker(args); err != nil {
		fmt.Fprintln(os.Stderr, "bench/flash worker:", err)
		os.Exit(1)
	}
}

func worker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	var o workerOpts
	var addr, start, end, torrent, console string
	fs.StringVar(&o.state, "state", "", "")
	fs.StringVar(&o.iface, "iface", "", "")
	fs.StringVar(&addr, "addr", "", "")
	fs.StringVar(&start, "pool-start", "", "")
	fs.StringVar(&end, "pool-end", "", "")
	fs.StringVar(&torrent, "torrent", "", "")
	fs.StringVar(&console, "console", "", "")
	fs.DurationVar(&o.lease, "lease", 0, "")
	fs.DurationVar(&o.headroom, "headroom", 0, "")
	fs.DurationVar(&o.upnpEvery, "upnp-every", 0, "")
	fs.DurationVar(&o.upnpLife, "upnp-lifetime", 0, "")
	fs.IntVar(&o.upnpMaps, "upnp-mappings", 4, "")
	fs.DurationVar(&o.pcpEvery, "pcp-every", 0, "")
	fs.DurationVar(&o.pcpLife, "pcp-lifetime", 0, "")
	fs.DurationVar(&o.minLife, "min-lifetime", 0, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.addr, err = netip.ParsePrefix(addr); err != nil {
		return err
	}
	if o.poolStart, err = netip.ParseAddr(start); err != nil {
		return err
	}
	if o.poolEnd, err = netip.ParseAddr(end); err != nil {
		return err
	}
	if o.torrentHost, err = netip.ParseAddr(torrent); err != nil {
		return err
	}
	if o.console, err = netip.ParseAddr(console); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	srv, err := dhcp.New(dhcp.Config{
		CoreConfig: dhcp.CoreConfig{
			ServerAddr: o.addr, PoolStart: o.poolStart, PoolEnd: o.poolEnd,
			LeaseTime: o.lease, Authoritative: true,
		},
		Interface:           o.iface,
		StateDir:            o.state,
		NoConflictDetection: true,
		Logger:              log,
	})
	if err != nil {
		return err
	}
	n, err := nat44.New(nat44.Config{
		WAN: "wan", LANs: []string{o.iface},
		StateDir: o.state,
		Headroom: o.headroom,
		Policy:   nat44.Policy{MinLifetime: o.minLife},
		Datapath: nat44test.NewFakeDatapath(), Conntrack: nat44test.NewFakeConntrack(),
		Logger: log,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() { errc <- srv.Run(ctx) })
	wg.Go(func() { errc <- n.Run(ctx) })
	select {
	case <-n.Ready():
	case err := <-errc:
		return err
	}
	if err := n.SetWAN(netip.MustParseAddr("203.0.113.2")); err != nil {
		return err
	}
	n.SetLANPrefixes([]netip.Prefix{o.addr.Masked()})
	fmt.Println("ready")

	enc := json.NewEncoder(os.Stdout)
	var mu sync.Mutex // one line at a time on stdout
	request := func(r nat44.Request) error {
		api := "Map"
		m, err := n.Map(r)
		if errors.Is(err, errors.ErrUnsupported) {
			api = "Add"
			m = nat44.Mapping{Proto: r.Proto, ExternalPort: r.ExternalPort, Internal: r.Internal,
				Owner: r.Owner, Expires: time.Now().Add(r.Lifetime), Lifetime: r.Lifetime,
				Description: r.Description, Nonce: r.Nonce}
			err = n.Add(m)
		}
		if err != nil {
			return fmt.Errorf("%s %v: %w", api, r.Internal, err)
		}
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(grant{API: api, Owner: string(m.Owner), Proto: m.Proto.String(), Port: m.ExternalPort, Internal: m.Internal.String(), Expires: m.Expires})
	}
	addTorrent := func() error {
		for i := range o.upnpMaps {
			proto := nat44.TCP
			if i%2 == 1 {
				proto = nat44.UDP
			}
			port := uint16(51413 + i/2)
			err := request(nat44.Request{Owner: nat44.OwnerUPnP, Client: o.torrentHost, Proto: proto,
				ExternalPort: port, Exact: true, Internal: netip.AddrPortFrom(o.torrentHost, port),
				Lifetime: o.upnpLife, Description: "torrent"})
			if err != nil {
				return err
			}
		}
		return nil
	}
	nonce := nat44.Nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	pcp := func() error {
		return request(nat44.Request{Owner: nat44.OwnerPCP, Client: o.console, Proto: nat44.UDP,
			ExternalPort: 3074, Internal: netip.AddrPortFrom(o.console, 3074),
			Lifetime: o.pcpLife, Description: "console", Nonce: nonce})
	}
	for _, f := range []func() error{addTorrent, pcp} {
		if err := f(); err != nil {
			return err
		}
	}
	// Until the benchmark kills the process.
	tu, tp := time.NewTicker(o.upnpEvery), time.NewTicker(o.pcpEvery)
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("a service stopped: %w", err)
		case <-tu.C:
			if err := addTorrent(); err != nil {
				return err
			}
		case <-tp.C:
			if err := pcp(); err != nil {
				return err
			}
		}
	}
}
