package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"gateway/dhcp"
)

// serve runs the server until SIGINT or SIGTERM, then reports its counters.
func serve(o options) error {
	srv, err := dhcp.New(dhcp.Config{
		CoreConfig: dhcp.CoreConfig{
			ServerAddr:    o.addr,
			PoolStart:     o.poolStart,
			PoolEnd:       o.poolEnd,
			LeaseTime:     o.lease,
			Authoritative: true,
		},
		Interface:           o.iface,
		StateDir:            o.state,
		NoConflictDetection: !o.probe,
		Logger:              slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runErr := srv.Run(ctx)
	st := srv.Stats()
	b, err := json.Marshal(struct {
		Counters map[string]uint64 `json:"counters"`
		Offers   uint64            `json:"offers"`
		Acks     uint64            `json:"acks"`
		Naks     uint64            `json:"naks"`
		Probes   uint64            `json:"probes"`
		Bound    int               `json:"bound"`
	}{srv.Counters(), st.Offers, st.Acks, st.Naks, st.Probes, st.Bound})
	if err == nil {
		fmt.Fprintf(os.Stderr, "stats %s\n", b)
	}
	return runErr
}
