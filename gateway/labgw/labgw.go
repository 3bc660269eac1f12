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
	"errors"
	"fmt"
	"gateway/gateway/client"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gateway/dhcp"
	"gateway/gateway"
	"gateway/gateway/lab"
)

// Process names in the lab (lab.Start, lab.Status).
const (
	// Daemon is the gateway daemon, whether Start or the respawner runs it.
	Daemon = "gateway"
	// Respawner runs Daemon and restarts it when it dies (Up).
	Respawner = "gateway-respawn"
)

// Socket is the control socket of a lab's daemon in the default config.
func Socket(l *lab.Lab) string { return filepath.Join(l.Dir, "gateway.sock") }

// Log is the log file of a lab's daemon (and of its respawner).
func Log(l *lab.Lab) string { return filepath.Join(l.Dir, "gateway.log") }

// ConfigPath is where `gateway lab up` writes Config.
func ConfigPath(l *lab.Lab) string { return filepath.Join(l.Dir, "gateway.conf") }

// Config is the config a lab's gateway runs with by default, with every
// service on: BaseConfig, then DHCPConfig and PMPConfig, then extra (tests add sections
// of their own).
func Config(l *lab.Lab, extra string) string {
	return BaseConfig(l, DHCPConfig+PMPConfig+extra)
}

// PMPConfig turns NAT-PMP and PCP on, as the lab's default config has them.
var PMPConfig = `
config pmp 'pmp'
`

// BaseConfig is the lab's gateway and NAT config without the DHCP server:
// the lab's interfaces, its state in the lab folder, documentation
// addresses counted as public, and one static forward (public TCP 8080 to
// lan1's port 80). extra is appended: tests that want a DHCP section of
// their own start from here.
func BaseConfig(l *lab.Lab, extra string) string {
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
	option name 'lan1 web server'
	option proto 'tcp'
	option src_dport '8080'
	option dest_ip '%s'
	option dest_port '80'
%s`, lab.GatewayWAN, lab.GatewayLAN, filepath.Join(l.Dir, "state"), Socket(l), UPnPPort, lab.LAN1Addr.Addr(), extra)
}

// UPnPPort is the UPnP HTTP port of the lab's gateway: the description
// is at http://192.168.1.1:5000/rootDesc.xml.
const UPnPPort = 5000

// DHCPConfig is the DHCP server of the lab's default config, with
// Reservations.
var DHCPConfig = `
config dhcp 'lan'
` + Reservations

// Reservations give the LAN hosts their usual addresses (lab.LAN1Addr,
// lab.LAN2Addr) by their fixed MACs.
var Reservations = fmt.Sprintf(`
config host
	option mac '%s'
	option ip '%s'
	option name '%s'

config host
	option mac '%s'
	option ip '%s'
	option name '%s'
`, lab.LAN1MAC, lab.LAN1Addr.Addr(), lab.LAN1, lab.LAN2MAC, lab.LAN2Addr.Addr(), lab.LAN2)

// Start runs the daemon binary exe in the lab's gateway host with the
// config at cfgPath, without a respawner, and waits until it has installed
// its table (Wait). Tests that kill the daemon and start it again
// themselves use it; Up runs it under a respawner.
func Start(ctx context.Context, l *lab.Lab, exe, cfgPath string) error {
	if _, err := l.Start(lab.Gateway, Daemon, []string{exe, "run", "-c", cfgPath}, Log(l)); err != nil {
		return err
	}
	return Wait(ctx, l, cfgPath)
}

// RespawnArgs is the command line of the respawner that Up starts: the
// internal `gateway lab respawn`, which runs `exe run -c cfgPath` as
// process Daemon of the gateway host and restarts it as lab.Respawn's
// defaults say.
func RespawnArgs(l *lab.Lab, exe, cfgPath string) []string {
	return []string{exe, "lab", "respawn", "--name", l.Name, "--dir", l.Dir, "--", exe, "run", "-c", cfgPath}
}

// Up makes the lab's home network run on a lab whose topology is up:
// the daemon exe with the config at cfgPath under a respawner, and a DHCP
// client in each LAN host; it waits until the daemon answers and every LAN
// host holds its lease. What already runs is kept, with its state: only
// what does not run is started. A daemon that runs without its respawner
// (Start, or one whose respawner was killed) is stopped and respawned.
func Up(ctx context.Context, l *lab.Lab, exe, cfgPath string) error {
	if p, ok := l.Process(Respawner); !ok || !p.Alive {
		if d, ok := l.Process(Daemon); ok && d.Alive {
			if err := l.Stop(Daemon, syscall.SIGTERM); err != nil {
				return err
			}
		}
		if _, err := l.Start(lab.Gateway, Respawner, RespawnArgs(l, exe, cfgPath), Log(l)); err != nil {
			return err
		}
	}
	if err := Wait(ctx, l, cfgPath); err != nil {
		return err
	}
	for _, h := range lab.LANHosts {
		if p, ok := l.Process(lab.DHCPClient(h)); ok && p.Alive {
			continue
		}
		if _, err := l.StartDHCPClient(h); err != nil {
			return err
		}
	}
	return WaitLeases(ctx, l, lab.LANHosts...)
}

// Wait waits (10 s at most) for the lab's daemon to answer with its table
// installed and, if configured, its DHCP server running.
func Wait(ctx context.Context, l *lab.Lab, cfgPath string) error {
	socket := Socket(l)
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
			log, _ := os.ReadFile(Log(l))
			return fmt.Errorf("labgw: the lab's daemon did not come up (last: %v); its log:\n%s", err, Tail(log, 20))
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
