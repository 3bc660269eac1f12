package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gateway/gateway/uci"
	"gateway/internal/facts"
	"gateway/nat44"
	"gateway/upnp"
)

const svcUPnP = "upnp"

// UPnPConfig is the "upnp" section (UPnP IGD v1 and v2 on the LANs).
// Secure mode, the permission rules and the limits are the "nat"
// section's, shared with NAT-PMP and PCP.
type UPnPConfig struct {
	Port uint16 // HTTP port on the LAN addresses; default 5000
	// LeaseCap is the longest lease of an IGDv2 client and the lease of
	// its lease-0 requests; default 604800 s. nat's max_lifetime bounds
	// it too.
	LeaseCap time.Duration
	// PermanentV1 lets IGDv1 clients' lease-0 mappings last until deleted
	// (nat44.Policy.PermanentUPnP); default on.
	PermanentV1 bool
}

// upnpSection reads the "upnp" section; nil when "option enabled 0".
func (p *parser) upnpSection(s *uci.Section) *UPnPConfig {
	u := &UPnPConfig{Port: 5000, LeaseCap: upnp.DefaultLeaseCap, PermanentV1: true}
	enabled := true
	p.options(s, map[string]func(*uci.Option, string){
		"enabled":      func(o *uci.Option, v string) { enabled = p.bool(o, v) },
		"port":         func(o *uci.Option, v string) { u.Port = p.port(o, v) },
		"lease_cap":    func(o *uci.Option, v string) { u.LeaseCap = p.seconds(o, v, time.Minute) },
		"permanent_v1": func(o *uci.Option, v string) { u.PermanentV1 = p.bool(o, v) },
	})
	if !enabled {
		return nil
	}
	return u
}

// upnpNAT is the mapping service as UPnP sees it: always the NAT that
// runs now (the daemon replaces one that failed).
type upnpNAT struct{ d *Daemon }

func (a upnpNAT) Map(r nat44.Request) (nat44.Mapping, error) {
	m, err := a.d.currentNAT().Map(r)
	a.d.mapRefused(r, err)
	return m, err
}
func (a upnpNAT) Unmap(r nat44.Release, ks ...nat44.Key) error {
	return a.d.currentNAT().Unmap(r, ks...)
}
func (a upnpNAT) Get(k nat44.Key) (nat44.Mapping, bool)   { return a.d.currentNAT().Get(k) }
func (a upnpNAT) List() []nat44.Mapping                   { return a.d.currentNAT().List() }
func (a upnpNAT) WAN() netip.Addr                         { return a.d.currentNAT().WAN() }
func (a upnpNAT) Pinhole(id uint16) (nat44.Pinhole, bool) { return a.d.currentNAT().Pinhole(id) }
func (a upnpNAT) ClosePinhole(r nat44.Release, k nat44.PinholeKey) error {
	return a.d.currentNAT().ClosePinhole(r, k)
}
func (a upnpNAT) OpenPinhole(r nat44.PinholeRequest) (nat44.Pinhole, error) {
	p, err := a.d.currentNAT().OpenPinhole(r)
	a.d.pinholeRefused(r, err)
	return p, err
}
func (a upnpNAT) Subscribe() (<-chan nat44.Event, func()) { return a.d.currentNAT().Subscribe() }
func (a upnpNAT) PinholePackets(id uint16) (uint64, error) {
	return a.d.currentNAT().PinholePackets(id)
}

// runUPnP waits for the LAN addresses, then serves UPnP on them; when
// they change it starts again.
func (d *Daemon) runUPnP(ctx context.Context) error {
	cfg := d.config()
	if cfg.UPnP == nil {
		return nil
	}
	hasAddr := func(l facts.LAN) bool {
		for _, n := range cfg.LANs {
			if _, ok := l.IPv4(n); ok {
				return true
			}
		}
		return false
	}
	for {
		l, err := d.facts.LAN.Wait(ctx, hasAddr)
		if err != nil {
			return nil
		}
		var lans []upnp.LAN
		for _, n := range cfg.LANs {
			if p, ok := l.IPv4(n); ok {
				lan := upnp.LAN{Name: n, Prefix: p}
				for _, p6 := range l.Addrs[n] {
					if a := p6.Addr(); a.Is6() && a.IsGlobalUnicast() {
						lan.IPv6 = append(lan.IPv6, p6)
					}
				}
				lans = append(lans, lan)
			}
		}
		nat := upnpNAT{d}
		srv, err := upnp.New(upnp.Config{
			LANs: lans, Port: cfg.UPnP.Port, StateDir: cfg.StateDir, NAT: nat, Firewall: nat, Feed: nat.Subscribe,
			Stats: func() (upnp.LinkStats, error) { return wanStats(cfg.WAN) }, LeaseCap: cfg.UPnP.LeaseCap,
			ThirdParty: cfg.NAT.Policy.AllowThirdParty, Version: Version, Logger: d.log.With(slog.String("service", svcUPnP)),
		})
		if err != nil {
			return err
		}
		sctx, cancel := context.WithCancel(ctx)
		moved := make(chan struct{})
		go func() {
			if _, err := d.facts.LAN.Wait(sctx, func(n facts.LAN) bool { return !n.Equal(l) }); err == nil {
				close(moved)
				cancel()
			}
		}()
		d.mu.Lock()
		d.upnp = srv
		d.mu.Unlock()
		err = srv.Run(sctx)
		cancel()
		select {
		case <-moved:
			d.log.Info("the LAN addresses changed; UPnP restarts with them")
			continue
		default:
		}
		return err
	}
}

// wanStats reads the WAN interface's counters from sysfs.
func wanStats(iface string) (upnp.LinkStats, error) {
	dir := filepath.Join("/sys/class/net", iface)
	read := func(name string) uint64 {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return n
	}
	state, err := os.ReadFile(filepath.Join(dir, "operstate"))
	if err != nil {
		return upnp.LinkStats{}, err
	}
	return upnp.LinkStats{
		Up:        strings.TrimSpace(string(state)) != "down",
		BytesSent: read("statistics/tx_bytes"), BytesReceived: read("statistics/rx_bytes"),
		PacketsSent: read("statistics/tx_packets"), PacketsReceived: read("statistics/rx_packets"),
		SpeedMbps: uint32(read("speed")),
	}, nil
}

// upnpCounters are UPnP's counters for Status; nil when it does not run.
func (d *Daemon) upnpCounters() map[string]uint64 {
	d.mu.Lock()
	srv := d.upnp
	d.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Counters()
}

// reloadUPnP starts, stops or restarts UPnP for a new config.
func (d *Daemon) reloadUPnP(old, cfg *Config) {
	switch {
	case old.UPnP == nil && cfg.UPnP != nil:
		d.sup.Add(svcUPnP, d.runUPnP)
	case old.UPnP != nil && cfg.UPnP == nil:
		d.sup.Remove(svcUPnP)
		d.mu.Lock()
		d.upnp = nil
		d.mu.Unlock()
	case old.UPnP != nil && (*old.UPnP != *cfg.UPnP || old.NAT.Policy.AllowThirdParty != cfg.NAT.Policy.AllowThirdParty):
		d.sup.Restart(svcUPnP)
	}
}
