package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
)

// side is one daemon under test.
type side interface {
	name() string
	// start runs the daemon in the gateway namespace with an empty state
	// directory under dir; stop ends it and leaves the gateway's ruleset
	// empty.
	start(ctx context.Context, dir string) error
	stop() error
	pid() int
	// logTail is the end of the daemon's log, for errors ("" if none).
	logTail() string
}

// miniupnpd runs Debian's miniupnpd 2.3.1 (nftables backend).
type miniupnpd struct {
	lab *lab.Lab
	p   int
	dir string
}

func (m *miniupnpd) name() string { return miniName }
func (m *miniupnpd) pid() int     { return m.p }
func (m *miniupnpd) logTail() string {
	return "" // it logs to syslog only (no -d: debug logging slows it ~100x)
}

// miniRuleset is the base ruleset miniupnpd needs (it creates no table or
// chain itself), as its nft_init.sh means it, plus the masquerade of a
// home gateway: miniupnpd's chains are jumped to first, and its forward
// chain before the established-flow accept.
func miniRuleset() string {
	return fmt.Sprintf(`table inet filter {
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump postrouting_miniupnpd
		oifname "%[1]s" masquerade
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		jump miniupnpd
		ct state established,related accept
		iifname "%[2]s" accept
	}
}
`, lab.GatewayWAN, lab.GatewayLAN)
}

// miniConfig is miniupnpd.conf: IGD, NAT-PMP and PCP on the LAN bridge,
// secure mode, mappings allowed for the LAN's unprivileged ports, the
// external address learnt by STUN (the lab's WAN address is in a range
// miniupnpd treats as reserved), and a lease file in the state directory.
func miniConfig(dir string) string {
	return fmt.Sprintf(`ext_ifname=%s
listening_ip=%s
http_port=%d
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
system_uptime=yes
lease_file=%s
ext_perform_stun=yes
ext_stun_host=%s
ext_stun_port=3478
uuid=3ded6f7c-5e1e-4b53-9a54-4fd0e0e5a001
allow 1024-65535 %s 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, lab.GatewayWAN, lab.GatewayLAN, miniHTTPPort, filepath.Join(dir, "upnp.leases"),
		lab.PublicAddrs[0].Addr(), lab.LANAddr.Masked())
}

func (m *miniupnpd) start(ctx context.Context, dir string) error {
	m.dir = filepath.Join(dir, miniName)
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return err
	}
	if err := nft(ctx, m.lab, "flush ruleset\n"+miniRuleset()); err != nil {
		return err
	}
	conf := filepath.Join(m.dir, "miniupnpd.conf")
	if err := os.WriteFile(conf, []byte(miniConfig(m.dir)), 0o644); err != nil {
		return err
	}
	pidFile := filepath.Join(m.dir, "miniupnpd.pid")
	// Without -d it forks into the background and logs to syslog only.
	c := m.lab.Command(ctx, lab.Gateway, "miniupnpd", "-f", conf, "-P", pidFile)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("miniupnpd: %w: %s", err, bytes.TrimSpace(out))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(pidFile)
		if err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 {
				m.p = p
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("miniupnpd: no pid file after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *miniupnpd) stop() error {
	var errs []error
	if m.p > 0 {
		errs = append(errs, killWait(m.p))
		m.p = 0
	}
	errs = append(errs, nft(context.Background(), m.lab, "flush ruleset\n"))
	return errors.Join(errs...)
}

// killWait sends SIGTERM to pid, waits up to 30 s (miniupnpd deletes its
// rules one by one as it exits), then SIGKILLs it.
func killWait(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	for range 600 {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return fmt.Errorf("pid %d still ran 30 s after SIGTERM: killed", pid)
}

// nft runs script with `nft -f -` in the gateway.
func nft(ctx context.Context, l *lab.Lab, script string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := l.Command(ctx, lab.Gateway, "nft", "-f", "-")
	c.Stdin = strings.NewReader(script)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f in the gateway: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// ours runs our daemon, the binary built from ./cmd/gateway, with the
// lab's config (labgw.Config) at log level info, its state directory on
// disk, and extra appended (the upnp/natpmp/pcp sections, when the lab's
// config does not turn them on itself).
type ours struct {
	lab   *lab.Lab
	exe   string
	extra string
	p     int
	// note says what happened to extra, for the report.
	note string
}

func (o *ours) name() string { return oursName }
func (o *ours) pid() int     { return o.p }
func (o *ours) logTail() string {
	b, _ := os.ReadFile(labgw.Log(o.lab))
	return labgw.Tail(b, 15)
}

// oursConfig is the config file's text.
func oursConfig(l *lab.Lab, stateDir, extra string) string {
	text := labgw.Config(l, extra)
	text = strings.Replace(text, "option log_level 'debug'", "option log_level 'info'", 1)
	return strings.Replace(text, fmt.Sprintf("option state_dir '%s'", filepath.Join(l.Dir, "state")),
		fmt.Sprintf("option state_dir '%s'", stateDir), 1)
}

func (o *ours) start(ctx context.Context, dir string) error {
	if err := nft(ctx, o.lab, "flush ruleset\n"); err != nil {
		return err
	}
	state := filepath.Join(dir, oursName, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(dir, oursName, "gateway.conf")
	write := func(extra string) error {
		return os.WriteFile(cfg, []byte(oursConfig(o.lab, state, extra)), 0o644)
	}
	if err := write(o.extra); err != nil {
		return err
	}
	if o.extra != "" {
		// Sections the daemon does not know yet (before UPnP, NAT-PMP
		// and PCP are merged) make it refuse the whole file: fall
		// back to the lab's config, and the protocols are "not
		// available".
		// In the gateway's namespace: it checks the interfaces too.
		if out, err := o.lab.Command(ctx, lab.Gateway, o.exe, "check-config", "-c", cfg).CombinedOutput(); err != nil {
			o.note = fmt.Sprintf("the daemon refused the extra sections (%s), so it ran with the lab's config alone", strings.Join(strings.Fields(string(out)), " "))
			if err := write(""); err != nil {
				return err
			}
		} else {
			o.note = ""
		}
	}
	if err := labgw.Start(ctx, o.lab, o.exe, cfg); err != nil {
		return err
	}
	p, ok := o.lab.Process(labgw.Daemon)
	if !ok {
		return errors.New("ours: no process record")
	}
	o.p = p.PID
	return nil
}

func (o *ours) stop() error {
	var errs []error
	if o.p > 0 {
		errs = append(errs, o.lab.Stop(labgw.Daemon, syscall.SIGTERM))
		o.p = 0
	}
	errs = append(errs, nft(context.Background(), o.lab, "flush ruleset\n"))
	return errors.Join(errs...)
}

// rss is a process's resident set size in bytes, from /proc (0 if gone).
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
