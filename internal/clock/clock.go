// Package clock is the one place services get time from, so that tests can
// run them inside a synctest bubble or give them a clock of their own.
package clock

import "time"

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) *time.Timer
	AfterFunc(d time.Duration, f func()) *time.Timer
}

// Real is the system clock.
var Real Clock = real{}

type real struct{}

func (real) Now() time.Time                       { return time.Now() }
func (real) NewTimer(d time.Duration) *time.Timer { return time.NewTimer(d) }

func (real) AfterFunc(d time.Duration, f func()) *time.Timer { return time.AfterFunc(d, f) }

// Or returns c, or Real when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return Real
	}
	return c
}
