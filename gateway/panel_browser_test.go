//go:build linux && !nolab

package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/internal/testenv"
	"gateway/nat44"
)

// panelPort is where the daemon of the lab serves the web panel, on the
// LAN address.
const panelPort = 80

// TestPanelBrowser drives the web panel with Chromium (Playwright, the
// script web/ui/e2e/panel.mjs) against the daemon in the lab, as its owner
// would: first-run password, sign in, the lease of a real DHCP client,
// a mapping that upnpc made revoked, a static forward added (and traffic
// from the public host crossing it), a setting changed, sign out. It
// saves a screenshot of each page at phone and desktop widths in
// $GATEWAY_SCREENSHOTS, else web/ui/e2e/out (`make screenshots` copies the
// README's into docs/screenshots).
func TestPanelBrowser(t *testing.T) {
	testenv.Root(t)
	node := testenv.Tool(t, "node", "nodejs")
	chromium := testenv.Tool(t, "chromium", "chromium")
	e2e, err := filepath.Abs(filepath.Join("..", "web", "ui", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	// npm ci when node_modules is missing or older than the lock file.
	installed, err := os.Stat(filepath.Join(e2e, "node_modules", ".package-lock.json"))
	lock, lerr := os.Stat(filepath.Join(e2e, "package-lock.json"))
	if lerr != nil {
		t.Fatal(lerr)
	}
	if err != nil || installed.ModTime().Before(lock.ModTime()) {
		npm := testenv.Tool(t, "npm", "npm")
		c := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		c.Dir = e2e
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", e2e, err, out)
		}
	}
	shots := os.Getenv("GATEWAY_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(e2e, "out")
	}

	// A web section of the test's own, without a password: the panel
	// starts at its first-run page.
	g := startGateway(t, "\nconfig web 'web'\n\toption port '"+strconv.Itoa(panelPort)+"'\n")
	// A mapping made by a real client, for the browser to revoke.
	if out := g.upnpc(lab.LAN2, "-e", "game", "-a", lan2.String(), "9200", "9200", "TCP"); !strings.Contains(out, "is redirected to internal") {
		t.Fatalf("upnpc -a:\n%s", out)
	}
	// The server behind the static forward that the browser adds.
	tcpServer(t, g.l, lab.LAN1, hostPort(lan1, 8090))

	// A download across the WAN while the browser looks at the chart.
	download(t, g.l, hostPort(pub1, 9000))

	// The panel, reached from this namespace through a proxy into lan1, as
	// the owner's browser reaches it from the LAN.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proxied := make(chan error, 1)
	go func() {
		proxied <- lab.Proxy(ctx, ln, g.l, lab.LAN1, netip.AddrPortFrom(lab.LANAddr.Addr(), panelPort))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-proxied; err != nil {
			t.Error(err)
		}
	})

	run, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	defer stop()
	c := exec.CommandContext(run, node, "panel.mjs",
		"--url", "http://"+ln.Addr().String()+"/",
		"--lease", lan1.String(),
		"--revoke", "tcp/9200",
		"--forward", "tcp/8081/"+hostPort(lan1, 8090),
		"--host-limit", "32",
		"--traffic",
		"--out", shots,
		"--chromium", chromium)
	c.Dir = e2e
	rss := func() string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.pid()))
		for l := range strings.Lines(string(b)) {
			if strings.HasPrefix(l, "VmRSS:") {
				return strings.Join(strings.Fields(l)[1:], " ")
			}
		}
		return "?"
	}
	before := rss()
	start := time.Now()
	out, err := c.CombinedOutput()
	t.Logf("the daemon's RSS: %s before the browser, %s after", before, rss())
	t.Logf("panel.mjs (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("the browser test failed: %v", err)
	}

	// What the browser did, seen from outside it.
	wantTCP(t, g.l, lab.Public, hostPort(wanAddr, 8081), "lan1 saw "+pub1.String()+":")
	var ms []nat44.Mapping
	if err := g.api().Do("GET", "/api/v1/mappings", nil, &ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Proto == nat44.TCP && m.ExternalPort == 9200 {
			t.Errorf("the mapping the browser revoked is still there: %+v", m)
		}
	}
	var settings struct {
		HostLimit int `json:"host_limit"`
	}
	if err := g.api().Do("GET", "/api/v1/settings", nil, &settings); err != nil {
		t.Fatal(err)
	}
	if settings.HostLimit != 32 {
		t.Errorf("host_limit is %d after the browser set 32", settings.HostLimit)
	}
	if b, err := os.ReadFile(g.cfg); err != nil || !strings.Contains(string(b), "32") {
		t.Errorf("the config file does not have the new host limit (%v):\n%s", err, b)
	}
	var rs []struct {
		Addr netip.Addr `json:"addr"`
	}
	if err := g.api().Do("GET", "/api/v1/reservations", nil, &rs); err != nil {
		t.Fatal(err)
	}
	reserved := false
	for _, r := range rs {
		reserved = reserved || r.Addr == lan1
	}
	if !reserved {
		t.Errorf("reservations %+v: no reservation of %v, which the browser made", rs, lan1)
	}
	for _, page := range []string{"overview", "devices", "mappings", "pinholes", "sessions", "events", "settings"} {
		for _, w := range []string{"desktop", "phone"} {
			if fi, err := os.Stat(filepath.Join(shots, page+"-"+w+".png")); err != nil || fi.Size() == 0 {
				t.Errorf("no screenshot of %s at %s width: %v", page, w, err)
			}
		}
	}
}

// download makes traffic across the WAN until the test ends: a server in
// the public host at addr sends about 40 Mbit/s to lan1, which reads it.
func download(t *testing.T, l *lab.Lab, addr string) {
	t.Helper()
	var ln net.Listener
	if err := l.Do(lab.Public, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	if err := l.Do(lab.LAN1, func() (err error) { c, err = net.DialTimeout("tcp", addr, 5*time.Second); return err }); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	s, err := ln.Accept()
	ln.Close()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 500<<10)
		for {
			if _, err := s.Write(buf); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	wg.Go(func() { io.Copy(io.Discard, c) })
	t.Cleanup(func() { s.Close(); c.Close(); wg.Wait() })
}
