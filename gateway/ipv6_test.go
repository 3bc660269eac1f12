package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"gateway/internal/facts"
)

type fakeTunnel struct {
	prefix  netip.Prefix
	def     bool
	stopped bool
	done    chan struct{}
}

func (f *fakeTunnel) Prefix() netip.Prefix     { return f.prefix }
func (f *fakeTunnel) SetDefault(on bool) error { f.def = on; return nil }
func (f *fakeTunnel) Stats() any               { return nil }
func (f *fakeTunnel) Stop()                    { f.stopped = true }
func (f *fakeTunnel) Done() <-chan struct{}    { return f.done }
func sixto4Of(a netip.Addr) netip.Prefix {
	b := a.As4()
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x02, b[0], b[1], b[2], b[3]}), 48)
}

type fakeTeredo struct {
	addr    netip.Addr
	stopped bool
	done    chan struct{}
	notify  func()
}

func (f *fakeTeredo) Addr() netip.Addr      { return f.addr }
func (f *fakeTeredo) Status() any           { return nil }
func (f *fakeTeredo) Stop()                 { f.stopped = true }
func (f *fakeTeredo) Done() <-chan struct{} { return f.done }

type fakeRelay struct {
	stopped bool
	done    chan struct{}
}

func (f *fakeRelay) Status() any           { return nil }
func (f *fakeRelay) Stop()                 { f.stopped = true }
func (f *fakeRelay) Done() <-chan struct{} { return f.done }

// uplinkWorld records what the uplink manager did to the system.
type uplinkWorld struct {
	tunnels   []*fakeTunnel
	teredos   []*fakeTeredo
	relays    []*fakeRelay
	failStart bool
	addrs     []netip.Prefix // the router's addresses on the LAN
	routes    []netip.Prefix // sources of default routes into Teredo
	outside   string
	proto41   bool
	tunnel    facts.Tunnel
	published []facts.IPv6
}

// running is the fake's last Teredo client if it runs.
func (w *uplinkWorld) teredo() *fakeTeredo {
	if n := len(w.teredos); n > 0 && !w.teredos[n-1].stopped {
		return w.teredos[n-1]
	}
	return nil
}

func (w *uplinkWorld) relay() *fakeRelay {
	if n := len(w.relays); n > 0 && !w.relays[n-1].stopped {
		return w.relays[n-1]
	}
	return nil
}

func newTestUplink(cfg *IPv6Config) (*uplink, *uplinkWorld) {
	w := &uplinkWorld{}
	u := &uplink{cfg: cfg, lan: "br-lan", ula: netip.MustParsePrefix("fd00:aaaa:bbbb:cccc::/64"), tname: "6to4",
		deps: uplinkDeps{
			startTunnel: func(local netip.Addr) (tunnel6to4, error) {
				if w.failStart {
					return nil, errors.New("no raw sockets")
				}
				t := &fakeTunnel{prefix: sixto4Of(local), done: make(chan struct{})}
				w.tunnels = append(w.tunnels, t)
				return t, nil
			},
			addAddr: func(_ string, p netip.Prefix) error { w.addrs = append(w.addrs, p); return nil },
			delAddr: func(_ string, p netip.Prefix) error {
				w.addrs = slices.DeleteFunc(w.addrs, func(q netip.Prefix) bool { return q == p })
				return nil
			},
			startTeredo: func(_ netip.Addr, notify func()) teredoTunnel {
				f := &fakeTeredo{done: make(chan struct{}), notify: notify}
				w.teredos = append(w.teredos, f)
				return f
			},
			startRelay: func() (teredoRelay, error) {
				f := &fakeRelay{done: make(chan struct{})}
				w.relays = append(w.relays, f)
				return f, nil
			},
			addRoute: func(iface string, dst, src netip.Prefix) error {
				if iface != teredoIface || dst.Bits() != 0 {
					return errors.New("not the default route into Teredo")
				}
				w.routes = append(w.routes, src)
				return nil
			},
			delRoute: func(_ string, _, src netip.Prefix) error {
				w.routes = slices.DeleteFunc(w.routes, func(q netip.Prefix) bool { return q == src })
				return nil
			},
			tunnels: func(t facts.Tunnel) { w.outside, w.proto41, w.tunnel = t.Iface, t.SixToFour, t },
			publish: func(f facts.IPv6) { w.published = append(w.published, f) },
			log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		}}
	return u, w
}

func (w *uplinkWorld) last() facts.IPv6 { return w.published[len(w.published)-1] }

func TestUplinkFollowsWANAndDelegation(t *testing.T) {
	pf := netip.MustParsePrefix
	u, w := newTestUplink(defaultIPv6())
	// Nothing yet: a ULA, no default route, the router on it.
	u.apply(uplinkState{})
	if got := w.last(); got.Uplink != UplinkNone || got.Prefix != u.ula {
		t.Fatalf("no uplink: %+v", got)
	}
	// A public WAN address: 6to4, subnet 1, MTU 1480, the default route in.
	pub := facts.WAN{Addr: netip.MustParseAddr("203.0.113.2"), Kind: facts.KindPublic}
	u.apply(uplinkState{WAN: pub})
	if got := w.last(); got.Uplink != UplinkSixto4 || got.Prefix != pf("2002:cb00:7102:1::/64") || got.MTU != 1480 {
		t.Fatalf("6to4: %+v", got)
	}
	if len(w.tunnels) != 1 || !w.tunnels[0].def || w.outside != "6to4" || !w.proto41 {
		t.Fatalf("tunnel %+v outside %q proto41 %v", w.tunnels, w.outside, w.proto41)
	}
	if !slices.Equal(w.addrs, []netip.Prefix{pf("2002:cb00:7102:1::1/64")}) {
		t.Fatalf("router addresses %v", w.addrs)
	}
	// Applying the same state again changes nothing.
	n := len(w.published)
	u.apply(uplinkState{WAN: pub})
	if len(w.published) != n || len(w.tunnels) != 1 {
		t.Fatalf("a repeated state published again or restarted the tunnel")
	}
	// A new WAN address: a new tunnel, the LAN renumbered, the old address gone.
	pub2 := facts.WAN{Addr: netip.MustParseAddr("203.0.113.9"), Kind: facts.KindPublic}
	u.apply(uplinkState{WAN: pub2})
	if !w.tunnels[0].stopped || len(w.tunnels) != 2 || w.last().Prefix != pf("2002:cb00:7109:1::/64") {
		t.Fatalf("after a WAN change: %+v %+v", w.tunnels, w.last())
	}
	if !slices.Equal(w.addrs, []netip.Prefix{pf("2002:cb00:7109:1::1/64")}) {
		t.Fatalf("router addresses %v", w.addrs)
	}
	// A delegation wins and stops 6to4.
	valid := time.Now().Add(time.Hour)
	dl := delegation{Prefix: pf("2001:db8:1::/56"), Valid: valid, Preferred: valid.Add(-time.Minute)}
	u.apply(uplinkState{WAN: pub2, Delegated: dl})
	if got := w.last(); got.Uplink != UplinkPD || got.Prefix != pf("2001:db8:1:1::/64") || !got.Valid.Equal(valid) || got.MTU != 0 {
		t.Fatalf("delegated: %+v", got)
	}
	if !w.tunnels[1].stopped || w.outside != "" || w.proto41 {
		t.Fatalf("6to4 still on with a delegation: outside %q proto41 %v", w.outside, w.proto41)
	}
	// Withdrawn: back to 6to4.
	u.apply(uplinkState{WAN: pub2})
	if w.last().Uplink != UplinkSixto4 || len(w.tunnels) != 3 {
		t.Fatalf("after the withdrawal: %+v", w.last())
	}
	// A private WAN address (double NAT): no 6to4; the static prefix.
	u.cfg.Static = pf("2001:db8:77::/48")
	u.apply(uplinkState{WAN: facts.WAN{Addr: netip.MustParseAddr("192.168.0.2"), Kind: facts.KindPrivate}})
	if got := w.last(); got.Uplink != UplinkStatic || got.Prefix != pf("2001:db8:77:1::/64") || !w.tunnels[2].stopped {
		t.Fatalf("private WAN: %+v", got)
	}
	u.close()
	if len(w.addrs) != 0 {
		t.Fatalf("close left %v", w.addrs)
	}
}

func TestUplinkTunnelFailure(t *testing.T) {
	u, w := newTestUplink(defaultIPv6())
	w.failStart = true
	pub := facts.WAN{Addr: netip.MustParseAddr("203.0.113.2"), Kind: facts.KindPublic}
	u.apply(uplinkState{WAN: pub})
	if w.last().Uplink != UplinkNone || u.status().Error == "" {
		t.Fatalf("a tunnel that cannot start: %+v %+v", w.last(), u.status())
	}
	// Not retried on every event for the same address...
	w.failStart = false
	u.apply(uplinkState{WAN: pub})
	if len(w.tunnels) != 0 {
		t.Fatal("retried on the same address")
	}
	// ...but on a new one.
	u.apply(uplinkState{WAN: facts.WAN{Addr: netip.MustParseAddr("203.0.113.3"), Kind: facts.KindPublic}})
	if len(w.tunnels) != 1 || w.last().Uplink != UplinkSixto4 {
		t.Fatalf("new address: %+v", w.last())
	}
	// A tunnel that ends by itself is noticed and not restarted in a loop.
	close(w.tunnels[0].done)
	u.apply(uplinkState{WAN: facts.WAN{Addr: netip.MustParseAddr("203.0.113.3"), Kind: facts.KindPublic}})
	if w.last().Uplink != UplinkNone || len(w.tunnels) != 1 || w.outside != "" {
		t.Fatalf("after the tunnel ended: %+v, %d tunnels", w.last(), len(w.tunnels))
	}
}

func TestUplinkSixto4Off(t *testing.T) {
	cfg := defaultIPv6()
	cfg.SixToFour = false
	u, w := newTestUplink(cfg)
	u.apply(uplinkState{WAN: facts.WAN{Addr: netip.MustParseAddr("203.0.113.2"), Kind: facts.KindPublic}})
	if len(w.tunnels) != 0 || w.last().Uplink != UplinkNone {
		t.Fatalf("sixto4 0 still tunnels: %+v", w.last())
	}
}

func TestRunUplinkWaitsForDelegation(t *testing.T) {
	pub := facts.WAN{Addr: netip.MustParseAddr("203.0.113.2"), Kind: facts.KindPublic}
	run := func(t *testing.T, dl *delegation) *uplinkWorld {
		u, w := newTestUplink(defaultIPv6())
		published := make(chan facts.IPv6, 10)
		u.deps.publish = func(f facts.IPv6) { published <- f }
		wans := make(chan facts.WAN, 1)
		dls := make(chan delegation, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- runUplink(ctx, u, wans, dls, 300*time.Millisecond) }()
		defer func() { cancel(); <-done }()
		wans <- pub
		select {
		case f := <-published:
			t.Fatalf("published %+v before the delegation's grace ended", f)
		case <-time.After(100 * time.Millisecond):
		}
		if dl != nil {
			dls <- *dl
		}
		select {
		case f := <-published:
			w.published = append(w.published, f)
		case <-time.After(2 * time.Second):
			t.Fatal("nothing published")
		}
		return w
	}
	t.Run("a delegation in time is the first choice", func(t *testing.T) {
		w := run(t, &delegation{Prefix: netip.MustParsePrefix("2001:db8:1::/56"), Valid: time.Now().Add(time.Hour)})
		if w.last().Uplink != UplinkPD || len(w.tunnels) != 0 {
			t.Fatalf("first choice %+v with %d tunnels; want the delegation and no 6to4", w.last(), len(w.tunnels))
		}
	})
	t.Run("none: 6to4 after the grace", func(t *testing.T) {
		if w := run(t, nil); w.last().Uplink != UplinkSixto4 {
			t.Fatalf("first choice %+v; want 6to4", w.last())
		}
	})
}

func TestUplinkTeredoFallback(t *testing.T) {
	cfg := defaultIPv6()
	cfg.TeredoServers = []string{"198.51.100.30"}
	u, w := newTestUplink(cfg)
	pub := facts.WAN{Addr: netip.MustParseAddr("203.0.113.2"), Kind: facts.KindPublic}
	cgnat := facts.WAN{Addr: netip.MustParseAddr("100.64.0.2"), Kind: facts.KindShared}

	// A public WAN: 6to4, and the relay for 2001::/32 beside it.
	u.apply(uplinkState{WAN: pub})
	if w.last().Uplink != UplinkSixto4 || w.teredo() != nil || w.relay() == nil || w.tunnel.TeredoRelay != teredoRelayIface {
		t.Fatalf("public WAN: %+v, teredo %v, relay %v, tunnels %+v", w.last(), w.teredo(), w.relay(), w.tunnel)
	}
	// The WAN turns private: 6to4 stops, the relay gives its port to the
	// client, the LAN gets the ULA with no default route until the client
	// qualifies.
	u.apply(uplinkState{WAN: cgnat})
	f := w.teredo()
	if f == nil || w.relay() != nil || !w.tunnels[0].stopped {
		t.Fatalf("private WAN: teredo %v relay %v", f, w.relay())
	}
	if got := w.last(); got.Uplink != UplinkNone || got.Prefix != u.ula {
		t.Fatalf("before qualification: %+v", got)
	}
	if w.tunnel != (facts.Tunnel{Teredo: teredoIface}) || len(w.routes) != 0 {
		t.Fatalf("before qualification: tunnels %+v routes %v", w.tunnel, w.routes)
	}
	// Qualified: Teredo is the uplink, the ULA routed into it, MTU 1280.
	f.addr = netip.MustParseAddr("2001:0:c633:641e::1")
	u.apply(uplinkState{WAN: cgnat})
	if w.tunnel != (facts.Tunnel{Teredo: teredoIface, TeredoAddr: f.addr}) {
		t.Fatalf("qualified: tunnels %+v", w.tunnel)
	}
	if got := w.last(); got.Uplink != UplinkTeredo || got.Prefix != u.ula || got.MTU != 1280 {
		t.Fatalf("qualified: %+v", got)
	}
	if !slices.Equal(w.routes, []netip.Prefix{u.ula}) {
		t.Fatalf("routes %v, want the default from %v", w.routes, u.ula)
	}
	if a := advertOf(w.last()); !a.Default {
		t.Fatal("the RA does not offer a default route over Teredo")
	}
	// Another private address: a new client (the mapping is gone).
	other := facts.WAN{Addr: netip.MustParseAddr("100.64.0.3"), Kind: facts.KindShared}
	u.apply(uplinkState{WAN: other})
	if !f.stopped || w.teredo() == nil || w.teredo() == f || len(w.routes) != 0 {
		t.Fatalf("new WAN address: old stopped %v, clients %d, routes %v", f.stopped, len(w.teredos), w.routes)
	}
	// A delegation beats Teredo: the client stops, the relay comes back.
	dl := delegation{Prefix: netip.MustParsePrefix("2001:db8:1::/56"), Valid: time.Now().Add(time.Hour)}
	u.apply(uplinkState{WAN: other, Delegated: dl})
	if w.last().Uplink != UplinkPD || w.teredo() != nil || w.relay() == nil {
		t.Fatalf("with a delegation: %+v teredo %v relay %v", w.last(), w.teredo(), w.relay())
	}
	// Back to public: 6to4 again, no client.
	u.apply(uplinkState{WAN: pub})
	if w.last().Uplink != UplinkSixto4 || w.teredo() != nil || w.relay() == nil {
		t.Fatalf("public again: %+v", w.last())
	}
	u.close()
	if w.relay() != nil || w.tunnel != (facts.Tunnel{}) {
		t.Fatalf("after close: relay %v tunnels %+v", w.relay(), w.tunnel)
	}
}

func TestUplinkTeredoFailureAndOff(t *testing.T) {
	cgnat := facts.WAN{Addr: netip.MustParseAddr("100.64.0.2"), Kind: facts.KindShared}
	t.Run("no server: no client", func(t *testing.T) {
		u, w := newTestUplink(defaultIPv6())
		u.apply(uplinkState{WAN: cgnat})
		if len(w.teredos) != 0 || w.last().Uplink != UplinkNone {
			t.Fatalf("%d clients, %+v", len(w.teredos), w.last())
		}
	})
	t.Run("a client that ends is not restarted on the same address", func(t *testing.T) {
		cfg := defaultIPv6()
		cfg.TeredoServers = []string{"teredo.example"}
		u, w := newTestUplink(cfg)
		u.apply(uplinkState{WAN: cgnat})
		close(w.teredos[0].done)
		u.apply(uplinkState{WAN: cgnat})
		if len(w.teredos) != 1 || w.teredo() != nil || w.tunnel.Teredo != "" {
			t.Fatalf("%d clients, tunnels %+v", len(w.teredos), w.tunnel)
		}
	})
	t.Run("a static prefix beats Teredo; relay off", func(t *testing.T) {
		cfg := defaultIPv6()
		cfg.TeredoServers = []string{"198.51.100.30"}
		cfg.Static = netip.MustParsePrefix("2001:db8:5::/48")
		cfg.TeredoRelay = false
		u, w := newTestUplink(cfg)
		u.apply(uplinkState{WAN: cgnat})
		if len(w.teredos) != 0 || len(w.relays) != 0 || w.last().Uplink != UplinkStatic {
			t.Fatalf("%d clients %d relays, %+v", len(w.teredos), len(w.relays), w.last())
		}
	})
}
