package ra

import (
	"net/netip"
	"time"
)

// Limits on unicast answers to solicitations. A host sends at most
// MAX_RTR_SOLICITATIONS (3) RSs RTR_SOLICITATION_INTERVAL (4 s) apart
// (RFC 4861 6.3.7), so one answer per source per second loses nothing for
// an honest host; the global bucket bounds what a flood from many
// (spoofed) sources makes us send: past it, solicitations are answered by
// the one multicast RA that MIN_DELAY_BETWEEN_RAS allows.
const (
	perSourceGap  = time.Second
	unicastBurst  = 50
	unicastPerSec = 50
	maxSources    = 4 * unicastBurst // sources remembered before a sweep
)

type verdict int

const (
	answerUnicast   verdict = iota
	answerMulticast         // fold into the next multicast RA
	dropRS                  // this source was answered less than perSourceGap ago
)

// limiter decides how a solicitation is answered. It is pure: the caller
// passes the time.
type limiter struct {
	last   map[netip.Addr]time.Time // when each source was last answered by unicast
	tokens float64                  // unicast answers the global bucket allows now
	at     time.Time                // when tokens was computed
}

func newLimiter() limiter {
	return limiter{last: make(map[netip.Addr]time.Time), tokens: unicastBurst}
}

// decide answers an RS from src at now. RFC 4861 6.2.6 allows a unicast
// answer when the source is specified, and RFC 7772 recommends it (it
// spares every other host on the link a wake-up); radvd (AdvRASolicitedUnicast,
// on by default) and odhcpd do the same. A solicitation from :: can only
// be answered by multicast.
func (l *limiter) decide(src netip.Addr, now time.Time) verdict {
	if src.IsUnspecified() {
		return answerMulticast
	}
	if t, ok := l.last[src]; ok && now.Sub(t) < perSourceGap && now.Sub(t) >= 0 {
		return dropRS
	}
	if el := now.Sub(l.at); el > 0 {
		l.tokens = min(unicastBurst, l.tokens+el.Seconds()*unicastPerSec)
	}
	l.at = now
	if l.tokens < 1 {
		return answerMulticast
	}
	l.tokens--
	if len(l.last) >= maxSources {
		for a, t := range l.last {
			if now.Sub(t) >= perSourceGap || now.Before(t) {
				delete(l.last, a)
			}
		}
	}
	l.last[src] = now
	return answerUnicast
}
