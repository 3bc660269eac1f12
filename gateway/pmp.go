package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"gateway/gateway/uci"
	"gateway/internal/facts"
	"gateway/nat44"
	"gateway/upnp/pmp"
)

// svcPMP serves NAT-PMP and PCP on the LAN.
const svcPMP = "pmp"

// PMPConfig is the "pmp" section: NAT-PMP (RFC 6886) and PCP (RFC 6887)
// on UDP 5351 of the LAN addresses. Both are on unless turned off; PCP's
// THIRD_PARTY follows the nat section's secure_mode.
type PMPConfig struct {
	NATPMP bool // option natpmp, default on
	PCP    bool // option pcp, default on
}

func (p *parser) pmpSection(s *uci.Section, c *Config) {
	if c.PMP != nil {
		p.errf(s.Line, "a second 'pmp' section")
	}
	pc := PMPConfig{NATPMP: true, PCP: true}
	enabled := true
	p.options(s, map[string]func(*uci.Option, string){
		"enabled": func(o *uci.Option, v string) { enabled = p.bool(o, v) },
		"natpmp":  func(o *uci.Option, v string) { pc.NATPMP = p.bool(o, v) },
		"pcp":     func(o *uci.Option, v string) { pc.PCP = p.bool(o, v) },
	})
	if enabled && (pc.NATPMP || pc.PCP) {
		c.PMP = &pc
	}
}

// pmpState is the running NAT-PMP/PCP server, for Status.
type pmpState struct {
	mu  sync.Mutex // guards srv
	srv *pmp.Server
}

func (d *Daemon) pmpState() *pmpState { return &d.pmp }

// pmpCounters is the running server's counters, or nil.
func (d *Daemon) pmpCounters() map[string]uint64 {
	st := d.pmpState()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.srv == nil {
		return nil
	}
	return st.srv.Counters()
}

// addPMP adds the NAT-PMP/PCP service when the config has it.
func (d *Daemon) addPMP(cfg *Config) {
	if cfg.PMP != nil {
		d.sup.Add(svcPMP, d.runPMP)
	}
}

// reloadPMP starts, stops or restarts the service for a new config.
func (d *Daemon) reloadPMP(old, cfg *Config) {
	switch {
	case old.PMP == nil && cfg.PMP != nil:
		d.sup.Add(svcPMP, d.runPMP)
	case old.PMP != nil && cfg.PMP == nil:
		d.sup.Remove(svcPMP)
		st := d.pmpState()
		st.mu.Lock()
		st.srv = nil
		st.mu.Unlock()
	case cfg.PMP != nil && (*old.PMP != *cfg.PMP || old.NAT.Policy.AllowThirdParty != cfg.NAT.Policy.AllowThirdParty):
		d.sup.Restart(svcPMP)
	}
}

// runPMP serves on the LAN interfaces' addresses and starts again when
// they change.
func (d *Daemon) runPMP(ctx context.Context) error {
	cfg := d.config()
	if cfg.PMP == nil {
		return nil
	}
	hasAddr := func(l facts.LAN) bool { return len(pmpListen(cfg, l)) > 0 }
	for {
		l, err := d.facts.LAN.Wait(ctx, hasAddr)
		if err != nil {
			return nil // ctx is done
		}
		srv, err := pmp.New(pmp.Config{
			NAT:    natRef{d},
			Feed:   natRef{d},
			Listen: pmpListen(cfg, l),
			LANs:   l.Prefixes(),
			Core:   pmp.CoreConfig{NoNATPMP: !cfg.PMP.NATPMP, NoPCP: !cfg.PMP.PCP, ThirdParty: cfg.NAT.Policy.AllowThirdParty},
			Logger: d.log.With(slog.String("service", svcPMP)),
		})
		if err != nil {
			return err
		}
		moved, err := d.servePMP(ctx, srv, l)
		if !moved || ctx.Err() != nil {
			return err
		}
		d.log.Info("the LAN addresses changed; NAT-PMP and PCP restart with them")
	}
}

func (d *Daemon) servePMP(ctx context.Context, srv *pmp.Server, l facts.LAN) (moved bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if _, err := d.facts.LAN.Wait(ctx, func(n facts.LAN) bool { return !n.Equal(l) }); err == nil {
			moved = true
			cancel()
		}
	})
	st := d.pmpState()
	st.mu.Lock()
	st.srv = srv
	st.mu.Unlock()
	err = srv.Run(ctx)
	cancel()
	wg.Wait()
	return moved, err
}

// pmpListen is where the server listens: port 5351 on each LAN
// interface's IPv4 and IPv6 addresses (link-local ones with their zone).
func pmpListen(cfg *Config, l facts.LAN) []pmp.Listen {
	var out []pmp.Listen
	for _, name := range cfg.LANs {
		for _, p := range l.Addrs[name] {
			a := p.Addr()
			if a.Is6() && a.IsLinkLocalUnicast() {
				a = a.WithZone(name)
			}
			out = append(out, pmp.Listen{Addr: netip.AddrPortFrom(a, pmp.Port), Iface: name})
		}
	}
	return slices.CompactFunc(out, func(a, b pmp.Listen) bool { return a == b })
}

// natRef is the mapping service as NAT-PMP and PCP see it: whichever
// nat44.NAT runs now (the NAT service makes a new one when it restarts).
type natRef struct{ d *Daemon }

func (r natRef) Map(q nat44.Request) (nat44.Mapping, error) {
	m, err := r.d.currentNAT().Map(q)
	r.d.mapRefused(q, err)
	return m, err
}
func (r natRef) Unmap(rel nat44.Release, ks ...nat44.Key) error {
	return r.d.currentNAT().Unmap(rel, ks...)
}
func (r natRef) UnmapHost(rel nat44.Release, h netip.Addr, p nat44.Proto) ([]nat44.Mapping, error) {
	return r.d.currentNAT().UnmapHost(rel, h, p)
}
func (r natRef) HostMappings(h netip.Addr) []nat44.Mapping { return r.d.currentNAT().HostMappings(h) }
func (r natRef) OpenPinhole(q nat44.PinholeRequest) (nat44.Pinhole, error) {
	p, err := r.d.currentNAT().OpenPinhole(q)
	r.d.pinholeRefused(q, err)
	return p, err
}
func (r natRef) ClosePinhole(rel nat44.Release, k nat44.PinholeKey) error {
	return r.d.currentNAT().ClosePinhole(rel, k)
}
func (r natRef) Pinholes() []nat44.Pinhole               { return r.d.currentNAT().Pinholes() }
func (r natRef) ExternalIPv6(h netip.Addr) netip.Addr    { return r.d.currentNAT().ExternalIPv6(h) }
func (r natRef) Epoch() time.Duration                    { return r.d.currentNAT().Epoch() }
func (r natRef) WAN() netip.Addr                         { return r.d.currentNAT().WAN() }
func (r natRef) Subscribe() (<-chan nat44.Event, func()) { return r.d.currentNAT().Subscribe() }
