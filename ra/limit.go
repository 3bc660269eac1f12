package ra

import (
	"net/netip"
	"time"

	"gateway/internal/ratelimit"
)

// Limits on unicast answers to solicitations. A host sends at most
// MAX_RTR_SOLICITATIONS (3) RSs RTR_SOLICITATION_INTERVAL (4 s) apart
// (RFC 4861 6.3.7), and a tool such as rdisc6 may ask at the same time as
// the kernel: a bucket of 3 answers per source, refilled one per 4 s,
// loses nothing for an honest host, and an RS flood from one source gets
// one answer per 4 s. The global bucket bounds what a flood from many
// (spoofed) sources makes us send: past it, solicitations are answered by
// the one multicast RA that MIN_DELAY_BETWEEN_RAS allows.
const (
	sourceBurst   = 3
	sourceRefill  = 4 * time.Second // one answer per source per RTR_SOLICITATION_INTERVAL
	unicastBurst  = 50
	unicastPerSec = 50
	maxSources    = 1024 // sources remembered at most
)

type verdict int

const (
	answerUnicast   verdict = iota
	answerMulticast         // fold into the next multicast RA
	dropRS                  // this source used up its answers
)

// limiter decides how a solicitation is answered. It is pure: the caller
// passes the time.
type limiter struct {
	sources map[netip.Addr]*ratelimit.Bucket // sources answered by unicast lately
	global  ratelimit.Bucket
}

func newLimiter() limiter {
	return limiter{sources: make(map[netip.Addr]*ratelimit.Bucket), global: ratelimit.New(unicastPerSec, unicastBurst)}
}

// decide answers an RS from src at now. RFC 4861 6.2.6 allows a unicast
// answer when the source is specified, and RFC 7772 recommends it (it
// spares every other host on the link a wake-up); radvd
// (AdvRASolicitedUnicast, on by default) and odhcpd do the same. A
// solicitation from :: can only be answered by multicast.
func (l *limiter) decide(src netip.Addr, now time.Time) verdict {
	if src.IsUnspecified() {
		return answerMulticast
	}
	b, known := l.sources[src]
	if known && b.Available(now) < 1 {
		return dropRS
	}
	if !known && len(l.sources) >= maxSources {
		l.sweep(now)
		if len(l.sources) >= maxSources {
			return answerMulticast
		}
	}
	if !l.global.Allow(now) {
		return answerMulticast
	}
	if !known {
		nb := ratelimit.New(1/sourceRefill.Seconds(), sourceBurst)
		b = &nb
		l.sources[src] = b
	}
	b.Allow(now)
	return answerUnicast
}

// sweep forgets the sources whose bucket is full again.
func (l *limiter) sweep(now time.Time) {
	for a, b := range l.sources {
		if b.Full(now) {
			delete(l.sources, a)
		}
	}
}
