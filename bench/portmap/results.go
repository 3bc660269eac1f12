package main

import (
	"slices"
	"time"
)

// op is one kind of timed request.
type op int

const (
	upnpAdd op = iota
	upnpDelete
	natpmpMapOp
	pcpMapOp
	numOps
)

var opNames = [numOps]string{
	upnpAdd:     "UPnP AddPortMapping",
	upnpDelete:  "UPnP DeletePortMapping",
	natpmpMapOp: "NAT-PMP map",
	pcpMapOp:    "PCP MAP",
}

func (o op) String() string { return opNames[o] }

// proto is the protocol an op goes through.
func (o op) proto() string {
	switch o {
	case upnpAdd, upnpDelete:
		return "UPnP"
	case natpmpMapOp:
		return "NAT-PMP"
	}
	return "PCP"
}

// sample is one measurement: requests made one after the other.
type sample struct {
	n        int // answered with success
	errs     int // failed (error answer or no answer)
	retries  int // retransmissions (UDP)
	elapsed  time.Duration
	lat      []time.Duration // of the successful ones
	firstErr string
}

func (s sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.n) / s.elapsed.Seconds()
}

// quantile of the latencies (nearest rank).
func (s sample) quantile(q float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	l := slices.Clone(s.lat)
	slices.Sort(l)
	i := int(q*float64(len(l)) + 0.5)
	return l[min(max(i-1, 0), len(l)-1)]
}

// sideRound is what one daemon did in one round.
type sideRound struct {
	round int
	// unavailable names the protocols that did not answer, with why.
	unavailable map[string]string
	rssStart    int64
	rss         map[int]int64         // idle, after installing each load
	install     map[int]time.Duration // installing the load from the one before
	installVia  string
	// installRetries counts the NAT-PMP retransmissions of the base load.
	installRetries int
	samples        map[int]*[numOps]sample
	iperf          float64 // bit/s; 0 if not run
	iperfErr       string
	err            string // what stopped the round early
	note           string
}

// results holds every sample of one run.
type results struct {
	opt                options
	started            time.Time
	elapsed            time.Duration
	kernel             string
	cpus               int
	loadStart, loadEnd string
	hosts              int
	rounds             map[string][]*sideRound
	stateParent        string
	miniLeaseFile      string // what miniupnpd's lease file held at the end of its last round
}

func (r *results) get(side string, f func(*sideRound) (float64, bool)) []float64 {
	var vs []float64
	for _, sr := range r.rounds[side] {
		if v, ok := f(sr); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

func median(vs []float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// opStat is the median over rounds of f applied to the sample of o at load.
func (r *results) opStat(side string, load int, o op, f func(sample) float64) (float64, bool) {
	return median(r.get(side, func(sr *sideRound) (float64, bool) {
		s, ok := sr.samples[load]
		if !ok || s[o].n == 0 {
			return 0, false
		}
		return f(s[o]), true
	}))
}

func rateOf(s sample) float64 { return s.rate() }
func p50Of(s sample) float64  { return float64(s.quantile(0.50)) }
func p99Of(s sample) float64  { return float64(s.quantile(0.99)) }
