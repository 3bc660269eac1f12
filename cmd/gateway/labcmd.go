//go:build !nolab

package main

// `gateway lab ...`: the command line of the lab (gateway/lab) and of its
// gateway (gateway/labgw). It lives here, not in package gateway, because
// labgw imports package gateway.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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

	"gateway/gateway"
	"gateway/gateway/lab"
	"gateway/gateway/labgw"
)

const labUsage = `usage:
  gateway lab up [--name N] [--config FILE] [--config-b FILE] [--http-port P]
  gateway lab down|status [--name N] [--json]
  gateway lab exec [--name N] HOST -- CMD [ARGS...]
  gateway lab cgnat [--name N] on|off     site B's WAN behind the ISP's CGNAT, or public`

// labPanelPort is where the panel will listen on the LAN.
const labPanelPort = 80

func labCmd(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("gateway: lab: want up, down, status or exec\n%s", labUsage)
	}
	fs := flag.NewFlagSet("lab "+args[0], flag.ContinueOnError)
	name := fs.String("name", lab.DefaultName, "lab name")
	dir := fs.String("dir", "", "") // the lab's folder if not the default; internal
	cfg := fs.String("config", "", "run site A's gateway (gw) with this config instead of the default")
	cfgB := fs.String("config-b", "", "run site B's gateway (gwb) with this config instead of the default")
	host := fs.String("host", lab.Gateway, "")  // the respawner's host; internal
	proc := fs.String("proc", labgw.Daemon, "") // the respawned process's name; internal
	asJSON := fs.Bool("json", false, "status as JSON")
	httpPort := fs.Int("http-port", 8080, "loopback port on this machine that reaches the gateway's LAN side (port 80); 0 for none")
	listen := fs.String("listen", "", "")
	target := fs.String("target", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	opt := lab.Options{Name: *name, Dir: *dir}
	ctx := context.Background()
	switch args[0] {
	case "up":
		return labUp(ctx, opt, *cfg, *cfgB, *httpPort)
	case "down":
		l, err := lab.Open(opt)
		if err != nil {
			return err
		}
		labStopProxy(l)
		return l.Down()
	case "status":
		l, err := lab.Open(opt)
		if err != nil {
			return err
		}
		return labPrintStatus(os.Stdout, labgw.Read(l), *asJSON)
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
	case "cgnat":
		rest := fs.Args()
		if len(rest) != 1 || (rest[0] != "on" && rest[0] != "off") {
			return fmt.Errorf("gateway: lab cgnat on|off\n%s", labUsage)
		}
		l, err := lab.Open(opt)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return l.SetSiteBWAN(ctx, rest[0] == "on")
	case "respawn": // internal: run by labgw in the host of what it respawns
		l, err := lab.Open(opt)
		if err != nil {
			return err
		}
		if len(fs.Args()) == 0 {
			return errors.New("gateway: lab respawn: no command")
		}
		// Started by lab.Start, standard output is the log file.
		logName, _ := os.Readlink("/proc/self/fd/1")
		out := os.NewFile(1, logName)
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return l.Respawn(ctx, *host, *proc, fs.Args(), lab.Respawn{}, out)
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
	return fmt.Errorf("gateway: lab: unknown command %q\n%s", args[0], labUsage)
}

func labUp(ctx context.Context, opt lab.Options, cfgPath, cfgPathB string, httpPort int) error {
	// A lab that is complete is reused, with its gateways and their
	// state; whatever fails on the way removes only a lab built here.
	reused := false
	if l, err := lab.Open(opt); err == nil {
		reused = l.Status().Up
	}
	l, err := lab.Up(ctx, opt)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		if reused {
			return fmt.Errorf("%w\n(the lab stays; `gateway lab status` says more, `gateway lab down` removes it)", err)
		}
		labStopProxy(l)
		l.Down()
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	sites := []*labgw.Site{labgw.SiteA, labgw.SiteB}
	paths := []string{cfgPath, cfgPathB}
	for i, site := range sites {
		if paths[i], err = labSiteConfig(l, site, paths[i]); err != nil {
			return fail(err)
		}
	}
	// The ISP's DHCPv6 server and the 6to4 relay first: the gateways
	// take their IPv6 from them.
	if err := labgw.StartInternet(l, exe); err != nil {
		return fail(err)
	}
	for i, site := range sites {
		if err := site.Up(ctx, l, exe, paths[i]); err != nil {
			return fail(err)
		}
	}
	// With the default configs, the LAN hosts have their global IPv6
	// addresses (SLAAC) before the status is shown.
	for i, site := range sites {
		if paths[i] == site.ConfigPath(l) {
			if err := site.WaitIPv6(ctx, l); err != nil {
				return fail(err)
			}
		}
	}
	if httpPort != 0 {
		if err := labStartProxy(l, exe, httpPort); err != nil {
			return fail(err)
		}
	}
	st := labgw.Read(l)
	if err := labPrintStatus(os.Stdout, st, false); err != nil {
		return err
	}
	lab1 := os.Args[0] + " lab"
	if l.Name != lab.DefaultName {
		lab1 += " --name " + l.Name
	}
	fmt.Printf(`
Two sites: gw with lan1 and lan2, gwb with lanb. The LAN hosts got their
IPv4 addresses from their gateway's DHCP server (reserved for their MACs);
their IPv6 addresses by SLAAC from their gateway's router advertisements:
site A's from the ISP's prefix delegation (2001:db8:1::/56), site B's by
6to4 (it has IPv4 only) through the relay rly. Each gateway runs under a
respawner, as procd runs it on a router: kill -9 it and it is back a
second later, with its mappings and leases.

Try:
  # a web server on lan1, reached from the internet through the static
  # forward, and from lan2 through NAT loopback
  %[1]s exec lan1 -- sh -c 'mkdir -p /run/www; hostname >/run/www/index.html; busybox httpd -p 80 -h /run/www'
  %[1]s exec pub -- curl -s http://%[2]v:8080/
  %[1]s exec lan2 -- curl -s http://%[2]v:8080/
  # site B: lanb behind gwb's NAT, and reached from site A through both
  # NATs by gwb's static forward
  %[1]s exec lanb -- sh -c 'mkdir -p /run/www; hostname >/run/www/index.html; busybox httpd -p 80 -h /run/www'
  %[1]s exec lan1 -- curl -s http://%[10]v:8080/
  # IPv6, end to end: native from site A, 6to4 from site B (through the
  # relay to native hosts, directly to site A's 6to4 peers)
  %[1]s exec lan1 -- busybox ping -6 -c1 %[3]v
  %[1]s exec pub -- busybox ping -6 -c1 %[4]v
  %[1]s exec lanb -- busybox ping -6 -c1 %[3]v
  %[1]s exec lan1 -- busybox ping -6 -c1 %[11]v
  %[1]s exec lan1 -- rdisc6 -1 eth0       # the router advertisement
  %[5]s status -s %[6]s | grep -A8 '"ipv6"'
  # the IPv6 firewall drops unsolicited inbound until the host has a pinhole
  %[1]s exec lan1 -- busybox nc -ll -p 22 -e echo hello &
  %[1]s exec pub -- busybox nc -w 2 %[9]v 22        # nothing
  %[5]s pinholes -s %[6]s add tcp [%[9]v]:22 600
  %[1]s exec pub -- busybox nc -w 2 %[9]v 22        # hello
  # the daemon: leases, a port mapping, kill -9 and back with it
  %[5]s leases -s %[6]s
  %[5]s mappings -s %[6]s add udp 3074 %[7]v:3074 3600 game
  kill -9 $(cat %[8]s); sleep 2; %[5]s mappings -s %[6]s
  %[1]s status
  %[1]s down
`, lab1, lab.WANAddr.Addr(), lab.PublicAddrs6[0].Addr(), lab.WANAddr6.Addr(), os.Args[0], st.Socket, lab.LAN2Addr.Addr(), filepath.Join(l.Dir, "pids", labgw.Daemon), lab.LAN1Addr6.Addr(), lab.SiteBWANAddr.Addr(), lab.LANBAddr6.Addr())
	labPrintTeredo(ctx, os.Stdout, l, lab1, os.Args[0])
	labPrintPanel(os.Stdout, l, httpPort, paths[0] == labgw.SiteA.ConfigPath(l))
	fmt.Printf("Site A: config %s, log %s.\n", st.Config, labgw.Log(l))
	if b := st.SiteB; b != nil {
		fmt.Printf("Site B: config %s, log %s, socket %s.\n", b.Config, labgw.SiteB.Log(l), b.Socket)
	}
	return nil
}

// labPrintTeredo describes the lab's Teredo world, with site C's Miredo
// client's Teredo address once it has qualified.
func labPrintTeredo(ctx context.Context, w io.Writer, l *lab.Lab, lab1, exe string) {
	peer := "(not qualified: see " + filepath.Join(l.Dir, "logs", lab.TeredoPeerProc+".log") + ")"
	if a, err := l.TeredoAddr(ctx, lab.TeredoPeer); err == nil {
		peer = a.String()
	}
	fmt.Fprintf(w, `
Teredo (RFC 4380): the Teredo server tsrv (miredo-server on %[2]v
and %[3]v); tpeer, a Miredo client behind site C's plain Linux NAT natc
(%[4]v), at %[5]s; and a Miredo relay, trly,
to which the ISP routes 2001::/32.
  %[1]s exec pub -- busybox ping -6 -c1 %[5]s     # native IPv6 to Teredo, through trly
  %[1]s exec lan1 -- busybox ping -6 -c1 %[5]s    # through gw's own Teredo relay
  %[1]s exec tpeer -- ip -6 addr show dev teredo
  # site B behind the ISP's carrier-grade NAT: no 6to4, so gwb qualifies as a
  # Teredo client and lanb renumbers to gwb's ULA, NAT66 to the Teredo address
  %[1]s cgnat on; sleep 5
  %[6]s status -s %[7]s | grep -A12 '"ipv6"'
  %[1]s exec lanb -- ip -6 addr show dev eth0
  %[1]s exec lanb -- busybox ping -6 -c1 %[5]s
  %[1]s exec lanb -- busybox ping -6 -c1 %[8]v    # a native host, through trly
  %[1]s cgnat off                                 # 6to4 again
`, lab1, lab.TeredoServerAddr.Addr(), lab.TeredoServerAddr2.Addr(), lab.NATCWANAddr.Addr(), peer,
		exe, labgw.SiteB.Socket(l), lab.PublicAddrs6[0].Addr())
}

// labPrintPanel says where site A's web panel is and its first password
// (the lab's own, when it runs its default config).
func labPrintPanel(w io.Writer, l *lab.Lab, httpPort int, defaultConfig bool) {
	lanURL := fmt.Sprintf("http://%v:%d/", lab.LANAddr.Addr(), labPanelPort)
	if httpPort != 0 {
		fmt.Fprintf(w, "\nThe web panel of site A: http://127.0.0.1:%d/ on this machine (%s on the LAN).\n", httpPort, lanURL)
	} else {
		fmt.Fprintf(w, "\nThe web panel of site A: %s on the LAN (`--http-port` reaches it from this machine).\n", lanURL)
	}
	if defaultConfig {
		fmt.Fprintf(w, "Its first password (made for this lab): %s\n", labgw.PanelPassword(l))
	} else {
		fmt.Fprintf(w, "Its password: as the config's web section sets it, else the first visitor sets one.\n")
	}
}

// labSiteConfig returns the absolute path of the config that site s runs
// with: path if given, else the site's default config, written to
// s.ConfigPath. Either is checked first.
func labSiteConfig(l *lab.Lab, s *labgw.Site, path string) (string, error) {
	var err error
	if path == "" {
		path = s.ConfigPath(l)
		if err := os.WriteFile(path, []byte(s.Config(l, "")), 0o644); err != nil {
			return "", err
		}
	} else if path, err = filepath.Abs(path); err != nil {
		return "", err
	}
	if _, err := gateway.LoadConfig(path); err != nil {
		return "", err
	}
	return path, nil
}

func labProxyPIDFile(l *lab.Lab) string { return filepath.Join(l.Dir, "proxy.pid") }

// labStartProxy runs `gateway lab proxy` in the background in this (root)
// namespace, so that a browser here reaches the LAN side.
func labStartProxy(l *lab.Lab, exe string, port int) error {
	if b, err := os.ReadFile(labProxyPIDFile(l)); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && syscall.Kill(pid, 0) == nil {
			return nil
		}
	}
	logf, err := os.OpenFile(filepath.Join(l.Dir, "proxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	c := exec.Command(exe, "lab", "proxy", "--name", l.Name, "--dir", l.Dir, "--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		"--target", netip.AddrPortFrom(lab.LANAddr.Addr(), labPanelPort).String())
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(labProxyPIDFile(l), []byte(strconv.Itoa(c.Process.Pid)), 0o644); err != nil {
		return err
	}
	return c.Process.Release()
}

func labStopProxy(l *lab.Lab) {
	b, err := os.ReadFile(labProxyPIDFile(l))
	if err != nil {
		return
	}
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
		// Only our proxy: check its command line before the signal.
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(cmd), "proxy") {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	os.Remove(labProxyPIDFile(l))
}

func labPrintStatus(w io.Writer, st labgw.Status, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(w, "lab %s (%s): up=%v ready=%v\n", st.Name, st.Dir, st.Up, st.Ready)
	for _, p := range st.Problems {
		fmt.Fprintln(w, "  problem:  ", p)
	}
	for _, p := range st.NotReady {
		fmt.Fprintln(w, "  not ready:", p)
	}
	for _, s := range []*labgw.SiteStatus{&st.SiteStatus, st.SiteB} {
		if s == nil {
			continue
		}
		g := s.Gateway
		if g == nil {
			fmt.Fprintf(w, "  gateway %s (site %s): not answering; socket %s\n", s.Host, s.Site, s.Socket)
			continue
		}
		leases := "DHCP off"
		if g.DHCP != nil {
			leases = fmt.Sprintf("%d leases", len(s.Leases))
		}
		fmt.Fprintf(w, "  gateway %s (site %s): %s, WAN %v (%s), NAT table installed=%v, %d mappings, %s; socket %s\n",
			s.Host, s.Site, g.Version, g.WANAddr, g.WANKind, g.NAT.Installed, g.NAT.Mappings, leases, s.Socket)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tINTERFACES\tDHCP LEASE\tPROCESSES")
	for _, h := range st.Hosts {
		var ifs, procs []string
		for _, i := range h.Interfaces {
			if i.Name == "lo" {
				continue
			}
			var as []string
			for _, a := range i.Addrs {
				if a.Addr().Is4() || a.Addr().IsGlobalUnicast() {
					as = append(as, a.String())
				}
			}
			ifs = append(ifs, i.Name+" "+strings.Join(as, ","))
		}
		lease := "-"
		if ls := h.Lease; ls != nil {
			lease = fmt.Sprintf("%v until %s", ls.Addr.Addr(), ls.Expires.Format("15:04:05"))
			if !ls.Held {
				lease += " (not held)"
			} else {
				lease += fmt.Sprintf(" (%v left)", ls.Expires.Sub(now).Round(time.Second))
			}
		}
		for _, p := range h.Processes {
			s := fmt.Sprintf("%s[%d", p.Name, p.PID)
			if !p.Alive {
				s += " dead"
			}
			if p.Restarts > 0 {
				s += fmt.Sprintf(" restarts=%d", p.Restarts)
			}
			procs = append(procs, s+"]")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, h.Role, strings.Join(ifs, "; "), lease, strings.Join(procs, " "))
	}
	return tw.Flush()
}
