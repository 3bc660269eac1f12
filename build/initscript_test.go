package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gateway/internal/testenv"
)

// shell returns OpenWrt's shell (busybox ash) when it is installed, else
// the system's sh; under CI=true busybox must be there.
func shell(t *testing.T) []string {
	t.Helper()
	if bb, err := exec.LookPath("busybox"); err == nil {
		return []string{bb, "sh"}
	}
	if testenv.CI() {
		testenv.Tool(t, "busybox", "busybox") // fails
	}
	sh := testenv.Tool(t, "sh", "dash")
	t.Logf("busybox not installed (make deps installs it): running the init script with %s", sh)
	return []string{sh}
}

// gatewayBinary builds the daemon for this machine, for `check-config`.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gateway")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gateway: %v\n%s", err, out)
	}
	return bin
}

// router is a fake OpenWrt for the init script: its devices, RAM, UCI
// store and init.d.
type router struct {
	dir      string
	conf     string // /etc/config/gateway
	devices  []string
	memKB    int
	uci      string // network and dhcp, key=value
	services []string
}

// run sources the stubs and the init script and runs the commands; it
// returns what the stubs recorded, and the output.
func (r router) run(t *testing.T, prog, commands string) (calls, out string, err error) {
	t.Helper()
	root := repoRoot(t)
	write := func(rel, s string, mode os.FileMode) string {
		p := filepath.Join(r.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := write("etc/config/gateway", r.conf, 0o644)
	if err := os.MkdirAll(filepath.Join(r.dir, "sys/class/net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range r.devices {
		write("sys/class/net/"+d+"/ifindex", "1\n", 0o644)
	}
	write("proc/meminfo", "MemTotal:       "+strconv.Itoa(r.memKB)+" kB\nMemFree:        1000 kB\n", 0o644)
	store := filepath.Join(r.dir, "uci")
	if _, err := os.Stat(store); err != nil {
		write("uci", r.uci, 0o644)
	}
	callLog := filepath.Join(r.dir, "calls")
	os.Remove(callLog)
	for _, s := range r.services {
		write("etc/init.d/"+s, "#!/bin/sh\necho \"$0 $*\" >>"+callLog+"\n[ \"$1\" = enabled ] && exit 0\nexit 0\n", 0o755)
	}
	script := ". " + filepath.Join(root, "build/testdata/openwrt.sh") + "\n. " + filepath.Join(root, "build/openwrt/files/etc/init.d/gateway") + "\n" + commands + "\n"
	cmd := exec.Command(shell(t)[0], append(shell(t)[1:], "-c", script)...)
	cmd.Env = append(os.Environ(),
		"CALLS="+callLog,
		"UCI_STORE="+store,
		"GATEWAY_PROG="+prog,
		"GATEWAY_CONF="+conf,
		"GATEWAY_TAKEOVER="+filepath.Join(r.dir, "etc/gateway/openwrt-takeover"),
		"GATEWAY_SETTINGS="+filepath.Join(r.dir, "var/run/gateway.settings"),
		"GATEWAY_SYSNET="+filepath.Join(r.dir, "sys/class/net"),
		"GATEWAY_MEMINFO="+filepath.Join(r.dir, "proc/meminfo"),
		"GATEWAY_INITD="+filepath.Join(r.dir, "etc/init.d"),
	)
	b, err := cmd.CombinedOutput()
	c, _ := os.ReadFile(callLog)
	return strings.ReplaceAll(string(c), r.dir, "ROOT"), string(b), err
}

func defaultConf(t *testing.T) string {
	return string(repoFile(t, "build/openwrt/files/etc/config/gateway"))
}

const openwrtUCI = `network.lan=interface
network.lan.device=br-lan
network.wan=interface
network.wan.device=wan
dhcp.lan=dhcp
dhcp.lan.interface=lan
dhcp.lan.ra=server
dhcp.lan.dhcpv4=server
dhcp.wan=dhcp
dhcp.wan.interface=wan
dhcp.wan.ignore=1
`

func wantLines(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
}

// lacks fails when got contains one of unwanted.
func lacks(t *testing.T, got string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(got, w) {
			t.Errorf("unexpected %q in:\n%s", w, got)
		}
	}
}

// noLines fails when a line of got starts with one of unwanted (a whole
// word).
func noLines(t *testing.T, got string, unwanted ...string) {
	t.Helper()
	for _, line := range strings.Split(got, "\n") {
		for _, w := range unwanted {
			if line == w || strings.HasPrefix(line, w+" ") {
				t.Errorf("unexpected %q in:\n%s", w, got)
			}
		}
	}
}

func TestInitScript(t *testing.T) {
	prog := gatewayBinary(t)

	t.Run("start on a 64 MB router", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: defaultConf(t), devices: []string{"wan", "br-lan", "lo"}, memKB: 59000, uci: openwrtUCI}
		calls, out, err := r.run(t, prog, "start_service; service_triggers")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls,
			"procd_open_instance main",
			"procd_set_param command "+prog+" run -c ROOT/etc/config/gateway",
			"procd_set_param env GOMEMLIMIT=24MiB GOGC=50",
			"procd_set_param respawn 3600 5 5",
			"procd_set_param stdout 1",
			"procd_set_param stderr 1",
			"procd_close_instance",
			"procd_add_reload_trigger gateway",
		)
		lacks(t, calls, "logger", "GOGC=off")
	})

	t.Run("start on a 128 MB router", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: defaultConf(t), devices: []string{"wan", "br-lan"}, memKB: 124000, uci: openwrtUCI}
		calls, out, err := r.run(t, prog, "start_service")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls, "procd_set_param env GOMEMLIMIT=32MiB GOGC=50")
	})

	t.Run("devices that do not exist", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: defaultConf(t), devices: []string{"eth0", "eth1", "lo"}, memKB: 59000, uci: openwrtUCI}
		calls, out, err := r.run(t, prog, "start_service")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		// It says so once, names what exists, and still starts: the
		// daemon waits for the devices (pppoe-wan comes late).
		wantLines(t, calls, "logger -t gateway -p daemon.warning device(s) wan br-lan not found", "devices here: eth0 eth1 lo", "procd_open_instance main")
	})

	t.Run("a config the daemon refuses", func(t *testing.T) {
		conf := "config gateway 'main'\n\toption wan 'wan'\n\toption lan 'br-lan'\n\toption log_level 'loud'\n"
		r := router{dir: t.TempDir(), conf: conf, devices: []string{"wan", "br-lan"}, memKB: 59000, uci: openwrtUCI}
		calls, _, err := r.run(t, prog, "start_service")
		if err == nil {
			t.Errorf("start_service succeeded with a bad config")
		}
		// No instance: procd has nothing to respawn in a loop; the
		// reason is in the log with file and line.
		noLines(t, calls, "procd_open_instance")
		wantLines(t, calls, "daemon.err ROOT/etc/config/gateway refused", "gateway:4: log_level \"loud\"")
	})

	t.Run("reload sends SIGHUP", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: defaultConf(t), devices: []string{"wan", "br-lan"}, memKB: 59000, uci: openwrtUCI}
		calls, out, err := r.run(t, prog, "start_service && reload_service")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls, "procd_send_signal gateway main HUP")
		noLines(t, calls, "stop", "restart")
	})

	t.Run("reload with a new WAN device restarts", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: defaultConf(t), devices: []string{"wan", "eth1", "br-lan"}, memKB: 59000, uci: openwrtUCI}
		if _, out, err := r.run(t, prog, "start_service"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		r.conf = strings.Replace(r.conf, "option wan 'wan'", "option wan 'eth1'", 1)
		calls, out, err := r.run(t, prog, "reload_service")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls, "stop\nstart")
		noLines(t, calls, "procd_send_signal")
	})

	t.Run("reload with a bad config keeps the daemon", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: defaultConf(t), devices: []string{"wan", "br-lan"}, memKB: 59000, uci: openwrtUCI}
		if _, out, err := r.run(t, prog, "start_service"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		r.conf += "\nconfig bogus\n"
		calls, _, err := r.run(t, prog, "reload_service")
		if err == nil {
			t.Errorf("reload_service succeeded with a bad config")
		}
		noLines(t, calls, "procd_send_signal", "stop", "start")
		wantLines(t, calls, "unknown section type")
	})

	dhcpOn := func(t *testing.T) string {
		return strings.Replace(defaultConf(t), "option enabled '0'", "option enabled '1'", 1)
	}

	t.Run("start warns when dnsmasq serves DHCP too", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: dhcpOn(t), devices: []string{"wan", "br-lan"}, memKB: 59000, uci: openwrtUCI}
		calls, out, err := r.run(t, prog, "start_service")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls, "dnsmasq also serves DHCP on the LAN (section dhcp.lan): run 'service gateway takeover'")
	})

	t.Run("takeover and handback", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: dhcpOn(t), devices: []string{"wan", "br-lan"}, memKB: 59000, uci: openwrtUCI, services: []string{"dnsmasq", "odhcpd"}}
		calls, out, err := r.run(t, prog, "takeover && takeover")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls,
			"uci set dhcp.lan.ignore=1",
			"uci set dhcp.lan.dhcpv4=disabled",
			"uci commit dhcp",
			"ROOT/etc/init.d/dnsmasq reload",
			"ROOT/etc/init.d/odhcpd reload",
			"restart",
		)
		// Only the LAN's section; RA stays with odhcpd (the default config keeps IPv6 off).
		lacks(t, calls, "dhcp.wan", "dhcp.lan.ra")
		wantLines(t, out, "dnsmasq: no DHCP on the LAN")
		record, err := os.ReadFile(filepath.Join(r.dir, "etc/gateway/openwrt-takeover"))
		if err != nil {
			t.Fatal(err)
		}
		// Taking over twice records the values from before the first.
		if got, want := string(record), "dhcp.lan.ignore \ndhcp.lan.dhcpv4 server\n"; got != want {
			t.Errorf("takeover record = %q, want %q", got, want)
		}

		calls, out, err = r.run(t, prog, "handback")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls,
			"uci delete dhcp.lan.ignore",
			"uci set dhcp.lan.dhcpv4=server",
			"uci commit dhcp",
			"ROOT/etc/init.d/dnsmasq reload",
			"uci set gateway.lan.enabled=0",
			"uci commit gateway",
			"restart",
		)
		store, _ := os.ReadFile(filepath.Join(r.dir, "uci"))
		lacks(t, string(store), "dhcp.lan.ignore")
		wantLines(t, string(store), "dhcp.lan.dhcpv4=server", "dhcp.lan.ra=server")
		if _, err := os.Stat(filepath.Join(r.dir, "etc/gateway/openwrt-takeover")); err == nil {
			t.Errorf("handback left the takeover record")
		}
	})

	t.Run("takeover of miniupnpd for UPnP, NAT-PMP and PCP", func(t *testing.T) {
		for _, tt := range []struct {
			name, section string
			takes         bool
		}{
			{"upnp", "\nconfig upnp\n", true},
			{"pmp", "\nconfig pmp\n", true},
			{"upnp off", "\nconfig upnp\n\toption enabled '0'\n", false},
		} {
			r := router{dir: t.TempDir(), conf: defaultConf(t) + tt.section, devices: []string{"wan", "br-lan"}, memKB: 59000, uci: openwrtUCI, services: []string{"miniupnpd"}}
			calls, out, err := r.run(t, prog, "takeover")
			if err != nil {
				t.Fatalf("%s: %v\n%s", tt.name, err, out)
			}
			if tt.takes {
				wantLines(t, calls, "ROOT/etc/init.d/miniupnpd stop", "ROOT/etc/init.d/miniupnpd disable")
			} else {
				lacks(t, calls, "miniupnpd stop")
			}
		}
	})

	t.Run("takeover and handback of odhcpd's RA and wan6's prefix delegation", func(t *testing.T) {
		conf := strings.Replace(defaultConf(t), "config ipv6 'ipv6'\n\toption enabled '0'", "config ipv6 'ipv6'\n\toption enabled '1'", 1)
		if conf == defaultConf(t) {
			t.Fatal("the default config has no disabled ipv6 section")
		}
		r := router{dir: t.TempDir(), conf: conf, devices: []string{"wan", "br-lan"}, memKB: 59000,
			uci: openwrtUCI + "network.wan6=interface\nnetwork.wan6.device=@wan\n", services: []string{"odhcpd", "network"}}
		calls, out, err := r.run(t, prog, "takeover")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls, "uci set dhcp.lan.ra=disabled", "ROOT/etc/init.d/odhcpd reload",
			"uci set network.wan6.disabled=1", "uci commit network", "ROOT/etc/init.d/network reload", "restart")
		lacks(t, calls, "dhcp.lan.ignore", "dhcp.wan.ra")
		wantLines(t, out, "odhcpd: no router advertisements on the LAN", "netifd: wan6 (odhcp6c) off")

		calls, out, err = r.run(t, prog, "handback")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, calls, "uci set dhcp.lan.ra=server", "uci delete network.wan6.disabled", "uci commit network",
			"uci set gateway.ipv6.enabled=0", "uci commit gateway")
		store, _ := os.ReadFile(filepath.Join(r.dir, "uci"))
		wantLines(t, string(store), "dhcp.lan.ra=server")
		lacks(t, string(store), "network.wan6.disabled")
	})

	t.Run("nothing to take over", func(t *testing.T) {
		r := router{dir: t.TempDir(), conf: defaultConf(t), devices: []string{"wan", "br-lan"}, memKB: 59000, uci: openwrtUCI, services: []string{"dnsmasq"}}
		calls, out, err := r.run(t, prog, "takeover")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantLines(t, out, "nothing to take over")
		lacks(t, calls, "uci set", "dnsmasq")
		noLines(t, calls, "restart")
	})
}

// The package scripts do nothing on an image build ($IPKG_INSTROOT set):
// no command runs, nothing is printed.
func TestPackageScriptsOnImageBuild(t *testing.T) {
	sh := shell(t)
	for _, name := range []string{"postinst", "postupgrade", "prerm", "postrm"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			for _, tool := range []string{"fw4", "logger", "uci"} {
				os.WriteFile(filepath.Join(dir, tool), []byte("#!/bin/sh\necho \"$0 $*\" >>"+calls+"\n"), 0o755)
			}
			cmd := exec.Command(sh[0], append(sh[1:], filepath.Join(repoRoot(t), "build/openwrt/scripts", name))...)
			cmd.Env = []string{"PATH=" + dir, "IPKG_INSTROOT=" + dir}
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("with IPKG_INSTROOT set: %v, printed %q", err, out)
			}
			if b, _ := os.ReadFile(calls); len(b) > 0 {
				t.Errorf("with IPKG_INSTROOT set it ran:\n%s", b)
			}
		})
	}
}

// On a live system the scripts enable and start the service on install,
// restart it on upgrade, and hand back and stop on removal. They call
// /etc/init.d/gateway, so this runs them in a private mount namespace with
// a stand-in bind-mounted over /etc/init.d (root only; CI runs as root).
func TestPackageScriptsOnLiveSystem(t *testing.T) {
	testenv.Root(t) // to bind-mount a stand-in /etc/init.d in a private mount namespace
	unshare := testenv.Tool(t, "unshare", "util-linux")
	sh := shell(t)
	for _, tc := range []struct {
		script, upgrade string
		want            string
	}{
		{"postinst", "", "fw4 -q reload\ngateway enable\ngateway start\n"},
		{"postinst", "1", "fw4 -q reload\ngateway enabled\ngateway restart\n"},
		{"postupgrade", "", "fw4 -q reload\ngateway enabled\ngateway restart\n"},
		{"prerm", "", "gateway handback\ngateway stop\ngateway disable\n"},
		{"prerm", "1", ""},
		{"postrm", "", "fw4 -q reload\n"},
		{"postrm", "1", ""},
	} {
		t.Run(tc.script+"/upgrade="+tc.upgrade, func(t *testing.T) {
			dir := t.TempDir()
			initd := filepath.Join(dir, "init.d")
			bin := filepath.Join(dir, "bin")
			os.MkdirAll(initd, 0o755)
			os.MkdirAll(bin, 0o755)
			calls := filepath.Join(dir, "calls")
			stub := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >>" + calls + "\n"
			os.WriteFile(filepath.Join(initd, "gateway"), []byte(stub), 0o755)
			os.WriteFile(filepath.Join(bin, "fw4"), []byte(stub), 0o755)
			script := filepath.Join(repoRoot(t), "build/openwrt/scripts", tc.script)
			args := []string{"--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" /etc/init.d && exec "$@"`, initd}
			cmd := exec.Command(unshare, append(args, append(sh, script)...)...)
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin:/usr/sbin:/sbin", "PKG_UPGRADE=" + tc.upgrade}
			out, err := cmd.CombinedOutput()
			if err != nil {
				if strings.Contains(string(out), "Operation not permitted") || strings.Contains(string(out), "unshare failed") {
					testenv.Skip(t, "cannot make a mount namespace here: %s", out)
				}
				t.Fatalf("%v\n%s", err, out)
			}
			got, _ := os.ReadFile(calls)
			if string(got) != tc.want {
				t.Errorf("calls:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}
