package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"gateway/dhcp"
	"gateway/dhcp/pd"
	"gateway/internal/facts"
	"gateway/internal/httpsrv"
	"gateway/internal/netwatch"
	"gateway/internal/supervise"
	"gateway/nat44"
	"gateway/ra"
	"gateway/upnp"
	"gateway/web"
)

// The names of the supervised services.
const (
	svcNetwatch = "netwatch" // follows the interfaces over rtnetlink
	svcFacts    = "facts"    // turns interface snapshots into WAN and LAN facts
	svcNAT      = "nat44"
	svcDHCP     = "dhcp"
	svcAPI      = "api" // the JSON API on the control socket
)

// Daemon is the running gateway: the services of one config, supervised,
// sharing what they learn on a facts board.
type Daemon struct {
	log   *slog.Logger
	level *slog.LevelVar
	sup   *supervise.Supervisor
	facts *facts.Board
	watch *netwatch.Watcher
	snaps <-chan netwatch.Snapshot

	mu  sync.Mutex // guards cfg, nat, natRan, dhcp, ln, upnp
	cfg *Config
	// nat is the mapping service. A nat44.NAT runs once: after its Run
	// ended (a failure, a panic) the service starts a new one, which
	// reloads the mappings from the state directory.
	nat    *nat44.NAT
	natRan bool
	dhcp   *dhcp.Server // the running DHCP server; nil when none runs
	ln     net.Listener // the control socket for the API's first run
	upnp   *upnp.Server // the running UPnP server; nil when none runs
	pmp    pmpState     // the NAT-PMP and PCP server (pmp.go)
	uplink *uplink      // the IPv6 uplink manager; nil until it runs
	pd     *pd.Client   // the DHCPv6-PD client; nil when none runs
	ra     *ra.Service  // the router advertisements; nil when none run
	api    apiOnce      // the JSON API's handler, one for the socket and the panel (panel.go)

	panel panelData // what the API changes and shows live (paneldata.go)
}

// Status is what `gateway status` and the web panel show.
type Status struct {
	Version   string             `json:"version"`
	Started   time.Time          `json:"started"` // when the daemon started
	Config    string             `json:"config"`
	WAN       string             `json:"wan"`
	LANs      []string           `json:"lan"`
	WANAddr   netip.Addr         `json:"wan_addr"`
	WANKind   facts.AddrKind     `json:"wan_kind"`
	DoubleNAT bool               `json:"double_nat"`
	NAT       nat44.Status       `json:"nat"`
	DHCP      *DHCPStatus        `json:"dhcp,omitempty"`
	UPnP      map[string]uint64  `json:"upnp,omitempty"`
	PMP       map[string]uint64  `json:"pmp,omitempty"` // NAT-PMP and PCP counters by reason
	IPv6      *IPv6Status        `json:"ipv6,omitempty"`
	Services  []supervise.Status `json:"services"`
}

// DHCPStatus is the DHCP server's part of Status.
type DHCPStatus struct {
	Stats    dhcp.Stats        `json:"stats"`
	Counters map[string]uint64 `json:"counters"`
}

// Run runs the daemon with the config at path until ctx is done. A value
// on reload re-reads the config; an invalid one is logged and the running
// config stays. Only what makes the daemon useless ends it at start: a
// bad config file, a kernel that cannot forward, a control socket in use.
// A service that fails later (or at start, for want of its interface or
// address) is logged and restarted with backoff; the others go on.
func Run(ctx context.Context, path string, reload <-chan os.Signal, log *slog.Logger, level *slog.LevelVar) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	level.Set(cfg.LogLevel)
	if err := prepareKernel(cfg, log); err != nil {
		return err
	}
	nat, err := nat44.New(natConfig(cfg, log))
	if err != nil {
		return err
	}
	if err := nat.SetStatic(cfg.Forwards); err != nil {
		return err
	}
	ln, err := listenControl(cfg.ControlSocket)
	if err != nil {
		return err
	}
	d := &Daemon{
		log:   log,
		level: level,
		sup:   supervise.New(supervise.Config{Logger: log}),
		facts: facts.NewBoard(),
		watch: netwatch.New(append([]string{cfg.WAN}, cfg.LANs...)...),
		cfg:   cfg,
		nat:   nat,
		ln:    ln,
	}
	d.snaps = d.watch.Subscribe()
	d.addPanelData(path)
	d.sup.Add(svcNetwatch, d.watch.Run)
	d.sup.Add(svcFacts, d.runFacts)
	d.sup.Add(svcNAT, d.runNAT)
	if cfg.DHCP != nil {
		d.sup.Add(svcDHCP, d.runDHCP)
	}
	d.addPMP(cfg)
	d.sup.Add(svcAPI, d.runAPI)
	if cfg.IPv6 != nil {
		d.sup.Add(svcIPv6, d.runIPv6)
		d.sup.Add(svcRA, d.runRA)
	}
	if cfg.UPnP != nil {
		d.sup.Add(svcUPnP, d.runUPnP)
	}
	if cfg.Web != nil {
		d.sup.Add(svcWeb, d.runWeb)
	}

	supCtx, stop := context.WithCancel(context.Background())
	defer stop()
	supDone := make(chan error, 1)
	go func() { supDone <- d.sup.Run(supCtx) }()
	log.Info("gateway running", slog.String("version", Version), slog.String("config", path), slog.String("wan", cfg.WAN), slog.Any("lan", cfg.LANs))
	for {
		select {
		case <-reload:
			d.reload(path)
			continue
		case <-ctx.Done():
		}
		break
	}
	stop()
	err = <-supDone // bounded: the supervisor leaves behind what does not stop
	os.Remove(cfg.ControlSocket)
	d.log.Info("gateway stopped")
	return err
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

func (d *Daemon) config() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

func (d *Daemon) currentNAT() *nat44.NAT {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nat
}

// runFacts turns the interface snapshots into the WAN and LAN facts.
func (d *Daemon) runFacts(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-d.snaps:
			d.publish(s)
		}
	}
}

// publish derives the facts from an interface snapshot and publishes
// them; a new WAN address is logged with its kind.
func (d *Daemon) publish(s netwatch.Snapshot) {
	cfg := d.config()
	wan, lan := factsOf(cfg, s)
	d.facts.LAN.Publish(lan)
	if !d.facts.WAN.Publish(wan) {
		return
	}
	switch addr, kind := wan.Addr, wan.Kind; {
	case !addr.IsValid():
		d.log.Warn("WAN has no IPv4 address", slog.String("wan", cfg.WAN))
	case kind.DoubleNAT():
		d.log.Warn("WAN address is behind another NAT (double NAT): mappings made here do not reach the internet alone", slog.String("addr", addr.String()), slog.String("kind", kind.String()))
	case kind == facts.KindBogon:
		d.log.Warn("WAN address is not routable on the internet", slog.String("addr", addr.String()))
	default:
		d.log.Info("WAN address", slog.String("addr", addr.String()), slog.String("kind", kind.String()))
	}
}

// factsOf is what a snapshot of the interfaces says under cfg.
func factsOf(cfg *Config, s netwatch.Snapshot) (facts.WAN, facts.LAN) {
	wan := facts.WAN{Iface: cfg.WAN}
	if p, ok := s[cfg.WAN].IPv4(); ok {
		wan.Addr = p.Addr()
	}
	wan.Kind = facts.ClassifyWAN(wan.Addr, cfg.AllowDocumentationWAN)
	lan := facts.LAN{Addrs: map[string][]netip.Prefix{}}
	for _, name := range cfg.LANs {
		if i, ok := s[name]; ok {
			lan.Addrs[name] = slices.Clone(i.Addrs)
		}
	}
	return wan, lan
}

// natConfig is the NAT service's config under cfg.
func natConfig(cfg *Config, log *slog.Logger) nat44.Config {
	return nat44.Config{
		WAN:       cfg.WAN,
		LANs:      cfg.LANs,
		Filtering: cfg.NAT.Filtering,
		UDPHold:   cfg.NAT.UDPHold,
		StateDir:  cfg.StateDir,
		Policy:    cfg.NAT.Policy,
		Reserved:  cfg.NAT.Reserved,
		WANInput:  wanInput(cfg),
		Logger:    log.With(slog.String("service", svcNAT)),
	}
}

// wanInput are the router's own ports that the WAN reaches: the Teredo
// client's or relay's, where peers and relays send unsolicited.
func wanInput(cfg *Config) []nat44.Key {
	if v6 := cfg.IPv6; v6 != nil && (v6.TeredoClient() || v6.TeredoRelay) {
		return []nat44.Key{{Proto: nat44.UDP, ExternalPort: v6.TeredoPort}}
	}
	return nil
}

// runNAT runs the NAT service and feeds it the WAN address and the LAN
// prefixes from the facts board.
func (d *Daemon) runNAT(ctx context.Context) error {
	nat, err := d.natForRun()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wans, stopW := d.facts.WAN.Subscribe()
	defer stopW()
	lans, stopL := d.facts.LAN.Subscribe()
	defer stopL()
	tunnels, stopT := d.facts.Tunnel.Subscribe()
	defer stopT()
	wg.Go(func() {
		ready := nat.Ready()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ready:
				ready = nil
				conntrackTimeouts(d.config(), d.log)
			case w := <-wans:
				if err := nat.SetWAN(w.Addr); err != nil {
					d.log.Error("apply the new WAN address", slog.String("service", svcNAT), slog.Any("err", err))
				}
			case t := <-tunnels:
				var nat66 []string
				if t.Teredo != "" {
					nat66 = []string{t.Teredo}
				}
				if err := errors.Join(nat.SetOutside(t.Outside()), nat.SetSixToFour(t.SixToFour), nat.SetNAT66(nat66), nat.SetNAT66Address(t.TeredoAddr)); err != nil {
					d.log.Error("apply the IPv6 tunnel to the filter", slog.String("service", svcNAT), slog.Any("err", err))
				}
			case l := <-lans:
				if err := nat.SetLANPrefixes(l.Prefixes()); err != nil {
					d.log.Error("apply the LAN prefixes", slog.String("service", svcNAT), slog.Any("err", err))
				}
			}
		}
	})
	return nat.Run(ctx)
}

// natForRun returns the NAT to run: the one made at start, else a new one
// for the current config, since a nat44.NAT runs only once.
func (d *Daemon) natForRun() (*nat44.NAT, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.natRan {
		d.natRan = true
		return d.nat, nil
	}
	nat, err := nat44.New(natConfig(d.cfg, d.log))
	if err != nil {
		return nil, err
	}
	if err := nat.SetStatic(d.cfg.Forwards); err != nil {
		return nil, err
	}
	d.nat = nat
	return nat, nil
}

// runDHCP waits for the DHCP interface's IPv4 address, then serves with
// the pool taken from it; when the address changes it starts again with
// the new one.
func (d *Daemon) runDHCP(ctx context.Context) error {
	cfg := d.config()
	if cfg.DHCP == nil {
		return nil // turned off by a reload
	}
	iface := cfg.DHCP.Interface
	hasAddr := func(l facts.LAN) bool { _, ok := l.IPv4(iface); return ok }
	for {
		l, err := d.facts.LAN.Wait(ctx, hasAddr)
		if err != nil {
			return nil // ctx is done
		}
		lan, _ := l.IPv4(iface)
		if err := checkDHCP(cfg, lan); err != nil {
			return err
		}
		dc, _ := dhcpConfig(cfg, lan, d.log)
		srv, err := dhcp.New(dc)
		if err != nil {
			return err
		}
		moved, err := d.serveDHCP(ctx, srv, iface, lan)
		if !moved || ctx.Err() != nil {
			return err
		}
		d.log.Info("the LAN address changed; the DHCP server restarts with it", slog.String("interface", iface))
	}
}

// serveDHCP runs srv until ctx is done, it fails, or iface's address is
// no longer lan (moved).
func (d *Daemon) serveDHCP(ctx context.Context, srv *dhcp.Server, iface string, lan netip.Prefix) (moved bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		_, err := d.facts.LAN.Wait(ctx, func(l facts.LAN) bool { p, _ := l.IPv4(iface); return p != lan })
		if err == nil {
			moved = true
			cancel()
		}
	})
	d.mu.Lock()
	d.dhcp = srv
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.dhcp = nil
		d.mu.Unlock()
	}()
	err = srv.Run(ctx)
	cancel()
	wg.Wait()
	return moved, err
}

// dhcpConfig is the DHCP server's config under cfg for the LAN address
// lan.
func dhcpConfig(cfg *Config, lan netip.Prefix, log *slog.Logger) (dhcp.Config, error) {
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
			return dhcp.Config{}, fmt.Errorf("dhcp pool start %d limit %d does not fit in %v", start, c.Limit, lan.Masked())
		}
	}
	return dhcp.Config{
		CoreConfig:          core,
		Interface:           c.Interface,
		StateDir:            cfg.StateDir,
		NoConflictDetection: c.NoConflictDetection,
		Logger:              log.With(slog.String("service", svcDHCP)),
	}, nil
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

// runAPI serves the JSON API on the control socket. net/http recovers a
// panic in a handler and logs it; the service goes on.
func (d *Daemon) runAPI(ctx context.Context) error {
	d.mu.Lock()
	ln := d.ln
	d.ln = nil
	path := d.cfg.ControlSocket
	d.mu.Unlock()
	if ln == nil { // a restart: the last run closed it
		var err error
		if ln, err = listenControl(path); err != nil {
			return err
		}
	}
	log := d.log.With(slog.String("service", svcAPI))
	// The API takes batches of up to 10,000 mappings (about 1 MiB) and
	// answers slow table dumps: bigger bodies and longer writes than the
	// defaults.
	limits := httpsrv.Limits{MaxBodyBytes: 8 << 20, WriteTimeout: time.Minute}
	if err := httpsrv.Serve(ctx, ln, d.apiHandler(), limits, log); err != nil {
		return fmt.Errorf("gateway: control socket: %w", err)
	}
	return nil
}

// reload re-reads the config. Settings that pick devices or files need a
// restart; the rest take effect now. A config that the running services
// would refuse changes nothing.
func (d *Daemon) reload(path string) {
	d.panel.conf.mu.Lock() // one change at a time, the API's or this
	defer d.panel.conf.mu.Unlock()
	cfg, err := LoadConfig(path)
	if err == nil {
		err = d.applyConfig(cfg)
	}
	if err != nil {
		d.log.Error("reload refused; the running config stays", slog.Any("err", err))
		return
	}
	d.log.Info("config reloaded", slog.String("config", path), slog.Int("forwards", len(cfg.Forwards)))
}

// applyConfig makes cfg, a checked config, the running one; the caller
// holds d.panel.conf.mu. A config that the running services would refuse
// changes nothing and is returned as an error.
func (d *Daemon) applyConfig(cfg *Config) error {
	old := d.config()
	if cfg.WAN != old.WAN || !slices.Equal(cfg.LANs, old.LANs) || cfg.StateDir != old.StateDir || cfg.ControlSocket != old.ControlSocket {
		d.log.Warn("reload: interfaces, state_dir and control_socket change only on restart")
		cfg.WAN, cfg.LANs, cfg.StateDir, cfg.ControlSocket = old.WAN, old.LANs, old.StateDir, old.ControlSocket
	}
	// The DHCP section is checked against the LAN address in use before
	// anything changes.
	if cfg.DHCP != nil {
		if l, ok := d.facts.LAN.Get(); ok {
			if lan, ok := l.IPv4(cfg.DHCP.Interface); ok {
				if err := checkDHCP(cfg, lan); err != nil {
					return err
				}
			}
		}
	}
	nat := d.currentNAT()
	if err := nat.SetStatic(cfg.Forwards); err != nil {
		nat.SetStatic(old.Forwards)
		return err
	}
	if err := nat.SetFiltering(cfg.NAT.Filtering); err != nil {
		d.log.Error("reload: filtering", slog.Any("err", err))
	}
	d.setPolicy(nat, old, cfg)
	if err := prepareKernel(cfg, d.log); err != nil {
		d.log.Error("reload: kernel settings", slog.Any("err", err))
	}
	conntrackTimeouts(cfg, d.log)
	d.level.Set(cfg.LogLevel)
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	if s := d.watch.Current(); s != nil {
		d.publish(s) // allow_documentation_wan may change the WAN's kind
	}
	switch {
	case old.DHCP == nil && cfg.DHCP != nil:
		d.sup.Add(svcDHCP, d.runDHCP)
	case old.DHCP != nil && cfg.DHCP == nil:
		d.sup.Remove(svcDHCP)
	case dhcpChanged(old.DHCP, cfg.DHCP):
		// Its leases are in its journal: a new server takes them over.
		d.log.Info("reload: the DHCP server restarts with the new config")
		d.sup.Restart(svcDHCP)
	}
	d.reloadUPnP(old, cfg)
	d.reloadPMP(old, cfg)
	d.reloadWeb(old, cfg)
	d.reloadIPv6(old, cfg)
	return nil
}

func (d *Daemon) setPolicy(nat *nat44.NAT, old, cfg *Config) {
	if in := wanInput(cfg); !slices.Equal(wanInput(old), in) {
		if err := nat.SetWANInput(in); err != nil {
			d.log.Error("reload: WAN input ports", slog.Any("err", err))
		}
	}
	if reflect.DeepEqual(old.NAT.Policy, cfg.NAT.Policy) && slices.Equal(old.NAT.Reserved, cfg.NAT.Reserved) {
		return
	}
	if err := nat.SetPolicy(cfg.NAT.Policy, cfg.NAT.Reserved); err != nil {
		d.log.Error("reload: mapping policy", slog.Any("err", err))
	}
}

// dhcpChanged reports whether the DHCP server must restart to go from a
// to b.
func dhcpChanged(a, b *DHCPConfig) bool {
	if a == nil || b == nil {
		return a != b
	}
	x, y := *a, *b
	x.Line, y.Line = 0, 0
	return !reflect.DeepEqual(x, y)
}

// DHCP implements web.Backend; nil when no DHCP server runs.
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
	wan, _ := d.facts.WAN.Get()
	nat := d.currentNAT()
	d.mu.Lock()
	var ds *DHCPStatus
	if d.dhcp != nil {
		ds = &DHCPStatus{Stats: d.dhcp.Stats(), Counters: d.dhcp.Counters()}
	}
	cfg := d.cfg
	d.mu.Unlock()
	return Status{
		DHCP:      ds,
		PMP:       d.pmpCounters(),
		IPv6:      d.ipv6Status(),
		Version:   Version,
		Started:   d.panel.started,
		Config:    cfg.File,
		WAN:       cfg.WAN,
		LANs:      cfg.LANs,
		WANAddr:   wan.Addr,
		WANKind:   wan.Kind,
		DoubleNAT: wan.Kind.DoubleNAT(),
		NAT:       nat.Status(),
		UPnP:      d.upnpCounters(),
		Services:  d.sup.Status(),
	}
}

// NAT implements web.Backend.
func (d *Daemon) NAT() web.NAT { return d.currentNAT() }

// Firewall implements web.Backend.
func (d *Daemon) Firewall() web.Firewall { return d.currentNAT() }

// Version is stamped by the build.
var Version = "dev"
