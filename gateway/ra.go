package gateway

import (
	"context"
	"log/slog"
	"net/netip"

	"gateway/internal/facts"
	"gateway/ra"
)

const svcRA = "ra" // router advertisements on the LAN

// localPrefix is the site's stable ULA /64 (RFC 4193), made once and kept
// in the state directory.
func localPrefix(stateDir string) (netip.Prefix, error) { return ra.ULA(stateDir) }

// advertOf is what the RA service advertises for the LAN's IPv6 fact: the
// prefix for SLAAC, and a default route only with an uplink (a ULA alone
// gets router lifetime 0: hosts must not send internet traffic to us).
func advertOf(f facts.IPv6) ra.Advert {
	a := ra.Advert{Default: f.Uplink != UplinkNone && f.Uplink != "", MTU: f.MTU}
	if f.Prefix.IsValid() {
		a.Prefixes = []ra.Prefix{{Prefix: f.Prefix, Valid: f.Valid, Preferred: f.Preferred}}
	}
	return a
}

// runRA advertises the LAN's prefix from the facts board on the first LAN
// interface until ctx ends, then sends the final RA (router lifetime 0).
func (d *Daemon) runRA(ctx context.Context) error {
	cfg := d.config()
	v6 := cfg.IPv6
	if v6 == nil || !v6.RA || len(cfg.LANs) == 0 {
		return nil
	}
	srv, err := ra.New(ra.Config{
		Iface: cfg.LANs[0], StateDir: cfg.StateDir,
		RDNSS: v6.DNS, DNSSL: v6.Domains, MTU: v6.MTU, MaxInterval: v6.RAInterval,
		Logger: d.log.With(slog.String("service", svcRA)),
	})
	if err != nil {
		return err
	}
	values, stop := d.facts.IPv6.Subscribe()
	defer stop()
	// The current prefix goes in before Run, so that the first RA has it.
	select {
	case f := <-values:
		srv.Set(advertOf(f))
	default:
	}
	d.mu.Lock()
	d.ra = srv
	d.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-values:
				srv.Set(advertOf(f))
			}
		}
	}()
	err = srv.Run(ctx)
	cancel()
	<-done
	return err
}

// raStats is the RA service's counters, or nil.
func (d *Daemon) raStats() any {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ra == nil {
		return nil
	}
	return d.ra.Stats()
}
