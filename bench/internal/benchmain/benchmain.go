// Package benchmain is the main of every benchmark: flags, a context that
// the first SIGINT or SIGTERM cancels (the benchmark then removes what it
// built), the report on standard output and, with -out, in a file.
package benchmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Main parses args with parse, runs run, prints its report (also the part
// measured before a failure) and exits; out is the -out file of the
// options ("" for none), and onInterrupt says what was cleaned up.
func Main[O any](name string, parse func([]string) (O, error), out func(O) string, run func(context.Context, O) (string, error), onInterrupt string) {
	o, err := parse(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := run(ctx, o)
	if report != "" {
		fmt.Print(report)
		if file := out(o); file != "" {
			if werr := os.WriteFile(file, []byte(report), 0o644); werr != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", name, werr)
				err = werr
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted (%s): %w", onInterrupt, err)
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		stop()
		os.Exit(1)
	}
}

// Parse parses args into fs, whose usage starts with head (for example
// "usage: go run ./bench/nat [flags]\n\nRuns as root; ..."), refuses
// arguments that are not flags, and returns the flags given explicitly:
// a -quick run changes only the defaults of the others.
func Parse(fs *flag.FlagSet, args []string, head string) (set map[string]bool, err error) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\n", head)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, nil
}

// LabName is a lab name unique to this run: prefix and random characters,
// 8 in all (lab names are at most 8 of [a-z0-9]).
func LabName(prefix string) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := []byte(prefix)
	for len(b) < 8 {
		b = append(b, chars[rand.IntN(len(chars))])
	}
	return string(b)
}

// LoadAverage is the 1-minute load average, for the report; "?" if it
// cannot be read.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
