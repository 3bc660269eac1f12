package sixto4

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// ServeRelay runs a 6to4 relay router (RFC 3056 section 5.2) on the
// public IPv4 address cfg.Local until ctx is done: it turns on IPv6
// forwarding in the namespace, so that the kernel forwards between the
// tunnel and the native interface, and runs a Relay-mode Tunnel. The
// native side must route 2002::/16 to this host. It is what
// `gateway relay6to4` runs.
func ServeRelay(ctx context.Context, cfg Config) error {
	cfg.Mode = Relay
	if err := cfg.Validate(); err != nil {
		return err // before touching the host
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0); err != nil {
		return fmt.Errorf("sixto4: turn on IPv6 forwarding: %w", err)
	}
	t, err := New(cfg)
	if err != nil {
		return err
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("6to4 relay up", "local", cfg.Local, "prefix", t.Prefix(), "device", cfg.Name)
	}
	err = t.Run(ctx)
	if cfg.Logger != nil {
		s := t.Stats()
		cfg.Logger.Info("6to4 relay down", "out_packets", s.OutPackets, "in_packets", s.InPackets, "drops", fmt.Sprint(s.Drops))
	}
	return errors.Join(err, t.Close())
}
