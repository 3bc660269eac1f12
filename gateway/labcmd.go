//go:build !nolab

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"gateway/gateway/lab"
)

// Names of what the lab runs.
const (
	labDaemon    = "gateway" // the daemon's process name in the lab
	labPanelPort = 80        // where the panel will listen on the LAN
)

// LabSocket is the control socket of a lab's daemon.
func LabSocket(l *lab.Lab) string { return filepath.Join(l.Dir, "gateway.sock") }

// LabConfig is the config a lab's gateway runs with by default: the lab's
// interfaces, its state in the lab folder, documentation addresses counted
// as public, and one static forward (public TCP 8080 to lan1's port 80).
// extra is appended: tests add sections of their own.
func LabConfig(l *lab.Lab, extra string) string {
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

config redirect
	option name 'lan1 web server'
	option proto 'tcp'
	option src_dport '8080'
	option dest_ip '%s'
	option dest_port '80'
%s`, lab.GatewayWAN, lab.GatewayLAN, filepath.Join(l.Dir, "state"), LabSocket(l), lab.LAN1Addr.Addr(), extra)
}

// StartLabGateway runs the daemon binary exe in the lab's gateway host
// with the config at cfgPath and waits until it has installed its table.
func StartLabGateway(ctx context.Context, l *lab.Lab, exe, cfgPath string) error {
	if _, err := l.Start(lab.Gateway, labDaemon, []string{exe, "run", "-c", cfgPath}, filepath.Join(l.Dir, "gateway.log")); err != nil {
		return err
	}
	return WaitLabGateway(ctx, l, cfgPath)
}

// WaitLabGateway waits (10 s at most) for the lab's daemon to answer with
// its table installed and, if configured, its DHCP server running.
func WaitLabGateway(ctx context.Context, l *lab.Lab, cfgPath string) error {
	socket := LabSocket(l)
	wantDHCP := false
	if c, err := LoadConfig(cfgPath); err == nil {
		socket, wantDHCP = c.ControlSocket, c.DHCP != nil
	}
	cl := newClient(socket)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var st Status
		err := cl.do("GET", "/api/v1/status", nil, &st)
		if err == nil && st.NAT.Installed && st.WANAddr.IsValid() && (st.DHCP != nil || !wantDHCP) {
			return nil
		}
		select {
		case <-ctx.Done():
			log, _ := os.ReadFile(filepath.Join(l.Dir, "gateway.log"))
			return fmt.Errorf("gateway: the lab's daemon did not come up (last: %v); its log:\n%s", err, tail(log, 20))
		case <-tick.C:
		}
	}
}

func tail(b []byte, lines int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

func labCmd(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("gateway: lab: want up, down, status or exec\n\n%s", usage)
	}
	fs := flag.NewFlagSet("lab "+args[0], flag.ContinueOnError)
	name := fs.String("name", lab.DefaultName, "lab name")
	cfg := fs.String("config", "", "run the lab's gateway with this config instead of the default")
	asJSON := fs.Bool("json", false, "status as JSON")
	httpPort := fs.Int("http-port", 8080, "loopback port on this machine that reaches the gateway's LAN side (port 80); 0 for none")
	listen := fs.String("listen", "", "")
	target := fs.String("target", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	opt := lab.Options{Name: *name}
	ctx := context.Background()
	switch args[0] {
	case "up":
		return labUp(ctx, opt, *cfg, *httpPort)
	case "down":
		l, err := lab.Open(opt)
		if err != nil {
			return err
		}
		stopProxy(l)
		return l.Down()
	case "status":
		l, err := lab.Open(opt)
		if err != nil {
			return err
		}
		return printLabStatus(l.Status(), *asJSON)
	case "exec":
		rest := fs.Args()
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		if len(rest) < 3 || rest[1] != "--" {
			if len(rest) >= 2 && rest[1] != "--" {
				rest = append([]string{rest[0], "--"}, rest[1:]...)
			} else {
				return fmt.Errorf("gateway: lab exec HOST -- CMD [ARGS...]")
			}
		}
		l, err := lab.Open(opt)
		if err != nil {
			return err
		}
		c := l.Command(ctx, rest[0], rest[2], rest[3:]...)
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := c.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				os.Exit(ee.ExitCode())
			}
			return err
		}
		return nil
	case "proxy": // internal: the loopback port, run in the background by up
		l, err := lab.Open(opt)
		if err != nil {
			return err
		}
		ap, err := netip.ParseAddrPort(*target)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return lab.Proxy(ctx, ln, l, lab.LAN1, ap)
	}
	return fmt.Errorf("gateway: lab: unknown command %q", args[0])
}

func labUp(ctx context.Context, opt lab.Options, cfgPath string, httpPort int) error {
	l, err := lab.Up(ctx, opt)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		stopProxy(l)
		l.Down()
		return err
	}
	if cfgPath == "" {
		cfgPath = filepath.Join(l.Dir, "gateway.conf")
		if err := os.WriteFile(cfgPath, []byte(LabConfig(l, "")), 0o644); err != nil {
			return fail(err)
		}
	} else if cfgPath, err = filepath.Abs(cfgPath); err != nil {
		return fail(err)
	}
	if _, err := LoadConfig(cfgPath); err != nil {
		return fail(err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	if st := l.Status(); !daemonAlive(st) {
		if err := StartLabGateway(ctx, l, exe, cfgPath); err != nil {
			return fail(err)
		}
	}
	if httpPort != 0 {
		if err := startProxy(l, exe, httpPort); err != nil {
			return fail(err)
		}
	}
	fmt.Printf(`lab %q is up (%s)
  gateway: WAN %s %v, LAN %s %v; config %s, log %s
  try:     gateway lab exec %s -- curl -s http://%v:8080/   (after starting a server on lan1 port 80)
           gateway mappings -s %s
           gateway lab status
`, l.Name, l.Dir, lab.GatewayWAN, lab.WANAddr, lab.GatewayLAN, lab.LANAddr, cfgPath, filepath.Join(l.Dir, "gateway.log"),
		lab.Public, lab.WANAddr.Addr(), LabSocket(l))
	if httpPort != 0 {
		fmt.Printf("  panel:   http://127.0.0.1:%d/ reaches %v:%d on the LAN\n", httpPort, lab.LANAddr.Addr(), labPanelPort)
	}
	return nil
}

func daemonAlive(st lab.Status) bool {
	for _, h := range st.Hosts {
		for _, p := range h.Processes {
			if p.Name == labDaemon && p.Alive {
				return true
			}
		}
	}
	return false
}

func proxyPIDFile(l *lab.Lab) string { return filepath.Join(l.Dir, "proxy.pid") }

// startProxy runs `gateway lab proxy` in the background in this (root)
// namespace, so that a browser here reaches the LAN side.
func startProxy(l *lab.Lab, exe string, port int) error {
	if b, err := os.ReadFile(proxyPIDFile(l)); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && syscall.Kill(pid, 0) == nil {
			return nil
		}
	}
	logf, err := os.OpenFile(filepath.Join(l.Dir, "proxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	c := exec.Command(exe, "lab", "proxy", "--name", l.Name, "--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		"--target", netip.AddrPortFrom(lab.LANAddr.Addr(), labPanelPort).String())
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(proxyPIDFile(l), []byte(strconv.Itoa(c.Process.Pid)), 0o644); err != nil {
		return err
	}
	return c.Process.Release()
}

func stopProxy(l *lab.Lab) {
	b, err := os.ReadFile(proxyPIDFile(l))
	if err != nil {
		return
	}
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
		// Only our proxy: check its command line before the signal.
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(cmd), "proxy") {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	os.Remove(proxyPIDFile(l))
}

func printLabStatus(st lab.Status, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Printf("lab %s (%s): up=%v\n", st.Name, st.Dir, st.Up)
	for _, p := range st.Problems {
		fmt.Println("  problem:", p)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "HOST\tROLE\tNAMESPACE\tINTERFACES\tPROCESSES")
	for _, h := range st.Hosts {
		var ifs, procs []string
		for _, i := range h.Interfaces {
			if i.Name == "lo" {
				continue
			}
			var as []string
			for _, a := range i.Addrs {
				if a.Addr().Is4() {
					as = append(as, a.String())
				}
			}
			ifs = append(ifs, i.Name+" "+strings.Join(as, ","))
		}
		for _, p := range h.Processes {
			procs = append(procs, fmt.Sprintf("%s[%d alive=%v]", p.Name, p.PID, p.Alive))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", h.Name, h.Role, h.Namespace, strings.Join(ifs, "; "), strings.Join(procs, " "))
	}
	return w.Flush()
}
