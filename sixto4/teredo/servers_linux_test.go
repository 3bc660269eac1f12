package teredo

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
	"gateway/sixto4/teredo/wire"
)

// TestFailoverWithMiredo: two miredo-servers on the internet (the
// world's at 203.0.113.10 and another at 203.0.113.12), our client
// behind masquerade preferring the second. It qualifies with it, checks
// the world's as a standby, and when the second server is stopped,
// fails over to the world's and takes an address naming it.
func TestFailoverWithMiredo(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	leakcheck.Check(t)
	w := newWorld(t)
	testenv.Device(t, "/dev/net/tun")
	second := netip.MustParseAddr("203.0.113.12")
	w.inet.ip(t, "addr add 203.0.113.12/32 dev lo")
	w.inet.ip(t, "addr add 203.0.113.13/32 dev lo")
	conf := filepath.Join(w.dir, "second-server.conf")
	if err := os.WriteFile(conf, []byte("ServerBindAddress "+second.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("ip", "netns", "exec", string(w.inet), "miredo-server", "-f", "-c", conf, "-p", filepath.Join(w.dir, "second-server.pid"))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { srv.Wait(); close(waited) }()
	stop := func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-waited
		}
	}
	t.Cleanup(stop)
	qualifyFrom(t, w.open, "192.0.2.2:0", false) // the world's server is up

	c := startClient(t, w.home, Config{Name: "teredo0", Servers: []netip.Addr{second, miredoServer}, Logger: testLogger(t),
		Qualifier:       Qualifier{Timeout: 300 * time.Millisecond, Attempts: 3},
		RefreshInterval: time.Second, HealthInterval: 500 * time.Millisecond})
	waitFor(t, "qualification", func() bool { return c.Addr().IsValid() })
	if st := c.State(); st.Server != second {
		t.Fatalf("qualified with %v, want %v first", st.Server, second)
	}
	waitFor(t, "the standby's check", func() bool { return c.State().Servers[1].Healthy })

	start := time.Now()
	stop()
	deadline := time.Now().Add(10 * time.Second)
	for c.State().Server != miredoServer || !c.Addr().IsValid() {
		if time.Now().After(deadline) {
			t.Fatalf("no failover in 10 s: %+v", c.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := c.State()
	t.Logf("failed over in %v: %+v", time.Since(start), st)
	if a, _ := wire.ParseAddress(st.Addr); a.Server != miredoServer {
		t.Errorf("address %v names %v, want %v", st.Addr, a.Server, miredoServer)
	}
	if st.Servers[0].Healthy || !st.Servers[1].Healthy {
		t.Errorf("servers %+v; want the stopped one unhealthy", st.Servers)
	}
	if out := w.home.exec(t, "ip", "-6", "addr", "show", "dev", "teredo0"); !strings.Contains(out, st.Addr.String()+"/32") {
		t.Errorf("teredo0 lacks %v/32:\n%s", st.Addr, out)
	}
}
