package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that has joined the network namespace name,
// and returns its error. Sockets that fn opens stay in that namespace for
// their whole life, whichever goroutine uses them later. Goroutines that fn
// starts do not run in the namespace, and fn must not call
// runtime.UnlockOSThread. A panic in fn is raised again in the caller.
func Do(name string, fn func() error) error {
	target, err := os.Open(filepath.Join(Dir, name))
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	defer target.Close()

	type result struct {
		err      error
		panicked bool
		panicVal any
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() { done <- res }()
		// Never unlocked unless the thread is back in its own
		// namespace: a goroutine that exits locked takes its thread
		// with it.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res.err = fmt.Errorf("netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res.err = fmt.Errorf("netns: entering %s: %w", name, err)
			return
		}
		defer func() {
			if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
		}()
		defer func() {
			if p := recover(); p != nil {
				res.panicked, res.panicVal = true, p
			}
		}()
		res.err = fn()
	}()
	res := <-done
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}
