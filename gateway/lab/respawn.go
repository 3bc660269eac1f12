package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"
)

// Respawn is a respawn policy, as OpenWrt's procd applies it to a service
// with `procd_set_param respawn THRESHOLD TIMEOUT RETRY` (3600 5 5 by
// default): a run shorter than Threshold is a crash and a longer one resets
// the count; after each crash the program is started again after Delay,
// and one crash more than Retry in a row ends the respawning.
type Respawn struct {
	// Delay is the wait before a restart (procd's timeout). 0 means 1 s:
	// procd waits 5 s, the lab has no flash to spare and a user waiting.
	Delay time.Duration
	// Threshold: a run shorter than this counts as a crash. 0 means 1 h.
	Threshold time.Duration
	// Retry is how many crashes in a row are restarted. 0 means 5.
	Retry int
}

func (p Respawn) withDefaults() Respawn {
	if p.Delay == 0 {
		p.Delay = time.Second
	}
	if p.Threshold == 0 {
		p.Threshold = time.Hour
	}
	if p.Retry == 0 {
		p.Retry = 5
	}
	return p
}

// Respawn runs args (program first) as a child of the calling process, in
// the calling process's namespaces, and runs it again whenever it exits,
// as p says. The respawner is meant to run inside host, started there with
// Start (`gateway lab respawn` does that). Each child is recorded as
// process name of host, as Start records its processes, so that Status
// and Stop see it; Process.Restarts counts the restarts. The child's
// output and a line for each start and exit go to out.
//
// Respawn returns nil once ctx is done, after stopping the child (SIGTERM,
// SIGKILL 5 s later) and forgetting it, and an error when it gives up; the
// dead child then stays recorded. The child gets SIGTERM if the respawner
// dies.
func (l *Lab) Respawn(ctx context.Context, host, name string, args []string, p Respawn, out *os.File) error {
	if err := validProcName(name); err != nil {
		return err
	}
	if err := checkHost(host); err != nil {
		return err
	}
	if len(args) == 0 {
		return fmt.Errorf("lab: respawn %s: no command", name)
	}
	p = p.withDefaults()
	for _, d := range []string{pidsDir, procsDir} {
		if err := os.MkdirAll(filepath.Join(l.Dir, d), 0o755); err != nil {
			return fmt.Errorf("lab: respawn %s: %w", name, err)
		}
	}
	// Pdeathsig belongs to the thread that forks: keep that thread, and
	// so the children's link to the respawner, for the whole loop.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	logf := func(format string, a ...any) {
		fmt.Fprintf(out, "%s lab: respawn %s: %s\n", time.Now().Format(time.RFC3339), name, fmt.Sprintf(format, a...))
	}
	crashes := 0
	for restarts := 0; ; restarts++ {
		c := exec.Command(args[0], args[1:]...)
		c.Stdout, c.Stderr = out, out
		c.SysProcAttr = childAttr()
		started := time.Now()
		var err error
		if err = c.Start(); err == nil {
			info := procInfo{Name: name, Host: host, PID: c.Process.Pid, Args: slices.Clone(args), Log: out.Name(), Restarts: restarts}
			info.Start, _ = startTime(info.PID)
			if werr := l.writeProc(info); werr != nil {
				logf("%v", werr)
			}
			logf("started pid %d (restarts: %d)", info.PID, restarts)
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			select {
			case err = <-done:
			case <-ctx.Done():
				c.Process.Signal(syscall.SIGTERM)
				t := time.NewTimer(stopWait)
				select {
				case err = <-done:
				case <-t.C:
					c.Process.Kill()
					err = <-done
				}
				t.Stop()
				logf("stopped pid %d: %v", info.PID, exitText(err))
				return l.removeProc(name)
			}
		}
		ran := time.Since(started)
		if ran < p.Threshold {
			crashes++
		} else {
			crashes = 0
		}
		if crashes > p.Retry {
			logf("%v after %v; %d crashes in a row, each within %v: giving up", exitText(err), ran.Round(time.Millisecond), crashes, p.Threshold)
			return fmt.Errorf("lab: respawn %s: %d crashes in a row, giving up: %s", name, crashes, exitText(err))
		}
		logf("%v after %v; restarting in %v (crash %d, at most %d in a row)", exitText(err), ran.Round(time.Millisecond), p.Delay, crashes, p.Retry)
		t := time.NewTimer(p.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return l.removeProc(name)
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
