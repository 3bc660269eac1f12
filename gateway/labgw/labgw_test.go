package labgw_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gateway/gateway"
	"gateway/gateway/lab"
	"gateway/gateway/labgw"
)

// The sites' default configs load, and keep the two daemons apart: each
// has its own state, socket, reservations and forward.
func TestSiteConfigs(t *testing.T) {
	l := &lab.Lab{Name: "t", Dir: t.TempDir()}
	type view struct {
		WAN, LAN, StateDir, Socket string
		Reservations               []string // MAC → address name
		Forwards                   []string // proto external → internal
		PMP, UPnP                  bool
	}
	want := map[string]view{
		"a": {WAN: "wan", LAN: "br-lan", StateDir: filepath.Join(l.Dir, "state"), Socket: filepath.Join(l.Dir, "gateway.sock"),
			Reservations: []string{lab.LAN1MAC + " → 192.168.1.10 lan1", lab.LAN2MAC + " → 192.168.1.11 lan2"},
			Forwards:     []string{"tcp 8080 → 192.168.1.10:80"}, PMP: true, UPnP: true},
		"b": {WAN: "wan", LAN: "br-lan", StateDir: filepath.Join(l.Dir, "state-b"), Socket: filepath.Join(l.Dir, "gateway-b.sock"),
			Reservations: []string{lab.LANBMAC + " → 192.168.2.10 lanb"},
			Forwards:     []string{"tcp 8080 → 192.168.2.10:80"}, PMP: true, UPnP: true},
	}
	paths := map[string]bool{}
	for _, s := range labgw.Sites {
		t.Run(s.Name, func(t *testing.T) {
			path := s.ConfigPath(l)
			if err := os.WriteFile(path, []byte(s.Config(l, "")), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := gateway.LoadConfig(path)
			if err != nil {
				t.Fatalf("the default config of site %s: %v", s.Name, err)
			}
			got := view{WAN: c.WAN, LAN: c.LANs[0], StateDir: c.StateDir, Socket: c.ControlSocket, PMP: c.PMP != nil, UPnP: c.UPnP != nil}
			if c.DHCP == nil {
				t.Fatalf("site %s: no DHCP server", s.Name)
			}
			for _, r := range c.DHCP.Reservations {
				got.Reservations = append(got.Reservations, fmt.Sprintf("%s → %v %s", r.MAC, r.Addr, r.Hostname))
			}
			for _, f := range c.Forwards {
				got.Forwards = append(got.Forwards, fmt.Sprintf("%v %d → %v", f.Proto, f.ExternalPort, f.Internal))
			}
			if fmt.Sprint(got) != fmt.Sprint(want[s.Name]) {
				t.Errorf("site %s's config:\n got %+v\nwant %+v", s.Name, got, want[s.Name])
			}
			for _, p := range []string{s.ConfigPath(l), s.Socket(l), s.Log(l), s.StateDir(l)} {
				if paths[p] {
					t.Errorf("site %s shares %s with another site", s.Name, p)
				}
				paths[p] = true
			}
		})
	}
	// Site A's functions without a Site are SiteA's.
	if labgw.Config(l, "x") != labgw.SiteA.Config(l, "x") || labgw.BaseConfig(l, "x") != labgw.SiteA.BaseConfig(l, "x") ||
		labgw.Socket(l) != labgw.SiteA.Socket(l) || labgw.Log(l) != labgw.SiteA.Log(l) || labgw.ConfigPath(l) != labgw.SiteA.ConfigPath(l) {
		t.Errorf("the site A functions differ from SiteA's methods")
	}
	args := labgw.SiteB.RespawnArgs(l, "/bin/gw", "/c")
	if i := slices.Index(args, "--host"); i < 0 || args[i+1] != lab.GatewayB || !slices.Contains(args, labgw.SiteB.Daemon) {
		t.Errorf("site B's respawner: %q; want it in %s, respawning %s", args, lab.GatewayB, labgw.SiteB.Daemon)
	}
}

// Each lab's panels have a first password of their own, the same at every
// call, and a test's own web section replaces it.
func TestPanelPassword(t *testing.T) {
	l := &lab.Lab{Name: "t", Dir: t.TempDir()}
	l2 := &lab.Lab{Name: "t2", Dir: t.TempDir()}
	pw := labgw.PanelPassword(l)
	if len(pw) < 12 || pw != labgw.PanelPassword(l) || pw == labgw.PanelPassword(l2) || pw == labgw.SiteB.PanelPassword(l) {
		t.Fatalf("passwords %q %q %q %q", pw, labgw.PanelPassword(l), labgw.PanelPassword(l2), labgw.SiteB.PanelPassword(l))
	}
	c, err := gateway.ParseConfig("a", []byte(labgw.Config(l, "")))
	if err != nil || c.Web == nil || c.Web.Password != pw || c.Web.Port != 80 {
		t.Fatalf("site A's web section: %+v %v", c.Web, err)
	}
	c, err = gateway.ParseConfig("a", []byte(labgw.Config(l, "\nconfig web\n\toption port 8080\n")))
	if err != nil || c.Web.Password != "" || c.Web.Port != 8080 {
		t.Fatalf("a web section of the test's own: %+v %v", c.Web, err)
	}
}
