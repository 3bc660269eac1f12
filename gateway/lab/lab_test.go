package lab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/internal/leakcheck"
)

var netipComparers = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// uniqueName returns a lab name no other test uses.
func uniqueName(t *testing.T) string {
	b := make([]byte, 3)
	rand.Read(b)
	return "u" + hex.EncodeToString(b)
}

// namespaces lists the namespaces of lab name.
func namespaces(t *testing.T, name string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var ns []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "gwl-"+name+"-") {
			ns = append(ns, f[0])
		}
	}
	slices.Sort(ns)
	return ns
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// mark marks every namespace of l, to tell later whether it is still the
// same (inode numbers of namespaces are reused).
func mark(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, h := range lab.Hosts() {
		run(t, "ip", "-n", l.NS(h.Name), "link", "set", "dev", "lo", "alias", "gwl-test-mark")
	}
}

// marked lists the hosts of l whose namespace has the mark.
func marked(t *testing.T, l *lab.Lab) []string {
	t.Helper()
	var hosts []string
	for _, h := range lab.Hosts() {
		out, err := exec.Command("ip", "-n", l.NS(h.Name), "-o", "link", "show", "dev", "lo").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", h.Name, err, out)
		}
		if strings.Contains(string(out), "gwl-test-mark") {
			hosts = append(hosts, h.Name)
		}
	}
	return hosts
}

func hostNames() []string {
	var names []string
	for _, h := range lab.Hosts() {
		names = append(names, h.Name)
	}
	return names
}

// listenIn opens a TCP listener inside host and closes it at cleanup.
func listenIn(t *testing.T, l *lab.Lab, host, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := l.Do(host, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, host, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serve runs handle for each connection on ln until ln is closed; the
// cleanup closes ln and waits for every goroutine.
func serve(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

func echo(c net.Conn) {
	io.Copy(c, c)
}

func dialFrom(l *lab.Lab, host, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := l.Do(host, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

func TestReachability(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	// No gateway runs here, so no DHCP server: the LAN hosts get the
	// addresses it would reserve for them.
	if err := l.SetStaticIPv4(lab.LAN1, lab.LAN2, lab.LANB); err != nil {
		t.Fatal(err)
	}
	a := func(p netip.Prefix) string { return p.Addr().String() }
	tests := []struct {
		name     string
		from, to string
		addr     string // where to listens and from dials
		want     bool
	}{
		{"lan1 to the gateway's LAN address", lab.LAN1, lab.Gateway, a(lab.LANAddr), true},
		{"lan1 to lan2 over the bridge", lab.LAN1, lab.LAN2, a(lab.LAN2Addr), true},
		{"lan2 to lan1 over the bridge", lab.LAN2, lab.LAN1, a(lab.LAN1Addr), true},
		{"lan2 to the gateway's WAN address", lab.LAN2, lab.Gateway, a(lab.WANAddr), true},
		{"gateway to the first public address", lab.Gateway, lab.Public, a(lab.PublicAddrs[0]), true},
		{"gateway to the second public address", lab.Gateway, lab.Public, a(lab.PublicAddrs[1]), true},
		{"gateway to the ISP", lab.Gateway, lab.ISP, a(lab.ISPWANAddr), true},
		{"public to the gateway's WAN address", lab.Public, lab.Gateway, a(lab.WANAddr), true},
		// Private addresses are not routed on the internet: without
		// NAT the answers cannot come back.
		{"lan1 to public without NAT", lab.LAN1, lab.Public, a(lab.PublicAddrs[0]), false},
		{"public to lan1", lab.Public, lab.LAN1, a(lab.LAN1Addr), false},
		// IPv6 on the internet side; the LAN hosts have IPv6 only
		// once a gateway advertises a prefix (the integration tests).
		{"pub to the gateway's WAN over IPv6", lab.Public, lab.Gateway, a(lab.WANAddr6), true},
		{"gateway to the ISP over IPv6", lab.Gateway, lab.ISP, a(lab.ISPWANAddr6), true},
		// Site B and the relay.
		{"site B's gateway to public", lab.GatewayB, lab.Public, a(lab.PublicAddrs[0]), true},
		{"site A's gateway to site B's WAN address", lab.Gateway, lab.GatewayB, a(lab.SiteBWANAddr), true},
		{"site B's gateway to site A's WAN address", lab.GatewayB, lab.Gateway, a(lab.WANAddr), true},
		{"site B's gateway to the relay", lab.GatewayB, lab.Relay, a(lab.RelayAddr), true},
		{"lanb to site B's gateway", lab.LANB, lab.GatewayB, a(lab.SiteBLANAddr), true},
		{"lanb to public without NAT", lab.LANB, lab.Public, a(lab.PublicAddrs[0]), false},
		{"lan1 to lanb: private addresses do not cross", lab.LAN1, lab.LANB, a(lab.LANBAddr), false},
		{"relay to public over IPv4", lab.Relay, lab.Public, a(lab.PublicAddrs[0]), true},
		{"relay to public over IPv6", lab.Relay, lab.Public, a(lab.PublicAddrs6[0]), true},
		{"pub to the relay over IPv6", lab.Public, lab.Relay, a(lab.RelayAddr6), true},
		// The Teredo world: site C's host behind natc's masquerade.
		{"tpeer to public through natc", lab.TeredoPeer, lab.Public, a(lab.PublicAddrs[0]), true},
		{"public to tpeer", lab.Public, lab.TeredoPeer, a(lab.TeredoPeerAddr), false},
		{"public to natc's WAN: unsolicited input dropped", lab.Public, lab.NATC, a(lab.NATCWANAddr), false},
		{"gateway to the Teredo server's second address", lab.Gateway, lab.TeredoServer, a(lab.TeredoServerAddr2), true},
		{"Teredo relay to public over IPv6", lab.TeredoRelay, lab.Public, a(lab.PublicAddrs6[0]), true},
		{"pub to the Teredo server over IPv6", lab.Public, lab.TeredoServer, a(lab.TeredoServerAddr6), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := listenIn(t, l, tt.to, net.JoinHostPort(tt.addr, "0"))
			serve(t, ln, func(c net.Conn) { io.WriteString(c, "hello from "+tt.to) })
			timeout := 5 * time.Second
			if !tt.want {
				timeout = 500 * time.Millisecond
			}
			c, err := dialFrom(l, tt.from, ln.Addr().String(), timeout)
			if !tt.want {
				if err == nil {
					c.Close()
					t.Fatalf("%s reached %s at %s; want no route", tt.from, tt.to, ln.Addr())
				}
				return
			}
			if err != nil {
				t.Fatalf("%s cannot reach %s at %s: %v", tt.from, tt.to, ln.Addr(), err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if want := "hello from " + tt.to; string(got) != want {
				t.Errorf("read %q, want %q", got, want)
			}
		})
	}
}

// hostView is the part of HostStatus that the topology fixes.
type hostView struct {
	Role, Namespace   string
	Present           bool
	Gateway, Gateway6 netip.Addr
	Ifs               map[string]string // name → master, MAC if fixed, IPv4 and global IPv6 addresses
}

func TestStatus(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	st := l.Status()
	if !st.Up || len(st.Problems) > 0 {
		t.Fatalf("Status: up %v, problems %q; want up", st.Up, st.Problems)
	}
	if st.Name != l.Name || st.Dir != l.Dir {
		t.Errorf("Status names lab %q in %q, want %q in %q", st.Name, st.Dir, l.Name, l.Dir)
	}
	fixedMAC := map[string]bool{lab.LAN1MAC: true, lab.LAN2MAC: true, lab.LANBMAC: true}
	got := map[string]hostView{}
	for _, h := range st.Hosts {
		v := hostView{Role: h.Role, Namespace: h.Namespace, Present: h.Present, Gateway: h.Gateway, Gateway6: h.Gateway6, Ifs: map[string]string{}}
		for _, f := range h.Interfaces {
			if !f.Up {
				t.Errorf("%s: %s is down", h.Name, f.Name)
			}
			var s []string
			if f.Master != "" {
				s = append(s, "master "+f.Master)
			}
			if fixedMAC[f.MAC] {
				s = append(s, f.MAC)
			}
			var addrs []string
			for _, a := range f.Addrs {
				if a.Addr().Is4() || a.Addr().IsGlobalUnicast() {
					addrs = append(addrs, a.String())
				}
			}
			slices.Sort(addrs) // the kernel lists IPv6 addresses newest first
			s = append(s, addrs...)
			v.Ifs[f.Name] = strings.Join(s, " ")
		}
		got[h.Name] = v
	}
	p := func(ps ...netip.Prefix) string {
		var s []string
		for _, a := range ps {
			s = append(s, a.String())
		}
		slices.Sort(s)
		return strings.Join(s, " ")
	}
	want := map[string]hostView{
		lab.ISP: {Role: lab.RoleISP, Namespace: l.NS(lab.ISP), Present: true, Ifs: map[string]string{
			"lo": "127.0.0.1/8", lab.ISPWAN: p(lab.ISPWANAddr, lab.ISPWANAddr6), lab.ISPInet: p(lab.InetAddr, lab.InetAddr6),
			lab.PublicPort: "master " + lab.ISPInet, lab.RelayPort: "master " + lab.ISPInet,
			lab.ISPWANB: p(lab.SiteBISPAddr, lab.SiteBCGNATISPAddr), lab.TeredoServerPort: "master " + lab.ISPInet,
			lab.TeredoRelayPort: "master " + lab.ISPInet, lab.NATCPort: "master " + lab.ISPInet,
		}},
		lab.Relay: {Role: lab.RoleRelay, Namespace: l.NS(lab.Relay), Present: true,
			Gateway: lab.InetAddr.Addr(), Gateway6: lab.InetAddr6.Addr(), Ifs: map[string]string{
				"lo": "127.0.0.1/8", lab.HostIf: p(lab.RelayAddr, lab.RelayAddr6),
			}},
		// Site B: no IPv6 from the ISP, none on its LAN until its
		// gateway advertises a 6to4 prefix.
		lab.GatewayB: {Role: lab.RoleGateway, Namespace: l.NS(lab.GatewayB), Present: true,
			Gateway: lab.SiteBISPAddr.Addr(), Ifs: map[string]string{
				"lo": "127.0.0.1/8", lab.GatewayWAN: p(lab.SiteBWANAddr), lab.GatewayLAN: p(lab.SiteBLANAddr),
				lab.LANBPort: "master " + lab.GatewayLAN,
			}},
		lab.LANB: {Role: lab.RoleLAN, Namespace: l.NS(lab.LANB), Present: true, Ifs: map[string]string{
			"lo": "127.0.0.1/8", lab.HostIf: lab.LANBMAC,
		}},
		lab.Public: {Role: lab.RolePublic, Namespace: l.NS(lab.Public), Present: true,
			Gateway: lab.InetAddr.Addr(), Gateway6: lab.InetAddr6.Addr(), Ifs: map[string]string{
				"lo": "127.0.0.1/8", lab.HostIf: p(lab.PublicAddrs[0], lab.PublicAddrs[1], lab.PublicAddrs6[0], lab.PublicAddrs6[1]),
			}},
		lab.Gateway: {Role: lab.RoleGateway, Namespace: l.NS(lab.Gateway), Present: true,
			Gateway: lab.ISPWANAddr.Addr(), Gateway6: lab.ISPWANAddr6.Addr(), Ifs: map[string]string{
				"lo": "127.0.0.1/8", lab.GatewayWAN: p(lab.WANAddr, lab.WANAddr6), lab.GatewayLAN: p(lab.LANAddr),
				lab.LAN1Port: "master " + lab.GatewayLAN, lab.LAN2Port: "master " + lab.GatewayLAN,
			}},
		// The Teredo world.
		lab.TeredoServer: {Role: lab.RoleTeredoServer, Namespace: l.NS(lab.TeredoServer), Present: true,
			Gateway: lab.InetAddr.Addr(), Gateway6: lab.InetAddr6.Addr(), Ifs: map[string]string{
				"lo": "127.0.0.1/8", lab.HostIf: p(lab.TeredoServerAddr, lab.TeredoServerAddr2, lab.TeredoServerAddr6),
			}},
		lab.TeredoRelay: {Role: lab.RoleTeredoRelay, Namespace: l.NS(lab.TeredoRelay), Present: true,
			Gateway: lab.InetAddr.Addr(), Gateway6: lab.InetAddr6.Addr(), Ifs: map[string]string{
				"lo": "127.0.0.1/8", lab.HostIf: p(lab.TeredoRelayAddr, lab.TeredoRelayAddr6),
			}},
		lab.NATC: {Role: lab.RoleNAT, Namespace: l.NS(lab.NATC), Present: true,
			Gateway: lab.InetAddr.Addr(), Ifs: map[string]string{
				"lo": "127.0.0.1/8", lab.GatewayWAN: p(lab.NATCWANAddr), lab.NATCLAN: p(lab.NATCLANAddr),
			}},
		lab.TeredoPeer: {Role: lab.RoleLAN, Namespace: l.NS(lab.TeredoPeer), Present: true,
			Gateway: lab.NATCLANAddr.Addr(), Ifs: map[string]string{
				"lo": "127.0.0.1/8", lab.HostIf: p(lab.TeredoPeerAddr),
			}},
		// No addresses on the LAN hosts: IPv4 comes from DHCP, IPv6
		// from the gateway's router advertisements.
		lab.LAN1: {Role: lab.RoleLAN, Namespace: l.NS(lab.LAN1), Present: true, Ifs: map[string]string{
			"lo": "127.0.0.1/8", lab.HostIf: lab.LAN1MAC,
		}},
		lab.LAN2: {Role: lab.RoleLAN, Namespace: l.NS(lab.LAN2), Present: true, Ifs: map[string]string{
			"lo": "127.0.0.1/8", lab.HostIf: lab.LAN2MAC,
		}},
	}
	if diff := cmp.Diff(want, got, netipComparers); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	for _, h := range st.Hosts {
		if h.Lease != nil {
			t.Errorf("%s has a lease %+v without a DHCP client", h.Name, h.Lease)
		}
	}

	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back lab.Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, back, netipComparers); diff != "" {
		t.Errorf("JSON round trip (-before +after):\n%s", diff)
	}
}

func TestUpTwiceReuses(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	mark(t, l)
	pid, err := l.Start(lab.Gateway, "sleeper", []string{"sleep", "100"}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	again, err := lab.Up(ctx, lab.Options{Name: l.Name, Dir: l.Dir})
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if diff := cmp.Diff(hostNames(), marked(t, again)); diff != "" {
		t.Errorf("namespaces kept by the second Up (-want +got):\n%s", diff)
	}
	if !processAlive(pid) {
		t.Errorf("second Up ended process %d", pid)
	}
	if err := l.Stop("sleeper", syscall.SIGTERM); err != nil {
		t.Error(err)
	}
}

func TestUpRebuildsPartial(t *testing.T) {
	labtest.Skip(t)
	tests := []struct {
		name   string
		break_ func(t *testing.T, l *lab.Lab)
	}{
		{"namespace missing", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "netns", "delete", l.NS(lab.LAN2))
		}},
		{"address missing", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "-n", l.NS(lab.Gateway), "addr", "del", lab.LANAddr.String(), "dev", lab.GatewayLAN)
		}},
		{"interface down", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "-n", l.NS(lab.ISP), "link", "set", lab.ISPWAN, "down")
		}},
		{"default route missing", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "-n", l.NS(lab.Public), "route", "del", "default")
		}},
		{"IPv6 default route missing", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "-n", l.NS(lab.Public), "-6", "route", "del", "default")
		}},
		{"IPv6 route to the LAN missing", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "-n", l.NS(lab.ISP), "-6", "route", "del", lab.DelegatedPrefix6.String())
		}},
		{"IPv6 route to the relay missing", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "-n", l.NS(lab.ISP), "-6", "route", "del", lab.SixToFourPrefix.String())
		}},
		{"site B's namespace missing", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "netns", "delete", l.NS(lab.LANB))
		}},
		{"site B's default route missing", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "-n", l.NS(lab.GatewayB), "route", "del", "default")
		}},
		{"MAC changed", func(t *testing.T, l *lab.Lab) {
			run(t, "ip", "-n", l.NS(lab.LAN2), "link", "set", lab.HostIf, "address", "02:00:00:00:99:99")
		}},
		{"build unfinished", func(t *testing.T, l *lab.Lab) {
			if err := os.WriteFile(filepath.Join(l.Dir, "lab.json"), []byte(`{"name":"`+l.Name+`"}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"state folder missing", func(t *testing.T, l *lab.Lab) {
			if err := os.RemoveAll(l.Dir); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := labtest.New(t)
			mark(t, l)
			tt.break_(t, l)
			if st := l.Status(); st.Up || len(st.Problems) == 0 {
				t.Fatalf("Status of the broken lab: up %v, problems %q", st.Up, st.Problems)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			again, err := lab.Up(ctx, lab.Options{Name: l.Name, Dir: l.Dir})
			if err != nil {
				t.Fatalf("Up: %v", err)
			}
			if st := again.Status(); !st.Up {
				t.Fatalf("Status after Up: problems %q", st.Problems)
			}
			if kept := marked(t, again); len(kept) > 0 {
				t.Errorf("namespaces of %q kept: want the partial lab removed and built again", kept)
			}
		})
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func TestDown(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	pid, err := l.Start(lab.LAN1, "sleeper", []string{"sleep", "100"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if ns := namespaces(t, l.Name); len(ns) > 0 {
		t.Errorf("namespaces left after Down: %q", ns)
	}
	if _, err := os.Stat(l.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state folder after Down: %v, want it gone", err)
	}
	if processAlive(pid) {
		t.Errorf("process %d started in the lab still runs after Down", pid)
	}
	if err := l.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
	if _, err := lab.Open(lab.Options{Name: l.Name, Dir: l.Dir}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open after Down: %v, want an fs.ErrNotExist", err)
	}
}

func TestDownKillsStrays(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	c := l.Command(context.Background(), lab.LAN2, "sleep", "100")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitComm(t, c.Process.Pid, "sleep")
	waited := make(chan error, 1)
	go func() { waited <- c.Wait() }()
	if err := l.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatalf("process %d in the lab survives Down", c.Process.Pid)
	}
	if ns := namespaces(t, l.Name); len(ns) > 0 {
		t.Errorf("namespaces left after Down: %q", ns)
	}
}

func TestOpen(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	o, err := lab.Open(lab.Options{Name: l.Name, Dir: l.Dir})
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != l.Name || o.Dir != l.Dir {
		t.Errorf("Open: lab %q in %q, want %q in %q", o.Name, o.Dir, l.Name, l.Dir)
	}
	if st := o.Status(); !st.Up {
		t.Errorf("Status of the opened lab: problems %q", st.Problems)
	}
}

func TestOptions(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"Lab", "a-b", "toolongna", "a/b", "..", "é"} {
		if _, err := lab.Up(ctx, lab.Options{Name: name, Dir: t.TempDir()}); err == nil {
			t.Errorf("Up with name %q: no error", name)
		}
		if _, err := lab.Open(lab.Options{Name: name, Dir: t.TempDir()}); err == nil {
			t.Errorf("Open with name %q: no error", name)
		}
	}
	t.Run("foreign state folder", func(t *testing.T) {
		dir := t.TempDir()
		mine := filepath.Join(dir, "mine")
		if err := os.WriteFile(mine, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := lab.Up(ctx, lab.Options{Name: uniqueName(t), Dir: dir}); err == nil {
			t.Errorf("Up in a folder that is not a lab's: no error")
		}
		if _, err := os.Stat(mine); err != nil {
			t.Errorf("Up touched a foreign folder: %v", err)
		}
	})
	t.Run("default folder", func(t *testing.T) {
		l, err := lab.Open(lab.Options{Name: uniqueName(t)})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open of a lab that does not exist: %v, %v; want an fs.ErrNotExist", l, err)
		}
	})
}

func TestUpFailureRemovesEverything(t *testing.T) {
	labtest.Skip(t)
	leakcheck.Check(t)
	injected := errors.New("injected failure")
	for _, step := range lab.BuildSteps() {
		t.Run(step, func(t *testing.T) {
			name := uniqueName(t)
			dir := filepath.Join(t.TempDir(), "lab")
			opt := lab.WithFail(lab.Options{Name: name, Dir: dir}, func(s string) error {
				if s == step {
					return injected
				}
				return nil
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			l, err := lab.Up(ctx, opt)
			if l != nil {
				l.Down()
			}
			if !errors.Is(err, injected) {
				t.Fatalf("Up: %v, want the injected failure", err)
			}
			checkNothingLeft(t, name, dir)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		name := uniqueName(t)
		dir := filepath.Join(t.TempDir(), "lab")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		opt := lab.WithFail(lab.Options{Name: name, Dir: dir}, func(s string) error {
			if s == "links" {
				cancel()
			}
			return nil
		})
		if _, err := lab.Up(ctx, opt); !errors.Is(err, context.Canceled) {
			t.Fatalf("Up: %v, want context.Canceled", err)
		}
		checkNothingLeft(t, name, dir)
	})
}

func checkNothingLeft(t *testing.T, name, dir string) {
	t.Helper()
	if ns := namespaces(t, name); len(ns) > 0 {
		t.Errorf("namespaces left: %q", ns)
		for _, n := range ns {
			exec.Command("ip", "netns", "delete", n).Run()
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state folder left: %v", err)
	}
}

func TestParallelLabs(t *testing.T) {
	labtest.Skip(t)
	leakcheck.Check(t)
	labs := make([]*lab.Lab, 3)
	errs := make([]error, len(labs))
	var wg sync.WaitGroup
	for i := range labs {
		opt := lab.Options{Name: uniqueName(t), Dir: filepath.Join(t.TempDir(), "lab")}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			labs[i], errs[i] = lab.Up(ctx, opt)
		})
	}
	wg.Wait()
	for i, l := range labs {
		if l != nil {
			t.Cleanup(func() {
				if err := l.Down(); err != nil {
					t.Error(err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatalf("Up %d: %v", i, errs[i])
		}
	}
	for _, l := range labs {
		if err := l.SetStaticIPv4(lab.LAN1); err != nil {
			t.Fatal(err)
		}
		ln := listenIn(t, l, lab.Gateway, net.JoinHostPort(lab.LANAddr.Addr().String(), "0"))
		serve(t, ln, func(c net.Conn) { io.WriteString(c, l.Name) })
		c, err := dialFrom(l, lab.LAN1, ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatalf("lab %s: %v", l.Name, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != l.Name {
			t.Errorf("lab %s: lan1 reached %q (%v), want its own gateway", l.Name, got, err)
		}
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// waitComm waits until process pid runs program comm: Start and Command
// return while it is still ip(8) on its way there.
func waitComm(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(b)) == comm {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d is %q after 5 s, want %q", pid, strings.TrimSpace(string(b)), comm)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStartStop(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	pid, err := l.Start(lab.LAN1, "sleeper", []string{"sleep", "100"}, "")
	if err != nil {
		t.Fatal(err)
	}
	waitComm(t, pid, "sleep")
	if got, want := nsInode(t, fmt.Sprintf("/proc/%d/ns/net", pid)), nsInode(t, "/run/netns/"+l.NS(lab.LAN1)); got != want {
		t.Errorf("process runs in namespace %d, want lan1's, %d", got, want)
	}
	if _, err := l.Start(lab.LAN2, "sleeper", []string{"sleep", "100"}, ""); err == nil {
		t.Errorf("second Start of a running name: no error")
	}
	b, err := os.ReadFile(filepath.Join(l.Dir, "pids", "sleeper"))
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(pid) {
		t.Errorf("pid file: %q, %v; want %d", b, err, pid)
	}

	var got []lab.Process
	for _, h := range l.Status().Hosts {
		got = append(got, h.Processes...)
	}
	want := []lab.Process{{Name: "sleeper", Host: lab.LAN1, PID: pid, Alive: true,
		Args: []string{"sleep", "100"}, Log: filepath.Join(l.Dir, "logs", "sleeper.log")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status processes (-want +got):\n%s", diff)
	}

	if err := l.Stop("sleeper", syscall.SIGTERM); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if processAlive(pid) {
		t.Errorf("process %d alive after Stop", pid)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "pids", "sleeper")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after Stop: %v", err)
	}
	for _, h := range l.Status().Hosts {
		if len(h.Processes) > 0 {
			t.Errorf("Status after Stop: %s runs %v", h.Name, h.Processes)
		}
	}
	if err := l.Stop("sleeper", syscall.SIGTERM); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stop of a stopped process: %v, want an fs.ErrNotExist", err)
	}
	if _, err := l.Start(lab.LAN1, "sleeper", []string{"sleep", "100"}, ""); err != nil {
		t.Errorf("Start after Stop: %v", err)
	}
	// Down, at cleanup, stops it.
}

func TestStartLogs(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	log := filepath.Join(t.TempDir(), "sub", "hello.log")
	if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(log, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(lab.LAN2, "hello", []string{"sh", "-c", `echo "hi from $(cat /proc/sys/kernel/hostname)"; echo oops >&2`}, log); err != nil {
		t.Fatal(err)
	}
	want := "before\nhi from lan2\noops\n"
	deadline := time.Now().Add(5 * time.Second)
	var got []byte
	for {
		got, _ = os.ReadFile(log)
		if string(got) == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	// An exited process is forgotten without error.
	if err := l.Stop("hello", syscall.SIGTERM); err != nil {
		t.Errorf("Stop of an exited process: %v", err)
	}
	for _, bad := range [][]string{nil, {}} {
		if _, err := l.Start(lab.LAN1, "empty", bad, ""); err == nil {
			t.Errorf("Start with args %q: no error", bad)
		}
	}
	if _, err := l.Start("nosuch", "x", []string{"true"}, ""); err == nil {
		t.Errorf("Start in an unknown host: no error")
	}
	if _, err := l.Start(lab.LAN1, "../x", []string{"true"}, ""); err == nil {
		t.Errorf("Start with a bad name: no error")
	}
}

func TestCommand(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	probe := "gwl-probe-" + l.Name
	tests := []struct {
		name string
		host string
		args []string
		want string
	}{
		{"hostname", lab.LAN1, []string{"hostname"}, "lan1\n"},
		{"hostname of another host", lab.Gateway, []string{"hostname"}, "gw\n"},
		{"resolv.conf is the host's own", lab.LAN1,
			[]string{"sh", "-c", "echo nameserver 192.0.2.53 >/etc/resolv.conf; cat /etc/resolv.conf"},
			"nameserver 192.0.2.53\n"},
		{"/run is the host's own", lab.LAN2,
			[]string{"sh", "-c", "echo x >/run/" + probe + "; cat /run/" + probe}, "x\n"},
		{"arguments are not parsed by a shell", lab.LAN2,
			[]string{"printf", "%s|", "a b", "$HOME", `'q"`, ";echo x", "", "\n"}, "a b|$HOME|'q\"|;echo x||\n|"},
		{"network namespace", lab.Gateway,
			[]string{"ip", "-4", "-o", "addr", "show", "dev", lab.GatewayLAN}, lab.LANAddr.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := l.Command(ctx, tt.host, tt.args[0], tt.args[1:]...).CombinedOutput()
			if err != nil {
				t.Fatalf("%q: %v: %s", tt.args, err, out)
			}
			if tt.name == "network namespace" {
				if !strings.Contains(string(out), tt.want) {
					t.Errorf("%q said %q, want it to contain %q", tt.args, out, tt.want)
				}
				return
			}
			if diff := cmp.Diff(tt.want, string(out)); diff != "" {
				t.Errorf("%q said (-want +got):\n%s", tt.args, diff)
			}
		})
	}
	if got, err := os.Hostname(); err != nil || got != hostname {
		t.Errorf("the machine's hostname is %q (%v), was %q", got, err, hostname)
	}
	if got, err := os.ReadFile("/etc/resolv.conf"); err != nil || !bytes.Equal(got, resolv) {
		t.Errorf("the machine's /etc/resolv.conf changed to %q (%v)", got, err)
	}
	if b, err := os.ReadFile(filepath.Join(l.Dir, lab.LAN1, "resolv.conf")); err != nil || string(b) != "nameserver 192.0.2.53\n" {
		t.Errorf("lan1's resolv.conf: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, lab.LAN2, "run", probe)); err != nil {
		t.Errorf("lan2's /run: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/run", probe)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the machine's /run got the host's file: %v", err)
	}
	if err := l.Command(context.Background(), "nosuch", "true").Run(); err == nil {
		t.Errorf("Command in an unknown host: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := l.Command(ctx, lab.LAN1, "sleep", "100")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitComm(t, c.Process.Pid, "sleep")
	cancel()
	if err := c.Wait(); err == nil {
		t.Errorf("cancelled sleep: no error")
	}
}

// A state folder under /run, the default, must stay visible to programs
// in the hosts even though they get a /run of their own.
func TestCommandDirUnderRun(t *testing.T) {
	labtest.Skip(t)
	leakcheck.Check(t)
	name := uniqueName(t)
	dir := "/run/gwl-test-" + name
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Name: name, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Down: %v", dir, err)
		}
	})
	out, err := l.Command(ctx, lab.LAN1, "sh", "-c", `cat "$1/lab.json" >/dev/null && echo x >/run/probe && test ! -e /run/netns && echo ok`, "sh", dir).CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("lab folder not visible or /run not private: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, lab.LAN1, "run", "probe")); err != nil {
		t.Errorf("lan1's /run: %v", err)
	}
}

func TestDo(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	threadNS := func() string {
		s, err := os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	runtime.LockOSThread()
	root := threadNS()
	runtime.UnlockOSThread()

	if err := l.Do(lab.Gateway, func() error {
		if s := threadNS(); s == root {
			t.Errorf("inside Do, the thread is in the root namespace")
		}
		_, err := net.InterfaceByName(lab.GatewayLAN)
		return err
	}); err != nil {
		t.Errorf("Do in gw: %v", err)
	}
	if _, err := net.InterfaceByName(lab.GatewayLAN); err == nil {
		t.Errorf("%s visible outside the lab", lab.GatewayLAN)
	}
	wantErr := errors.New("from fn")
	if err := l.Do(lab.LAN1, func() error { return wantErr }); err != wantErr {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want fn's panic", p)
			}
		}()
		l.Do(lab.LAN1, func() error { panic("boom") })
	}()
	if err := l.Do("nosuch", func() error { return nil }); err == nil {
		t.Errorf("Do in an unknown host: no error")
	}

	// No thread went back to the pool in a lab namespace.
	for range 20 {
		l.Do(lab.LAN2, func() error { return nil })
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad int
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if threadNS() != root {
				mu.Lock()
				bad++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d threads left in a lab namespace", bad)
	}
}

func TestProxy(t *testing.T) {
	leakcheck.Check(t)
	l := labtest.New(t)
	if err := l.SetStaticIPv4(lab.LAN1); err != nil {
		t.Fatal(err)
	}
	srv := listenIn(t, l, lab.Gateway, net.JoinHostPort(lab.LANAddr.Addr().String(), "0"))
	serve(t, srv, echo)
	target := srv.Addr().(*net.TCPAddr).AddrPort()
	if target.Addr() != lab.LANAddr.Addr() {
		t.Fatalf("echo server on %v", target)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- lab.Proxy(ctx, ln, l, lab.LAN1, target) }()

	t.Run("echo", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				msg := strings.Repeat(fmt.Sprintf("ping %d ", i), 10000)
				go func() {
					io.WriteString(c, msg)
					c.(*net.TCPConn).CloseWrite()
				}()
				got, err := io.ReadAll(c)
				if err != nil {
					t.Error(err)
				}
				if string(got) != msg {
					t.Errorf("conn %d: echoed %d bytes, want %d", i, len(got), len(msg))
				}
			})
		}
		wg.Wait()
	})

	t.Run("nobody listening", func(t *testing.T) {
		done := make(chan error, 1)
		dead := netip.AddrPortFrom(lab.LANAddr.Addr(), 1)
		ln2, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx2, cancel2 := context.WithCancel(context.Background())
		go func() { done <- lab.Proxy(ctx2, ln2, l, lab.LAN1, dead) }()
		c, err := net.Dial("tcp", ln2.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read: %d, %v; want the connection closed", n, err)
		}
		c.Close()
		cancel2()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Proxy: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Proxy still runs 5 s after its context ended")
		}
	})

	// An open connection ends with Proxy.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Proxy: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Proxy still runs 5 s after its context ended")
	}
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read after Proxy ended: %d, %v; want the connection closed", n, err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("the listener still accepts after Proxy ended")
	}
}
