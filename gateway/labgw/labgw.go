// Package labgw runs the gateway in a lab (gateway/lab): the lab's default
// config, the daemon under a respawner as procd would run it on a router,
// the LAN hosts' DHCP clients, and what `gateway lab status` shows. It is
// what `gateway lab up`, the integration tests and the benchmarks share.
//
// It imports package gateway (for LoadConfig and Status); package gateway
// never imports it.
package labgw

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gateway/dhcp"
	"gateway/gateway"
	"gateway/gateway/client"
	"gateway/gateway/lab"
)

// Process names in the lab (lab.Start, lab.Status), for site A; Site
// holds those of each site.
const (
	// Daemon is site A's gateway daemon, whether Start or the respawner
	// runs it.
	Daemon = "gateway"
	// Respawner runs Daemon and restarts it when it dies (Up).
	Respawner = "gateway-respawn"
)

// Site is one home network of the lab: a gateway host that runs our
// daemon, and the LAN hosts that get their IPv4 addresses from it. Each
// site's daemon has its own config, state folder, control socket and log
// in the lab folder.
type Site struct {
	Name string // "a" or "b"
	Host string // the gateway's host: lab.Gateway or lab.GatewayB
	// LANHosts are the hosts on its LAN.
	LANHosts []string
	// Daemon and Respawner are the process names of its daemon and of
	// the respawner that runs it (Up).
	Daemon, Respawner string
	// Forward is the LAN host of the static forward in its config:
	// public TCP 8080 to port 80 of Forward.
	Forward string

	file   string // base name of its socket, log and config in the lab folder
	state  string // its state folder in the lab folder
	macs   map[string]string
	addrs  map[string]netip.Prefix
	addrs6 map[string]netip.Prefix // SLAAC addresses under the default config
}

var (
	// SiteA is gw with lan1 and lan2: the lab's first site, whose daemon
	// the functions of this package without a Site run.
	SiteA = &Site{Name: "a", Host: lab.Gateway, LANHosts: lab.LANHosts, Daemon: Daemon, Respawner: Respawner,
		Forward: lab.LAN1, file: "gateway", state: "state",
		macs:   map[string]string{lab.LAN1: lab.LAN1MAC, lab.LAN2: lab.LAN2MAC},
		addrs:  map[string]netip.Prefix{lab.LAN1: lab.LAN1Addr, lab.LAN2: lab.LAN2Addr},
		addrs6: map[string]netip.Prefix{lab.LAN1: lab.LAN1Addr6, lab.LAN2: lab.LAN2Addr6}}
	// SiteB is gwb with lanb: IPv4 only from the ISP.
	SiteB = &Site{Name: "b", Host: lab.GatewayB, LANHosts: lab.LANBHosts, Daemon: "gateway-b", Respawner: "gateway-b-respawn",
		Forward: lab.LANB, file: "gateway-b", state: "state-b",
		macs:   map[string]string{lab.LANB: lab.LANBMAC},
		addrs:  map[string]netip.Prefix{lab.LANB: lab.LANBAddr},
		addrs6: map[string]netip.Prefix{lab.LANB: lab.LANBAddr6}}
	// Sites are the lab's sites, in order.
	Sites = []*Site{SiteA, SiteB}
)

// Socket is the control socket of the site's daemon in its default config.
func (s *Site) Socket(l *lab.Lab) string { return filepath.Join(l.Dir, s.file+".sock") }

// Log is the log file of the site's daemon (and of its respawner).
func (s *Site) Log(l *lab.Lab) string { return filepath.Join(l.Dir, s.file+".log") }

// ConfigPath is where `gateway lab up` writes the site's Config.
func (s *Site) ConfigPath(l *lab.Lab) string { return filepath.Join(l.Dir, s.file+".conf") }

// StateDir is the state folder of the site's daemon in its default config.
func (s *Site) StateDir(l *lab.Lab) string { return filepath.Join(l.Dir, s.state) }

// MAC returns the fixed MAC address of host, one of LANHosts.
func (s *Site) MAC(host string) string { return s.macs[host] }

// Socket is the control socket of site A's daemon in the default config.
func Socket(l *lab.Lab) string { return SiteA.Socket(l) }

// Log is the log file of site A's daemon (and of its respawner).
func Log(l *lab.Lab) string { return SiteA.Log(l) }

// ConfigPath is where `gateway lab up` writes site A's Config.
func ConfigPath(l *lab.Lab) string { return SiteA.ConfigPath(l) }

// Config is the config site A's gateway runs with by default, with every
// service on: BaseConfig, then DHCPConfig and PMPConfig, then extra (tests add sections
// of their own).
func Config(l *lab.Lab, extra string) string { return SiteA.Config(l, extra) }

// Config is the config the site's gateway runs with by default, with
// every service on: BaseConfig, then a DHCP server with the site's
// Reservations and PMPConfig, then extra.
//
// The web panel runs with a password of its own for each lab
// (PanelPassword), unless extra has a web section.
func (s *Site) Config(l *lab.Lab, extra string) string {
	web := ""
	if !strings.Contains(extra, "config web") {
		web = s.WebConfig(l)
	}
	return s.BaseConfig(l, "\nconfig dhcp 'lan'\n"+s.Reservations()+PMPConfig+IPv6Config+web+extra)
}

// WebConfig is the web section of the site's default config: the panel
// on port 80 with the lab's PanelPassword as its first password.
func (s *Site) WebConfig(l *lab.Lab) string {
	return fmt.Sprintf("\nconfig web 'web'\n\toption password '%s'\n", s.PanelPassword(l))
}

// PanelPassword is the first password of the site's panel in its default
// config: made at random for each lab, kept in the lab folder.
func (s *Site) PanelPassword(l *lab.Lab) string {
	path := filepath.Join(l.Dir, s.file+"-panel-password")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 8 {
		return strings.TrimSpace(string(b))
	}
	// 12 letters and digits that do not look alike: about 68 bits.
	const alphabet = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679"
	b := make([]byte, 12)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	os.WriteFile(path, b, 0o600)
	return string(b)
}

// PanelPassword is site A's (Site.PanelPassword).
func PanelPassword(l *lab.Lab) string { return SiteA.PanelPassword(l) }

// IPv6Config is the IPv6 section of the lab's default config: the
// defaults (prefix delegation first, else 6to4, else Teredo; the Teredo
// relay beside a global prefix), a /56 asked of the ISP, the lab's relay
// for 6to4, the lab's Teredo server, and a DNS server and search domain
// for the router advertisements.
var IPv6Config = fmt.Sprintf(`
config ipv6 'ipv6'
	option pd_hint '56'
	option relay '%s'
	list teredo_server '%s'
	list dns '%s'
	list domain 'lab.example'
`, lab.RelayAddr.Addr(), lab.TeredoServerAddr.Addr(), LabDNS6)

// LabDNS6 is the DNS server the lab's router advertisements name
// (RDNSS): the public host, as an ISP's resolver would be.
var LabDNS6 = lab.PublicAddrs6[0].Addr()

// PMPConfig turns NAT-PMP and PCP on, as the lab's default config has them.
var PMPConfig = `
config pmp 'pmp'
`

// BaseConfig is site A's gateway and NAT config without the DHCP server:
// the lab's interfaces, its state in the lab folder, documentation
// addresses counted as public, and one static forward (public TCP 8080 to
// lan1's port 80). extra is appended: tests that want a DHCP section of
// their own start from here.
func BaseConfig(l *lab.Lab, extra string) string { return SiteA.BaseConfig(l, extra) }

// BaseConfig is the site's gateway and NAT config without the DHCP
// server: the site's interfaces, its state in the lab folder (StateDir,
// Socket), documentation addresses counted as public, and one static
// forward (public TCP 8080 to port 80 of Forward). extra is appended.
func (s *Site) BaseConfig(l *lab.Lab, extra string) string {
	return fmt.Sprintf(`# written by gateway lab up
config gateway 'main'
	option wan '%s'
	option lan '%s'
	option state_dir '%s'
	option control_socket '%s'
	option allow_documentation_wan '1'
	option log_level 'debug'

config nat 'nat'
	option filtering 'address-and-port-dependent'

config upnp 'upnp'
	option port '%d'

config redirect
	option name '%s web server'
	option proto 'tcp'
	option src_dport '8080'
	option dest_ip '%s'
	option dest_port '80'
%s`, lab.GatewayWAN, lab.GatewayLAN, s.StateDir(l), s.Socket(l), UPnPPort, s.Forward, s.addrs[s.Forward].Addr(), extra)
}

// UPnPPort is the UPnP HTTP port of the lab's gateways: site A's
// description is at http://192.168.1.1:5000/rootDesc.xml.
const UPnPPort = 5000

// DHCPConfig is the DHCP server of site A's default config, with
// Reservations.
var DHCPConfig = `
config dhcp 'lan'
` + Reservations

// Reservations give site A's LAN hosts their usual addresses
// (lab.LAN1Addr, lab.LAN2Addr) by their fixed MACs.
var Reservations = SiteA.Reservations()

// Reservations give the site's LAN hosts their usual addresses by their
// fixed MACs, as UCI host sections.
func (s *Site) Reservations() string {
	var b strings.Builder
	for _, h := range s.LANHosts {
		fmt.Fprintf(&b, "\nconfig host\n\toption mac '%s'\n\toption ip '%s'\n\toption name '%s'\n", s.macs[h], s.addrs[h].Addr(), h)
	}
	return b.String()
}

// Start runs the daemon binary exe in site A's gateway host with the
// config at cfgPath, without a respawner, and waits until it has installed
// its table (Wait). Tests that kill the daemon and start it again
// themselves use it; Up runs it under a respawner.
func Start(ctx context.Context, l *lab.Lab, exe, cfgPath string) error {
	return SiteA.Start(ctx, l, exe, cfgPath)
}

// Start runs the daemon binary exe in the site's gateway host with the
// config at cfgPath as process Daemon, without a respawner, and waits
// until it has installed its table (Wait).
func (s *Site) Start(ctx context.Context, l *lab.Lab, exe, cfgPath string) error {
	if _, err := l.Start(s.Host, s.Daemon, []string{exe, "run", "-c", cfgPath}, s.Log(l)); err != nil {
		return err
	}
	return s.Wait(ctx, l, cfgPath)
}

// RespawnArgs is the command line of the respawner that Up starts for
// site A.
func RespawnArgs(l *lab.Lab, exe, cfgPath string) []string {
	return SiteA.RespawnArgs(l, exe, cfgPath)
}

// RespawnArgs is the command line of the respawner that Up starts: the
// internal `gateway lab respawn`, which runs `exe run -c cfgPath` as
// process Daemon of the site's gateway host and restarts it as
// lab.Respawn's defaults say.
func (s *Site) RespawnArgs(l *lab.Lab, exe, cfgPath string) []string {
	return respawnArgs(l, exe, s.Host, s.Daemon, []string{exe, "run", "-c", cfgPath})
}

func respawnArgs(l *lab.Lab, exe, host, name string, args []string) []string {
	return append([]string{exe, "lab", "respawn", "--name", l.Name, "--dir", l.Dir, "--host", host, "--proc", name, "--"}, args...)
}

// startRespawned starts, in host, a respawner (process respawner) that
// runs args as process name, unless that respawner runs already; a
// process name that runs without it is stopped first.
func startRespawned(l *lab.Lab, exe, host, respawner, name string, args []string, log string) error {
	if p, ok := l.Process(respawner); ok && p.Alive {
		return nil
	}
	if d, ok := l.Process(name); ok && d.Alive {
		if err := l.Stop(name, syscall.SIGTERM); err != nil {
			return err
		}
	}
	_, err := l.Start(host, respawner, respawnArgs(l, exe, host, name, args), log)
	return err
}

// Up makes site A run on a lab whose topology is up (Site.Up).
func Up(ctx context.Context, l *lab.Lab, exe, cfgPath string) error {
	return SiteA.Up(ctx, l, exe, cfgPath)
}

// Up makes the site's home network run on a lab whose topology is up:
// the daemon exe with the config at cfgPath under a respawner, and a DHCP
// client in each LAN host; it waits until the daemon answers and every LAN
// host holds its lease. What already runs is kept, with its state: only
// what does not run is started. A daemon that runs without its respawner
// (Start, or one whose respawner was killed) is stopped and respawned.
func (s *Site) Up(ctx context.Context, l *lab.Lab, exe, cfgPath string) error {
	if err := startRespawned(l, exe, s.Host, s.Respawner, s.Daemon, []string{exe, "run", "-c", cfgPath}, s.Log(l)); err != nil {
		return err
	}
	if err := s.Wait(ctx, l, cfgPath); err != nil {
		return err
	}
	for _, h := range s.LANHosts {
		if p, ok := l.Process(lab.DHCPClient(h)); ok && p.Alive {
			continue
		}
		if _, err := l.StartDHCPClient(h); err != nil {
			return err
		}
	}
	return WaitLeases(ctx, l, s.LANHosts...)
}

// Wait waits (10 s at most) for site A's daemon to answer (Site.Wait).
func Wait(ctx context.Context, l *lab.Lab, cfgPath string) error {
	return SiteA.Wait(ctx, l, cfgPath)
}

// Wait waits (10 s at most) for the site's daemon to answer with its
// table installed and, if configured, its DHCP server running.
func (s *Site) Wait(ctx context.Context, l *lab.Lab, cfgPath string) error {
	socket := s.Socket(l)
	wantDHCP := false
	if c, err := gateway.LoadConfig(cfgPath); err == nil {
		socket, wantDHCP = c.ControlSocket, c.DHCP != nil
	}
	cl := client.New(socket)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var st gateway.Status
		err := cl.Do("GET", "/api/v1/status", nil, &st)
		if err == nil && st.NAT.Installed && st.WANAddr.IsValid() && (st.DHCP != nil || !wantDHCP) {
			return nil
		}
		select {
		case <-ctx.Done():
			log, _ := os.ReadFile(s.Log(l))
			return fmt.Errorf("labgw: site %s: the lab's daemon in %s did not come up (last: %v); its log:\n%s", s.Name, s.Host, err, Tail(log, 20))
		case <-tick.C:
		}
	}
}

// WaitLeases waits (20 s at most) until each of hosts holds a lease.
func WaitLeases(ctx context.Context, l *lab.Lab, hosts ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var missing []string
		for _, h := range hosts {
			if ls, ok := l.Lease(h); !ok || !ls.Held {
				missing = append(missing, h)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var errs []error
			for _, h := range missing {
				log, _ := os.ReadFile(filepath.Join(l.Dir, "logs", lab.DHCPClient(h)+".log"))
				errs = append(errs, fmt.Errorf("labgw: %s holds no lease; its DHCP client's log:\n%s", h, Tail(log, 10)))
			}
			return errors.Join(errs...)
		case <-tick.C:
		}
	}
}

// Lease returns the daemon's lease for mac, if any.
func Lease(leases []dhcp.Lease, mac string) (dhcp.Lease, bool) {
	for _, ls := range leases {
		if strings.EqualFold(ls.MAC, mac) {
			return ls, true
		}
	}
	return dhcp.Lease{}, false
}

// Tail returns the last n lines of b.
func Tail(b []byte, n int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// HostAddrs6 returns the global IPv6 addresses on host's lab.HostIf, as
// the kernel holds them (SLAAC's included).
func HostAddrs6(l *lab.Lab, host string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := l.Do(host, func() error {
		ifi, err := net.InterfaceByName(lab.HostIf)
		if err != nil {
			return err
		}
		as, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok {
				ip, _ := netip.AddrFromSlice(n.IP)
				ones, _ := n.Mask.Size()
				if ip.Is6() && !ip.Is4In6() && !ip.IsLinkLocalUnicast() {
					out = append(out, netip.PrefixFrom(ip, ones))
				}
			}
		}
		return nil
	})
	return out, err
}

// WaitAddr6 waits (20 s at most) until host holds the IPv6 address want
// on lab.HostIf: with SLAAC, until the gateway's router advertisement has
// reached it.
func WaitAddr6(ctx context.Context, l *lab.Lab, host string, want netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		have, err := HostAddrs6(l, host)
		for _, p := range have {
			if p.Addr() == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("labgw: %s has not got %v (it has %v, %v)", host, want, have, err)
		case <-tick.C:
		}
	}
}

// WaitIPv6 waits until each of the site's LAN hosts holds the IPv6 address
// that SLAAC gives it under the site's default config (site A: in the
// ISP's delegation; site B: by 6to4).
func (s *Site) WaitIPv6(ctx context.Context, l *lab.Lab) error {
	for _, h := range s.LANHosts {
		if err := WaitAddr6(ctx, l, h, s.addrs6[h].Addr()); err != nil {
			return err
		}
	}
	return nil
}
