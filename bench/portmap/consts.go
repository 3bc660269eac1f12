package main

import (
	"time"

	"gateway/gateway/lab"
)

// The daemons, by name.
const (
	miniName = "miniupnpd"
	oursName = "ours"
)

// miniHTTPPort is miniupnpd's UPnP HTTP port (fixed, so a description URL
// can be given to upnpc by hand when debugging).
const miniHTTPPort = 5000

// Ports: the base load maps baseFirst+i; the measured requests use a
// range per protocol, deleted again after each measurement.
const (
	baseFirst   = 10000
	upnpFirst   = 40000
	natpmpFirst = 45000
	pcpFirst    = 50000
	iperfPort   = 5201
)

// Lifetimes asked for: long enough to outlast the run.
const (
	baseLifetime = 24 * time.Hour
	opLifetime   = time.Hour
)

var (
	gwLAN  = lab.LANAddr.Addr()
	gwWAN  = lab.WANAddr.Addr()
	lan1IP = lab.LAN1Addr.Addr()
)

// Retransmission of NAT-PMP and PCP requests: RFC 6886 §3.1 starts at
// 250 ms; a daemon that takes longer than that per request under load
// would get duplicates, so the benchmark waits longer and counts the
// retries.
const (
	udpTimeout = time.Second
	udpTries   = 3
	// installTimeout is the interval while installing the base load,
	// several requests in flight.
	installTimeout = 10 * time.Second
)

func mib(n int64) float64 { return float64(n) / (1 << 20) }
