// Package ratelimit is a token bucket for the limits the daemon keeps on
// what others make it do: answers to router solicitations, ICMPv6 errors,
// log lines, sign-in attempts.
package ratelimit

import "time"

// Bucket allows Rate events a second on average and Burst at once. The
// caller passes the time, so tests need no clock; it is not safe for
// concurrent use.
type Bucket struct {
	Rate, Burst float64
	tokens      float64
	at          time.Time // when tokens was brought up to date; zero: never (full)
}

// New returns a full bucket.
func New(rate, burst float64) Bucket { return Bucket{Rate: rate, Burst: burst} }

func (b *Bucket) refill(now time.Time) {
	switch {
	case b.at.IsZero():
		b.tokens = b.Burst
	case now.After(b.at):
		b.tokens = min(b.Burst, b.tokens+now.Sub(b.at).Seconds()*b.Rate)
	default: // the clock went back: count from the later time
		return
	}
	b.at = now
}

// Allow takes a token if there is one at now.
func (b *Bucket) Allow(now time.Time) bool {
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Available is the tokens there are at now.
func (b *Bucket) Available(now time.Time) float64 {
	b.refill(now)
	return b.tokens
}

// Full reports whether the bucket has refilled to Burst by now: it holds
// nothing worth remembering.
func (b *Bucket) Full(now time.Time) bool { return b.Available(now) >= b.Burst }

// Wait is how long after now until a token is there; 0 if one is.
func (b *Bucket) Wait(now time.Time) time.Duration {
	t := b.Available(now)
	if t >= 1 || b.Rate <= 0 {
		return 0
	}
	return time.Duration((1 - t) / b.Rate * float64(time.Second))
}
