package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"gateway/bench/internal/benchmain"
	"gateway/gateway/lab"
)

// bench is one run: its lab, options and results.
type bench struct {
	opt   options
	lab   *lab.Lab
	res   *results
	start time.Time
	warn  *warnings // nat44's log: to standard error, warnings counted
}

// run builds a lab, measures every configuration opt.repeat times and
// returns the markdown report. The lab is removed before run returns,
// whatever happened.
func run(ctx context.Context, opt options) (report string, err error) {
	if os.Geteuid() != 0 {
		return "", errors.New("needs root: it builds network namespaces and programs nftables")
	}
	for _, p := range []string{"ip", "nft", "conntrack", "iperf3", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("needs %s: %w", p, err)
		}
	}
	b := &bench{opt: opt, start: time.Now(),
		warn: newWarnings(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	b.res = &results{
		started:   b.start,
		kernel:    kernelRelease(),
		cpus:      runtime.NumCPU(),
		mappings:  opt.mappings,
		duration:  opt.duration,
		repeat:    opt.repeat,
		conns:     opt.conns,
		loadStart: benchmain.LoadAverage(),
	}
	configs := b.configs()
	for _, c := range configs {
		b.res.configs = append(b.res.configs, c.configInfo)
	}

	name := benchmain.LabName("bn")
	b.logf("building lab %s (namespaces %s*)", name, "gwl-"+name+"-")
	l, err := lab.Up(ctx, lab.Options{Name: name})
	if err != nil {
		return "", err // Up removed what it had built
	}
	b.lab = l
	defer func() {
		b.logf("removing lab %s", name)
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		if left := leftNamespaces(l); len(left) > 0 {
			err = errors.Join(err, fmt.Errorf("namespaces left behind: %s", strings.Join(left, " ")))
		}
	}()
	// No DHCP server runs in this lab: lan1 takes its usual address.
	if err := l.SetStaticIPv4(lab.LAN1); err != nil {
		return "", err
	}
	if err := b.expectEmpty(ctx, "in the new lab"); err != nil {
		return "", err
	}

	for round := range opt.repeat {
		for i := range configs {
			c := configs[(i+round)%len(configs)]
			if err := b.runConfig(ctx, c, round); err != nil {
				return "", fmt.Errorf("round %d, %s: %w", round+1, c.name, err)
			}
		}
	}
	if opt.persist {
		if err := b.persistAdds(ctx); err != nil {
			return "", fmt.Errorf("adds with persistence: %w", err)
		}
	}
	b.res.elapsed = time.Since(b.start)
	b.res.loadEnd = benchmain.LoadAverage()
	b.res.warnings = b.warn.list()
	return b.res.markdown(refConfig, b.oursName()), nil
}

// leftNamespaces lists the namespaces of l that still exist.
func leftNamespaces(l *lab.Lab) []string {
	var left []string
	for _, h := range lab.Hosts() {
		ns := l.NS(h.Name)
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); !errors.Is(err, fs.ErrNotExist) {
			left = append(left, ns)
		}
	}
	return left
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// runConfig installs c in the gateway, takes every measurement once and
// removes c again, checking the ruleset before, during and after.
func (b *bench) runConfig(ctx context.Context, c config, round int) (err error) {
	b.logf("round %d/%d: %s", round+1, b.opt.repeat, c.name)
	if err := b.expectEmpty(ctx, "before "+c.name); err != nil {
		return err
	}
	// up returns down also when its check of the ruleset fails.
	down, err := c.up(ctx, round)
	if down != nil {
		defer func() {
			if derr := down(); derr != nil {
				err = errors.Join(err, derr)
				return
			}
			// Empty again, even when the run was interrupted.
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			err = errors.Join(err, b.expectEmpty(cctx, "after "+c.name))
		}()
	}
	if err != nil {
		return err
	}
	for m := range numMetrics {
		if c.metrics != nil && !slices.Contains(c.metrics, m) {
			continue
		}
		if err := b.flushConntrack(ctx); err != nil {
			return err
		}
		v, err := b.measure(ctx, m)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		b.res.add(c.name, m, v)
		b.logf("  %-10s %-26s %s", c.name, m, m.format(v))
	}
	if c.after != nil {
		return c.after(ctx, round)
	}
	return nil
}

// cleanupContext outlives the cancellation of ctx, for the steps that
// undo what the run set up.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// cmd runs prog inside host and returns its standard output; the error
// carries its standard error.
func (b *bench) cmd(ctx context.Context, host, stdin, prog string, args ...string) ([]byte, error) {
	c := b.lab.Command(ctx, host, prog, args...)
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	c.WaitDelay = 2 * time.Second
	out, err := c.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s in %s: %w: %s", prog, strings.Join(args, " "), host, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// flushConntrack empties the gateway's conntrack table, so that no
// measurement inherits the flows of the one before.
func (b *bench) flushConntrack(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := b.cmd(ctx, lab.Gateway, "", "conntrack", "-F")
	return err
}

// ruleset reads the gateway's whole nftables ruleset.
func (b *bench) ruleset(ctx context.Context) (shape, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := b.cmd(ctx, lab.Gateway, "", "nft", "-j", "list", "ruleset")
	if err != nil {
		return shape{}, err
	}
	return parseRuleset(out)
}

// expect checks the gateway's ruleset against want.
func (b *bench) expect(ctx context.Context, want shape, when string) error {
	got, err := b.ruleset(ctx)
	if err != nil {
		return err
	}
	if d := want.diff(got); d != "" {
		return fmt.Errorf("gateway ruleset %s: %s", when, d)
	}
	return nil
}

func (b *bench) expectEmpty(ctx context.Context, when string) error {
	return b.expect(ctx, newShape(), when)
}
