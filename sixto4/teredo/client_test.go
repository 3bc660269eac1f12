package teredo

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"gateway/internal/leakcheck"
	"gateway/sixto4/teredo/wire"
)

// fakeDev is a TUN device: what the kernel would route into it goes on
// fromKernel, what the client writes comes out on toKernel. Like the
// kernel's it refuses a write without room for the virtio header.
type fakeDev struct {
	fromKernel, toKernel chan []byte
	closed               chan struct{}
	once                 sync.Once
}

func newFakeDev() *fakeDev {
	return &fakeDev{fromKernel: make(chan []byte, 16), toKernel: make(chan []byte, 16), closed: make(chan struct{})}
}

func (d *fakeDev) File() *os.File           { return nil }
func (d *fakeDev) MTU() (int, error)        { return MTU, nil }
func (d *fakeDev) Name() (string, error)    { return "faketeredo", nil }
func (d *fakeDev) Events() <-chan tun.Event { return nil }
func (d *fakeDev) BatchSize() int           { return 4 }
func (d *fakeDev) Close() error             { d.once.Do(func() { close(d.closed) }); return nil }

func (d *fakeDev) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	case p := <-d.fromKernel:
		sizes[0] = copy(bufs[0][offset:], p)
		return 1, nil
	}
}

func (d *fakeDev) Write(bufs [][]byte, offset int) (int, error) {
	if offset < 10 {
		return 0, fmt.Errorf("fake: offset %d leaves no room for the virtio header", offset)
	}
	for _, b := range bufs {
		select {
		case <-d.closed:
			return 0, os.ErrClosed
		case d.toKernel <- append([]byte(nil), b[offset:]...):
		}
	}
	return len(bufs), nil
}

// fakeRoutes keeps the device's addresses as the kernel would: adding
// one twice replaces it, deleting a missing one fails.
type fakeRoutes struct {
	mu    sync.Mutex
	addrs map[netip.Prefix]bool
}

func (r *fakeRoutes) addAddress(p netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs[p] = true
	return nil
}

func (r *fakeRoutes) delAddress(p netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.addrs[p] {
		return fmt.Errorf("fake: no address %v", p)
	}
	delete(r.addrs, p)
	return nil
}

func (r *fakeRoutes) close() error { return nil }

func (r *fakeRoutes) list() []netip.Prefix {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Prefix
	for p := range r.addrs {
		out = append(out, p)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in 5 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClientRequalifies: the client qualifies, puts its address on the
// device, and when a refresh shows another mapping, qualifies again and
// swaps the address; a packet to a multicast destination is dropped as
// no-relay.
func TestClientRequalifies(t *testing.T) {
	leakcheck.Check(t)
	s := newFakeServer(t)
	mapped := netip.MustParseAddrPort("198.51.100.7:40000")
	var mu sync.Mutex
	s.set(func() {
		s.origin = func(netip.Addr, netip.AddrPort) netip.AddrPort { mu.Lock(); defer mu.Unlock(); return mapped }
	})
	dev, rt := newFakeDev(), &fakeRoutes{addrs: map[netip.Prefix]bool{}}
	c, err := newWithDeps(Config{
		Servers: []netip.Addr{s.primary}, Logger: testLogger(t),
		Qualifier:       Qualifier{Port: s.port, Timeout: 200 * time.Millisecond},
		RefreshInterval: 200 * time.Millisecond,
	}, dev, clientConn(t), rt)
	if err != nil {
		t.Fatal(err)
	}
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
	first := c.State()
	if first.Mapped != mapped || first.Cone || !first.Qualified {
		t.Errorf("state %+v; want restricted, mapped %v", first, mapped)
	}
	if got := rt.list(); len(got) != 1 || got[0] != netip.PrefixFrom(first.Addr, 32) {
		t.Errorf("device addresses %v, want %v/32", got, first.Addr)
	}

	native := packet(t, first.Addr, netip.MustParseAddr("ff0e::1"), 58, 8)
	dev.fromKernel <- native
	waitFor(t, "no-relay drop", func() bool { return c.Stats().Drops[NoRelay.String()] == 1 })

	mu.Lock()
	mapped = netip.MustParseAddrPort("198.51.100.7:40001")
	mu.Unlock()
	waitFor(t, "new address", func() bool { return c.Addr().IsValid() && c.Addr() != first.Addr })
	second := c.State()
	if a, _ := wire.ParseAddress(second.Addr); a.Mapped != mapped || second.Mapped != mapped {
		t.Errorf("after the change: state %+v, address maps to %v; want %v", second, a.Mapped, mapped)
	}
	if got := rt.list(); len(got) != 1 || got[0] != netip.PrefixFrom(second.Addr, 32) {
		t.Errorf("device addresses %v, want only %v/32", got, second.Addr)
	}
	if q := c.Stats().Qualifications; q != 2 {
		t.Errorf("%d qualifications, want 2", q)
	}
}

// testLogger sends the client's log to t.Log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	h := &tlogHandler{t: t, done: new(atomic.Bool)}
	t.Cleanup(func() { h.done.Store(true) })
	return slog.New(h)
}

type tlogHandler struct {
	t     *testing.T
	done  *atomic.Bool
	attrs []slog.Attr
}

func (h *tlogHandler) Enabled(context.Context, slog.Level) bool { return !h.done.Load() }
func (h *tlogHandler) Handle(_ context.Context, r slog.Record) error {
	if h.done.Load() {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.t.Log(b.String())
	return nil
}
func (h *tlogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tlogHandler{t: h.t, done: h.done, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...)}
}
func (h *tlogHandler) WithGroup(string) slog.Handler { return h }
