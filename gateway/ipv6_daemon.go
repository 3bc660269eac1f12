package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"

	"gateway/dhcp/pd"
	"gateway/internal/facts"
	"gateway/internal/netconf"
)

// runIPv6 runs the uplink manager with prefix delegation on the WAN and
// the 6to4 tunnel, and publishes the LAN's prefix for the RA service.
func (d *Daemon) runIPv6(ctx context.Context) error {
	cfg := d.config()
	v6 := cfg.IPv6
	if v6 == nil {
		return nil
	}
	if len(cfg.LANs) == 0 {
		return errNoLAN
	}
	log := d.log.With(slog.String("service", svcIPv6))
	ula := v6.ULA
	if !ula.IsValid() {
		var err error
		if ula, err = localPrefix(cfg.StateDir); err != nil {
			return err
		}
	}
	u := &uplink{cfg: v6, lan: cfg.LANs[0], ula: ula, tname: sixto4Iface,
		deps: uplinkDeps{
			startTunnel: func(local netip.Addr) (tunnel6to4, error) {
				return startSixto4(ctx, sixto4Iface, local, v6.Relay, cfg.AllowDocumentationWAN, log)
			},
			startTeredo: func(local netip.Addr, notify func()) teredoTunnel {
				return startTeredo(ctx, v6.TeredoServers, netip.AddrPortFrom(local, v6.TeredoPort), log.With(slog.String("tunnel", "teredo")), notify)
			},
			startRelay: func() (teredoRelay, error) {
				return startTeredoRelay(ctx, v6.TeredoPort, log.With(slog.String("tunnel", "teredo-relay")))
			},
			addAddr:  netconf.AddAddr,
			delAddr:  netconf.DelAddr,
			addRoute: netconf.AddRoute,
			delRoute: netconf.DelRoute,
			tunnels:  func(t facts.Tunnel) { d.facts.Tunnel.Publish(t) },
			publish:  func(f facts.IPv6) { d.facts.IPv6.Publish(f) },
			log:      log,
		}}
	d.mu.Lock()
	d.uplink = u
	d.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	// Only the newest delegation matters: a one-slot channel that the
	// client's callback overwrites.
	delegations := make(chan delegation, 1)
	if v6.PD {
		client, err := pd.New(pd.Config{
			Iface: cfg.WAN, HintLen: v6.PDHint, Address: v6.WANAddress,
			StateDir: cfg.StateDir, Logger: log,
		}, func(l pd.Lease) {
			select {
			case <-delegations:
			default:
			}
			delegations <- delegation{Prefix: l.Prefix, Valid: l.Valid, Preferred: l.Preferred}
		})
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.pd = client
		d.mu.Unlock()
		wg.Go(func() {
			if err := client.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("DHCPv6 prefix delegation stopped", slog.Any("err", err))
			}
		})
	}
	wans, stop := d.facts.WAN.Subscribe()
	defer stop()
	return runUplink(ctx, u, wans, delegations, pdGrace)
}

// ipv6Status is the IPv6 part of Status; nil when IPv6 is off.
func (d *Daemon) ipv6Status() *IPv6Status {
	d.mu.Lock()
	u, client := d.uplink, d.pd
	d.mu.Unlock()
	if u == nil {
		return nil
	}
	s := u.status()
	s.RA = d.raStats()
	if client != nil {
		if l, ok := client.Lease(); ok && l.Prefix.IsValid() {
			s.Delegated = l.Prefix
		}
		s.PDDrops = client.Drops()
	}
	return &s
}

// reloadIPv6 applies a new ipv6 section: the RA service alone restarts
// for what only the advertisements say (a restart of the uplink would
// release the delegation and renumber the LAN for nothing).
func (d *Daemon) reloadIPv6(old, cfg *Config) {
	switch {
	case old.IPv6 == nil && cfg.IPv6 != nil:
		d.sup.Add(svcIPv6, d.runIPv6)
		d.sup.Add(svcRA, d.runRA)
	case old.IPv6 != nil && cfg.IPv6 == nil:
		d.sup.Remove(svcRA)
		d.sup.Remove(svcIPv6)
		d.mu.Lock()
		d.uplink, d.pd, d.ra = nil, nil, nil
		d.mu.Unlock()
	case old.IPv6 != nil:
		a, b := *old.IPv6, *cfg.IPv6
		a.Line, b.Line = 0, 0
		raOnly := func(c IPv6Config) IPv6Config {
			c.RA, c.DNS, c.Domains, c.MTU, c.RAInterval = false, nil, nil, 0, 0
			return c
		}
		if !reflect.DeepEqual(raOnly(a), raOnly(b)) {
			d.sup.Restart(svcIPv6)
			d.sup.Restart(svcRA)
		} else if !reflect.DeepEqual(a, b) {
			d.sup.Restart(svcRA)
		}
	}
}
