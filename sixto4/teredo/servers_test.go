package teredo

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"gateway/internal/leakcheck"
	"gateway/sixto4/teredo/wire"
)

// TestFailover: three servers, the second silent from the start. The
// client qualifies with the first; its standby checks find the third
// answering and the second not; when the first stops answering
// refreshes, the client goes straight to the third, never soliciting
// the second from the tunnel's socket.
func TestFailover(t *testing.T) {
	leakcheck.Check(t)
	s1 := newFakeServer(t)
	silent := newFakeServerAt(t, netip.MustParseAddr("127.0.0.3"), s1.port)
	s2 := newFakeServerAt(t, netip.MustParseAddr("127.0.0.5"), s1.port)
	dropAll := func(netip.Addr, int) bool { return true }
	silent.set(func() { silent.drop = dropAll })

	conn := clientConn(t)
	dev, rt := newFakeDev(), &fakeRoutes{addrs: map[netip.Prefix]bool{}}
	c, err := newWithDeps(Config{
		Servers: []netip.Addr{s1.primary, silent.primary, s2.primary}, Logger: testLogger(t),
		Qualifier:       Qualifier{Port: s1.port, Timeout: 100 * time.Millisecond, Attempts: 2},
		RefreshInterval: 200 * time.Millisecond,
		HealthInterval:  100 * time.Millisecond,
	}, dev, conn, rt)
	if err != nil {
		t.Fatal(err)
	}
	c.probe = clientConn(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitFor(t, "qualification", func() bool { return c.Addr().IsValid() })
	if st := c.State(); st.Server != s1.primary {
		t.Fatalf("qualified with %v, want the first server %v", st.Server, s1.primary)
	}
	waitFor(t, "standby checks", func() bool {
		sv := c.State().Servers
		return len(sv) == 3 && sv[2].Healthy && sv[2].RTT > 0 && !sv[1].Checked.IsZero() && !sv[1].Healthy
	})

	s1.set(func() { s1.drop = dropAll })
	waitFor(t, "failover", func() bool { return c.State().Server == s2.primary && c.Addr().IsValid() })
	st := c.State()
	if a, _ := wire.ParseAddress(st.Addr); a.Server != s2.primary {
		t.Errorf("address %v names server %v, want %v", st.Addr, a.Server, s2.primary)
	}
	if sv := st.Servers; sv[0].Healthy || !sv[2].Healthy || sv[2].LastOK.IsZero() {
		t.Errorf("servers %+v; want the first unhealthy, the third healthy", sv)
	}
	tunnel := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	silent.set(func() {
		if n := silent.from[tunnel]; n != 0 {
			t.Errorf("the silent server got %d RSs from the tunnel's socket; failover should have skipped it", n)
		}
	})
	// The first server back: its checks see it healthy again.
	s1.set(func() { s1.drop = nil })
	waitFor(t, "first server healthy again", func() bool { return c.State().Servers[0].Healthy })
}

func TestPickServer(t *testing.T) {
	a, b, x := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	now := time.Unix(1e9, 0)
	for _, tc := range []struct {
		name        string
		servers     []ServerState
		failed      netip.Addr
		want        netip.Addr
		wantHealthy bool
	}{
		{"start: the first", []ServerState{{Addr: a}, {Addr: b}, {Addr: x}}, netip.Addr{}, a, false},
		{"first failed: an unchecked one", []ServerState{{Addr: a, Checked: now}, {Addr: b}, {Addr: x}}, a, b, false},
		{"a healthy one before an unchecked one", []ServerState{{Addr: a, Checked: now}, {Addr: b}, {Addr: x, Healthy: true, Checked: now}}, a, x, true},
		{"all down: round robin", []ServerState{{Addr: a, Checked: now}, {Addr: b, Checked: now}, {Addr: x, Checked: now}}, x, a, false},
		{"the primary preferred when healthy", []ServerState{{Addr: a, Healthy: true, Checked: now}, {Addr: b, Healthy: true, Checked: now}}, netip.Addr{}, a, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{servers: tc.servers}
			got, healthy := c.pickServer(tc.failed)
			if got != tc.want || healthy != tc.wantHealthy {
				t.Errorf("pickServer(%v) = %v, %v; want %v, %v", tc.failed, got, healthy, tc.want, tc.wantHealthy)
			}
		})
	}
}
