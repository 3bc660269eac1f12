package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"gateway/sixto4"
)

// relay6to4Cmd runs a 6to4 relay (sixto4.ServeRelay) until SIGTERM or
// SIGINT: for a host with a public IPv4 address and native IPv6 that
// offers 6to4 sites a way to native IPv6.
func relay6to4Cmd(args []string) error {
	fs := flag.NewFlagSet("relay6to4", flag.ContinueOnError)
	addr := fs.String("addr", "", "our public IPv4 address (on an interface of this host)")
	name := fs.String("name", "6to4", "TUN device name")
	allowDoc := fs.Bool("allow-documentation", false, "accept the documentation ranges 192.0.2/24, 198.51.100/24, 203.0.113/24 as public (labs)")
	debug := fs.Bool("debug", false, "log at debug level (rate-limited drops)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	local, err := netip.ParseAddr(*addr)
	if err != nil || fs.NArg() > 0 {
		return fmt.Errorf("gateway: relay6to4: want -addr IPV4 [-name NAME], got -addr %q %q", *addr, fs.Args())
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return sixto4.ServeRelay(ctx, sixto4.Config{Name: *name, Local: local, AllowDocumentation: *allowDoc, Logger: log})
}
