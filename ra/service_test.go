package ra

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdlayher/ndp"

	"gateway/internal/leakcheck"
)

// fakeConn is an in-memory ICMPv6 socket: tests put solicitations in and
// take the RAs out, through the wire format as the kernel would.
type fakeConn struct {
	fail   atomic.Value // error: what WriteRA returns, once set
	in     chan rsPacket
	out    chan sentRA
	closed chan struct{}
	once   sync.Once
}

type rsPacket struct {
	b   []byte
	src netip.Addr
	hop int
}

type sentRA struct {
	ra  *ndp.RouterAdvertisement
	dst netip.Addr
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan rsPacket), out: make(chan sentRA, 1000), closed: make(chan struct{})}
}

func (f *fakeConn) ReadRS(b []byte) (int, int, netip.Addr, error) {
	select {
	case p := <-f.in:
		return copy(b, p.b), p.hop, p.src, nil
	case <-f.closed:
		return 0, 0, netip.Addr{}, net.ErrClosed
	}
}

func (f *fakeConn) WriteRA(b []byte, dst netip.Addr) error {
	if err, ok := f.fail.Load().(error); ok {
		return err
	}
	select {
	case <-f.closed:
		return net.ErrClosed
	default:
	}
	back, err := ndp.ParseMessage(b)
	if err != nil {
		return err
	}
	f.out <- sentRA{back.(*ndp.RouterAdvertisement), dst}
	return nil
}

func (f *fakeConn) HardwareAddr() net.HardwareAddr { return mac }
func (f *fakeConn) Close() error                   { f.once.Do(func() { close(f.closed) }); return nil }

// drain returns the RAs sent so far.
func (f *fakeConn) drain() []sentRA {
	var got []sentRA
	for {
		select {
		case s := <-f.out:
			got = append(got, s)
		default:
			return got
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// startService runs a Service on a fake conn inside the current synctest
// bubble; stop cancels it and returns Run's error.
func startService(t *testing.T, dir string, cfg Config, a *Advert) (s *Service, c *fakeConn, stop func() error) {
	t.Helper()
	c = newFakeConn()
	cfg.Iface, cfg.StateDir = "br-lan", dir
	s, err := newService(cfg, func() (conn, error) { return c, nil })
	if err != nil {
		t.Fatal(err)
	}
	if a != nil {
		s.Set(*a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	synctest.Wait()
	return s, c, func() error { cancel(); return <-done }
}

func pioOf(t *testing.T, ra *ndp.RouterAdvertisement, p netip.Prefix) *ndp.PrefixInformation {
	t.Helper()
	for _, o := range ra.Options {
		if pi, ok := o.(*ndp.PrefixInformation); ok && pi.Prefix == p.Addr() {
			return pi
		}
	}
	return nil
}

func TestServiceAnswersSolicitations(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		a := &Advert{Prefixes: []Prefix{{Prefix: prefixA}}, Default: true}
		s, c, stop := startService(t, dir, Config{RDNSS: []netip.Addr{netip.MustParseAddr("2001:db8::53")}, Logger: testLogger(t)}, a)

		first := c.drain()
		if len(first) != 1 || first[0].dst != allNodes {
			t.Fatalf("at start: %+v, want one multicast RA", first)
		}
		if pi := pioOf(t, first[0].ra, prefixA); pi == nil || pi.PreferredLifetime != PreferredLimit {
			t.Errorf("first RA's PIO %+v", pi)
		}

		rs := marshalRS(t, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: net.HardwareAddr{2, 0, 0, 0, 0, 2}})
		c.in <- rsPacket{rs, hostLL, 255}
		synctest.Wait()
		got := c.drain()
		if len(got) != 1 || got[0].dst != hostLL || got[0].ra.RouterLifetime == 0 || pioOf(t, got[0].ra, prefixA) == nil {
			t.Fatalf("answer to an RS from %v: %+v, want one unicast RA with the prefix", hostLL, got)
		}

		// The same host again: its burst, then rate-limited.
		for range sourceBurst {
			c.in <- rsPacket{rs, hostLL, 255}
		}
		synctest.Wait()
		if got := c.drain(); len(got) != sourceBurst-1 {
			t.Errorf("%d answers to %d more RSs at once, want %d", len(got), sourceBurst, sourceBurst-1)
		}
		// Malformed: hop limit 64 (from off-link), and garbage.
		c.in <- rsPacket{rs, hostLL, 64}
		c.in <- rsPacket{[]byte{133, 0, 0}, hostLL, 255}
		synctest.Wait()
		if got := c.drain(); len(got) != 0 {
			t.Errorf("sent %+v to a rate-limited and malformed RSs", got)
		}

		// From ::, answered by multicast, not before MIN_DELAY_BETWEEN_RAS
		// after the first RA and at most MAX_RA_DELAY_TIME later.
		c.in <- rsPacket{marshalRS(t), netip.IPv6Unspecified(), 255}
		start := time.Now()
		synctest.Wait()
		var mc sentRA
		for {
			if got := c.drain(); len(got) > 0 {
				mc = got[0]
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if mc.dst != allNodes || time.Since(start) > MinDelayBetweenRAs+MaxRADelay {
			t.Errorf("answer to RS from :: went to %v after %v", mc.dst, time.Since(start))
		}

		want := Stats{RAsSent: 2 + sourceBurst, RSAnswered: 1 + sourceBurst, RSDropped: 1, RSMalformed: 2}
		if got := s.Stats(); got != want {
			t.Errorf("stats %+v, want %+v", got, want)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServiceUnsolicitedTimers(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		_, c, stop := startService(t, dir, Config{}, &Advert{Prefixes: []Prefix{{Prefix: prefixA}}})
		start := time.Now()
		var times []time.Duration
		for time.Since(start) < time.Hour {
			time.Sleep(time.Second)
			for range c.drain() {
				times = append(times, time.Since(start).Truncate(time.Second))
			}
		}
		stop()
		if len(times) < 3 {
			t.Fatalf("RAs at %v", times)
		}
		for i := 1; i < len(times); i++ {
			gap := times[i] - times[i-1]
			lo, hi := 200*time.Second, 601*time.Second
			if i < MaxInitialAdverts {
				lo, hi = MinDelayBetweenRAs, MaxInitialInterval+time.Second
			}
			if gap < lo || gap > hi {
				t.Errorf("RA %d came %v after the one before, want %v-%v (all: %v)", i, gap, lo, hi, times)
			}
		}
	})
}

func TestServiceRenumbering(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s, c, stop := startService(t, dir, Config{}, &Advert{Prefixes: []Prefix{{Prefix: prefixA}}, Default: true})
		time.Sleep(time.Minute)
		c.drain()
		s.Set(Advert{Prefixes: []Prefix{{Prefix: prefixB}}, Default: true})
		synctest.Wait()
		got := c.drain()
		if len(got) != 1 {
			t.Fatalf("after Set: %d RAs, want one at once", len(got))
		}
		a, b := pioOf(t, got[0].ra, prefixA), pioOf(t, got[0].ra, prefixB)
		if a == nil || a.PreferredLifetime != 0 || a.ValidLifetime != ValidLimit {
			t.Errorf("old prefix %+v, want preferred 0 valid %v", a, ValidLimit)
		}
		if b == nil || b.PreferredLifetime != PreferredLimit {
			t.Errorf("new prefix %+v", b)
		}

		time.Sleep(ValidLimit / 2)
		c.drain()
		c.in <- rsPacket{marshalRS(t), hostLL, 255}
		synctest.Wait()
		got = c.drain()
		if a := pioOf(t, got[0].ra, prefixA); a == nil || a.PreferredLifetime != 0 || a.ValidLifetime != ValidLimit/2 {
			t.Errorf("old prefix half-way %+v, want valid %v", a, ValidLimit/2)
		}

		time.Sleep(ValidLimit/2 + time.Second)
		c.in <- rsPacket{marshalRS(t), hostLL, 255}
		synctest.Wait()
		got = c.drain()
		if a := pioOf(t, got[len(got)-1].ra, prefixA); a != nil {
			t.Errorf("old prefix still advertised after it expired: %+v", a)
		}
		saved, err := loadState(filepath.Join(dir, stateFile))
		if err != nil || len(saved) != 1 || saved[0].Prefix != prefixB {
			t.Errorf("state file after expiry: %+v, %v; want only the new prefix", saved, err)
		}
		stop()
	})
}

func TestServiceRemembersAcrossRestart(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		// The first life: prefix A, then killed (no Run, no shutdown:
		// what is on disk after Set is all there is).
		s1, err := newService(Config{Iface: "br-lan", StateDir: dir}, func() (conn, error) { return nil, errors.New("unused") })
		if err != nil {
			t.Fatal(err)
		}
		s1.Set(Advert{Prefixes: []Prefix{{Prefix: prefixA}}, Default: true})

		time.Sleep(10 * time.Minute)
		_, c, stop := startService(t, dir, Config{}, &Advert{Prefixes: []Prefix{{Prefix: prefixB}}, Default: true})
		got := c.drain()
		if len(got) == 0 {
			t.Fatal("no RA at start")
		}
		if a := pioOf(t, got[0].ra, prefixA); a == nil || a.PreferredLifetime != 0 || a.ValidLifetime != ValidLimit {
			t.Errorf("remembered prefix after restart: %+v, want deprecated, valid %v", a, ValidLimit)
		}
		if b := pioOf(t, got[0].ra, prefixB); b == nil || b.PreferredLifetime == 0 {
			t.Errorf("new prefix %+v", b)
		}
		stop()
		// A third life, without any Set yet: A is still counting down.
		time.Sleep(time.Hour)
		_, c, stop = startService(t, dir, Config{}, nil)
		got = c.drain()
		if a := pioOf(t, got[0].ra, prefixA); a == nil || a.ValidLifetime != ValidLimit-time.Hour {
			t.Errorf("remembered withdrawn prefix after a second restart: %+v, want valid %v", a, ValidLimit-time.Hour)
		}
		stop()
	})
}

func TestServiceFinalRA(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		_, c, stop := startService(t, dir, Config{}, &Advert{Prefixes: []Prefix{{Prefix: prefixA}}, Default: true})
		c.drain()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		got := c.drain()
		if len(got) != 1 || got[0].dst != allNodes {
			t.Fatalf("at shutdown: %+v, want one multicast RA", got)
		}
		if got[0].ra.RouterLifetime != 0 {
			t.Errorf("final router lifetime %v", got[0].ra.RouterLifetime)
		}
		if a := pioOf(t, got[0].ra, prefixA); a == nil || a.PreferredLifetime != 0 {
			t.Errorf("final PIO %+v, want preferred 0", a)
		}
	})
}

func TestServiceWaitsForInterface(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeConn()
		var tries atomic.Int32
		s, err := newService(Config{Iface: "br-lan", StateDir: dir}, func() (conn, error) {
			if tries.Add(1) < 5 {
				return nil, errors.New("no link-local address")
			}
			return c, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(10 * time.Second)
		if n := tries.Load(); n != 5 || len(c.drain()) == 0 {
			t.Errorf("%d tries, no RA after the interface came up", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	bad := Config{MTU: 100, MinInterval: time.Second, RDNSS: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		DNSSL: []string{"lan", "bücher.example"}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	// A Unicode domain is refused here, not by every RA failing to
	// encode: DNSSL carries ASCII names (xn-- A-labels), ndpwire does no
	// IDNA.
	for _, w := range []string{"interface", "state directory", "MTU", "MinInterval", "RDNSS", "bücher"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
}

func TestULA(t *testing.T) {
	dir := t.TempDir()
	p, err := ULA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Bits() != 64 || p.Addr().As16()[0] != 0xfd || p.Masked() != p {
		t.Errorf("ULA %v", p)
	}
	again, err := ULA(dir)
	if err != nil || again != p {
		t.Errorf("second call: %v, %v; want %v", again, err, p)
	}
	other, _ := ULA(t.TempDir())
	if other == p {
		t.Errorf("two state directories, one ULA %v", p)
	}
	os.WriteFile(filepath.Join(dir, ulaFile), []byte("2001:db8::/64\n"), 0o644)
	if _, err := ULA(dir); err == nil {
		t.Error("accepted a non-ULA in the file")
	}
}

func TestServiceRenewalIsQuiet(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		day := time.Now().Add(24 * time.Hour)
		s, c, stop := startService(t, dir, Config{}, &Advert{Prefixes: []Prefix{{Prefix: prefixA, Valid: day, Preferred: day}}, Default: true})
		time.Sleep(time.Minute) // past the fast initial RAs
		c.drain()
		path := filepath.Join(dir, stateFile)
		before, _ := os.Stat(path)
		time.Sleep(time.Second)
		s.Set(Advert{Prefixes: []Prefix{{Prefix: prefixA, Valid: day.Add(time.Second), Preferred: day.Add(time.Second)}}, Default: true})
		synctest.Wait()
		if got := c.drain(); len(got) != 0 {
			t.Errorf("a deadline moved by a second sent %d RAs", len(got))
		}
		if after, _ := os.Stat(path); !after.ModTime().Equal(before.ModTime()) {
			t.Error("a deadline moved by a second was written")
		}
		s.Set(Advert{Prefixes: []Prefix{{Prefix: prefixA, Valid: day.Add(time.Hour), Preferred: day.Add(time.Hour)}}, Default: true})
		synctest.Wait()
		if got := c.drain(); len(got) != 0 {
			t.Errorf("a renewal sent %d RAs at once", len(got))
		}
		saved, err := loadState(path)
		if err != nil || len(saved) != 1 || !saved[0].Valid.Equal(day.Add(time.Hour)) {
			t.Errorf("after a renewal the state file holds %+v, %v", saved, err)
		}
		stop()
	})
}

func TestServiceEndsWhenInterfaceGone(t *testing.T) {
	if !gone(syscall.ENODEV) {
		t.Skip("no interface errors known on this OS")
	}
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeConn()
		s, err := newService(Config{Iface: "br-lan", StateDir: dir}, func() (conn, error) { return c, nil })
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(context.Background()) }()
		synctest.Wait()
		c.fail.Store(error(syscall.ENODEV)) // the bridge was deleted
		time.Sleep(time.Hour)
		select {
		case err := <-done:
			if !errors.Is(err, syscall.ENODEV) {
				t.Errorf("Run: %v, want ENODEV", err)
			}
		default:
			t.Fatal("Run goes on with a socket whose interface is gone")
		}
	})
}
