package lab

import "gateway/internal/netns"

// Do runs fn on an OS thread that has joined host's network namespace, and
// returns its error. Sockets that fn opens stay in that namespace for
// their whole life, whichever goroutine uses them later. Goroutines that fn
// starts do not run in the namespace, and fn must not call
// runtime.UnlockOSThread. A panic in fn is raised again in the caller.
func (l *Lab) Do(host string, fn func() error) error {
	return netns.Do(l.NS(host), fn)
}
