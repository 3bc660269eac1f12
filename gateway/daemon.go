package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"gateway/dhcp"
	"gateway/internal/netwatch"
	"gateway/nat44"
	"gateway/web"
)

// Daemon is the running gateway: the services of one config.
type Daemon struct {
	log   *slog.Logger
	level *slog.LevelVar
	nat   *nat44.NAT

	mu      sync.Mutex // guards cfg, wanAddr, wanKind, dhcp
	cfg     *Config
	dhcp    *dhcp.Server
	wanAddr netip.Addr
	wanKind nat44.AddrKind
}

// Status is what `gateway status` and the web panel show.
type Status struct {
	Version   string         `json:"version"`
	Config    string         `json:"config"`
	WAN       string         `json:"wan"`
	LANs      []string       `json:"lan"`
	WANAddr   netip.Addr     `json:"wan_addr"`
	WANKind   nat44.AddrKind `json:"wan_kind"`
	DoubleNAT bool           `json:"double_nat"`
	NAT       nat44.Status   `json:"nat"`
	DHCP      *DHCPStatus    `json:"dhcp,omitempty"`
}

// DHCPStatus is the DHCP server's part of Status.
type DHCPStatus struct {
	Stats    dhcp.Stats        `json:"stats"`
	Counters map[string]uint64 `json:"counters"`
}

// Run runs the daemon with the config at path until ctx is done. A value
// on reload re-reads the config; an invalid one is logged and the running
// config stays.
func Run(ctx context.Context, path string, reload <-chan os.Signal, log *slog.Logger, level *slog.LevelVar) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	level.Set(cfg.LogLevel)
	if err := prepareKernel(cfg, log); err != nil {
		return err
	}
	nat, err := nat44.New(nat44.Config{
		WAN:       cfg.WAN,
		LANs:      cfg.LANs,
		Filtering: cfg.NAT.Filtering,
		UDPHold:   cfg.NAT.UDPHold,
		StateDir:  cfg.StateDir,
		Logger:    log.With(slog.String("service", "nat44")),
	})
	if err != nil {
		return err
	}
	if err := nat.SetStatic(cfg.Forwards); err != nil {
		return err
	}
	d := &Daemon{log: log, level: level, nat: nat, cfg: cfg}

	ln, err := listenControl(cfg.ControlSocket)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           web.NewAPI(d, time.Now, log.With(slog.String("service", "api"))),
		ReadHeaderTimeout: 5 * time.Second,
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := netwatch.New(append([]string{cfg.WAN}, cfg.LANs...)...)
	snaps := watch.Subscribe()
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- watch.Run(ctx) })
	wg.Go(func() { errc <- nat.Run(ctx) })
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("gateway: control socket: %w", err)
		}
	})
	log.Info("gateway running", slog.String("version", Version), slog.String("config", path), slog.String("wan", cfg.WAN), slog.Any("lan", cfg.LANs))

	var runErr error
	ready := nat.Ready()
	// The DHCP server starts once the LAN interface has its address, from
	// which it takes its subnet and pool.
	dhcpPending := cfg.DHCP != nil
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			if err != nil {
				runErr = err
			}
			break loop
		case <-ready:
			conntrackTimeouts(cfg, log)
			ready = nil
		case s := <-snaps:
			d.follow(s)
			if dhcpPending {
				if lan, ok := s[cfg.DHCP.Interface].IPv4(); ok {
					dhcpPending = false
					srv, err := d.newDHCP(cfg, lan)
					if err != nil {
						runErr = err
						break loop
					}
					wg.Go(func() { errc <- srv.Run(ctx) })
				}
			}
		case <-reload:
			d.reload(path)
		}
	}
	cancel()
	shut, done := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(shut)
	done()
	wg.Wait()
	os.Remove(cfg.ControlSocket)
	log.Info("gateway stopped")
	return runErr
}

func listenControl(path string) (net.Listener, error) {
	// A socket left by a killed daemon would refuse the bind.
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("gateway: another daemon answers on %s", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("gateway: control socket: %w", err)
	}
	os.Chmod(path, 0o600)
	return ln, nil
}

// follow acts on an interface change: the WAN's IPv4 address moves the
// mappings with it.
func (d *Daemon) follow(s netwatch.Snapshot) {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	var addr netip.Addr
	if p, ok := s[cfg.WAN].IPv4(); ok {
		addr = p.Addr()
	}
	kind := nat44.ClassifyWAN(addr, cfg.AllowDocumentationWAN)
	d.mu.Lock()
	changed := addr != d.wanAddr
	d.wanAddr, d.wanKind = addr, kind
	d.mu.Unlock()
	if !changed {
		return
	}
	switch {
	case !addr.IsValid():
		d.log.Warn("WAN has no IPv4 address", slog.String("wan", cfg.WAN))
	case kind.DoubleNAT():
		d.log.Warn("WAN address is behind another NAT (double NAT): mappings made here do not reach the internet alone", slog.String("addr", addr.String()), slog.String("kind", kind.String()))
	case kind == nat44.KindBogon:
		d.log.Warn("WAN address is not routable on the internet", slog.String("addr", addr.String()))
	default:
		d.log.Info("WAN address", slog.String("addr", addr.String()), slog.String("kind", kind.String()))
	}
	if err := d.nat.SetWAN(addr); err != nil {
		d.log.Error("apply the new WAN address", slog.Any("err", err))
	}
}

// reload re-reads the config. Settings that pick devices or files need a
// restart; the rest take effect now. A bad file changes nothing.
func (d *Daemon) reload(path string) {
	cfg, err := LoadConfig(path)
	if err != nil {
		d.log.Error("reload refused; the running config stays", slog.Any("err", err))
		return
	}
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	if cfg.WAN != old.WAN || !slices.Equal(cfg.LANs, old.LANs) || cfg.StateDir != old.StateDir || cfg.ControlSocket != old.ControlSocket {
		d.log.Warn("reload: interfaces, state_dir and control_socket change only on restart")
		cfg.WAN, cfg.LANs, cfg.StateDir, cfg.ControlSocket = old.WAN, old.LANs, old.StateDir, old.ControlSocket
	}
	if err := d.nat.SetStatic(cfg.Forwards); err != nil {
		d.log.Error("reload refused; the running config stays", slog.Any("err", err))
		d.nat.SetStatic(old.Forwards)
		return
	}
	if err := d.nat.SetFiltering(cfg.NAT.Filtering); err != nil {
		d.log.Error("reload: filtering", slog.Any("err", err))
	}
	if err := prepareKernel(cfg, d.log); err != nil {
		d.log.Error("reload: kernel settings", slog.Any("err", err))
	}
	conntrackTimeouts(cfg, d.log)
	d.level.Set(cfg.LogLevel)
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.log.Info("config reloaded", slog.String("config", path), slog.Int("forwards", len(cfg.Forwards)))
}

// newDHCP makes the DHCP server for the LAN address lan.
func (d *Daemon) newDHCP(cfg *Config, lan netip.Prefix) (*dhcp.Server, error) {
	c := cfg.DHCP
	core := dhcp.CoreConfig{
		ServerAddr:    lan,
		LeaseTime:     c.LeaseTime,
		DNS:           c.DNS,
		Domain:        c.Domain,
		MTU:           c.MTU,
		Routes:        c.Routes,
		Reservations:  c.Reservations,
		Authoritative: c.Authoritative,
	}
	if c.Start > 0 || c.Limit > 0 {
		// As the core's default: from host 10 to the last host.
		start := c.Start
		if start == 0 {
			start = 10
		}
		core.PoolStart = hostInPrefix(lan, start)
		if c.Limit > 0 {
			core.PoolEnd = hostInPrefix(lan, start+c.Limit-1)
		} else {
			core.PoolEnd = hostInPrefix(lan, 1<<(32-lan.Bits())-2)
		}
		if !core.PoolStart.IsValid() || !core.PoolEnd.IsValid() {
			return nil, fmt.Errorf("gateway: %s: dhcp pool start %d limit %d does not fit in %v", cfg.File, start, c.Limit, lan.Masked())
		}
	}
	srv, err := dhcp.New(dhcp.Config{
		CoreConfig:          core,
		Interface:           c.Interface,
		StateDir:            cfg.StateDir,
		NoConflictDetection: c.NoConflictDetection,
		Logger:              d.log.With(slog.String("service", "dhcp")),
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.dhcp = srv
	d.mu.Unlock()
	return srv, nil
}

// hostInPrefix is host number n of p's subnet, or invalid if outside.
func hostInPrefix(p netip.Prefix, n int) netip.Addr {
	base := p.Masked().Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	v += uint32(n)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	if n <= 0 || !p.Masked().Contains(a) {
		return netip.Addr{}
	}
	return a
}

// DHCP implements web.Backend; nil when the server is off.
func (d *Daemon) DHCP() web.DHCP {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dhcp == nil {
		return nil
	}
	return d.dhcp
}

// Status implements web.Backend.
func (d *Daemon) Status() any {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ds *DHCPStatus
	if d.dhcp != nil {
		ds = &DHCPStatus{Stats: d.dhcp.Stats(), Counters: d.dhcp.Counters()}
	}
	return Status{
		DHCP:      ds,
		Version:   Version,
		Config:    d.cfg.File,
		WAN:       d.cfg.WAN,
		LANs:      d.cfg.LANs,
		WANAddr:   d.wanAddr,
		WANKind:   d.wanKind,
		DoubleNAT: d.wanKind.DoubleNAT(),
		NAT:       d.nat.Status(),
	}
}

// NAT implements web.Backend.
func (d *Daemon) NAT() web.NAT { return d.nat }

// Version is stamped by the build.
var Version = "dev"
