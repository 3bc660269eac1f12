package sixto4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/tun"

	"gateway/internal/leakcheck"
)

// fakeDev is a TUN device: what the kernel would route into it is put on
// fromKernel, what the tunnel writes comes out on toKernel. Like the
// kernel's it refuses a write without room for the virtio header.
type fakeDev struct {
	fromKernel chan []byte
	toKernel   chan []byte
	closed     chan struct{}
	once       sync.Once
}

func newFakeDev() *fakeDev {
	return &fakeDev{fromKernel: make(chan []byte, 64), toKernel: make(chan []byte, 256), closed: make(chan struct{})}
}

func (d *fakeDev) File() *os.File           { return nil }
func (d *fakeDev) MTU() (int, error)        { return DefaultMTU, nil }
func (d *fakeDev) Name() (string, error)    { return "fake6to4", nil }
func (d *fakeDev) Events() <-chan tun.Event { return nil }
func (d *fakeDev) BatchSize() int           { return 8 }
func (d *fakeDev) Close() error             { d.once.Do(func() { close(d.closed) }); return nil }

func (d *fakeDev) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	case p := <-d.fromKernel:
		if len(p) > len(bufs[0])-offset {
			return 0, fmt.Errorf("fake: %d bytes overflow the buffer", len(p))
		}
		sizes[0] = copy(bufs[0][offset:], p)
		return 1, nil
	}
}

func (d *fakeDev) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	if offset < 10 {
		return 0, errors.New("fake: no room for the virtio-net header")
	}
	n := 0
	for _, b := range bufs {
		d.toKernel <- bytes.Clone(b[offset:])
		n += len(b) - offset
	}
	return n, nil
}

// sent is a packet the tunnel sent over IPv4.
type sent struct {
	to      netip.Addr
	payload []byte
}

// fakeConn is the raw socket: wire packets (with IPv4 header) put on in
// are received; what is sent comes out on out. Sends to unreachable fail
// as the kernel's do (sendmmsg stops at the first failure).
type fakeConn struct {
	in          chan []byte
	out         chan sent
	closed      chan struct{}
	once        sync.Once
	unreachable netip.Addr
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte, 64), out: make(chan sent, 256), closed: make(chan struct{})}
}

func (c *fakeConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

func (c *fakeConn) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	case p := <-c.in:
		ms[0].N = copy(ms[0].Buffers[0], p)
		return 1, nil
	}
}

func (c *fakeConn) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	for i, m := range ms {
		to, _ := netip.AddrFromSlice(m.Addr.(*net.IPAddr).IP)
		if to == c.unreachable {
			if i == 0 {
				return 0, syscall.EHOSTUNREACH
			}
			return i, nil
		}
		c.out <- sent{to, bytes.Clone(m.Buffers[0])}
	}
	return len(ms), nil
}

// fakeRoutes keeps the device's routes as the kernel would and refuses to
// delete one it does not have.
type fakeRoutes struct {
	mu     sync.Mutex
	addrs  []netip.Prefix
	routes map[string]bool
}

func (r *fakeRoutes) addAddress(p netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = append(r.addrs, p)
	return nil
}

func (r *fakeRoutes) route(add bool, dst, src netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := dst.String()
	if src.IsValid() {
		key += " from " + src.String()
	}
	if r.routes == nil {
		r.routes = map[string]bool{}
	}
	if !add && !r.routes[key] {
		return fmt.Errorf("fake: no route %s: %w", key, syscall.ESRCH)
	}
	if add {
		r.routes[key] = true
	} else {
		delete(r.routes, key)
	}
	return nil
}

func (r *fakeRoutes) close() error { return nil }

func (r *fakeRoutes) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l []string
	for k := range r.routes {
		l = append(l, k)
	}
	return l
}

// fixedClock is a clock that does not move: rate limits do not refill.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                                  { return c.t }
func (c fixedClock) NewTimer(d time.Duration) *time.Timer            { return time.NewTimer(d) }
func (c fixedClock) AfterFunc(d time.Duration, f func()) *time.Timer { return time.AfterFunc(d, f) }

type fakes struct {
	dev  *fakeDev
	conn *fakeConn
	rt   *fakeRoutes
	t    *Tunnel
}

func startFake(t *testing.T, cfg Config) *fakes {
	t.Helper()
	leakcheck.Check(t)
	f := &fakes{dev: newFakeDev(), conn: newFakeConn(), rt: &fakeRoutes{}}
	cfg.AllowDocumentation = true
	cfg.Clock = fixedClock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	tn, err := newWithDeps(cfg, f.dev, f.conn, f.rt)
	if err != nil {
		t.Fatal(err)
	}
	f.t = tn
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tn.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

func none[T any](t *testing.T, c <-chan T, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(50 * time.Millisecond):
	}
}

// waitStats waits until cond holds of the Stats.
func waitStats(t *testing.T, tn *Tunnel, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := tn.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never got there: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTunnelSetsUpAddressAndRoutes(t *testing.T) {
	f := startFake(t, Config{Local: siteA, Relay: relay4})
	if diff := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("2002:c000:202::1/48")}, f.rt.addrs, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("addresses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"2002::/16"}, f.rt.list()); diff != "" {
		t.Fatalf("routes (-want +got):\n%s", diff)
	}
	for _, on := range []bool{true, true, false, false} {
		if err := f.t.SetDefault(on); err != nil {
			t.Fatalf("SetDefault(%v): %v", on, err)
		}
	}
	f.t.SetDefault(true)
	got := f.rt.list()
	if len(got) != 2 || !f.rt.routes["::/0 from 2002:c000:202::/48"] {
		t.Fatalf("routes with the default on: %v", got)
	}
}

func TestTunnelEncapsulates(t *testing.T) {
	f := startFake(t, Config{Local: siteA, Relay: relay4})
	toB := ipv6("2002:c000:202:1::10", "2002:c633:6402::1", 100)
	toNative := ipv6("2002:c000:202:1::10", native, 10)
	f.dev.fromKernel <- toB
	f.dev.fromKernel <- toNative
	if s := recv(t, f.conn.out, "packet to B"); s.to != siteB || !bytes.Equal(s.payload, toB) {
		t.Fatalf("sent %v % x", s.to, s.payload)
	}
	if s := recv(t, f.conn.out, "packet to the relay"); s.to != relay4 || !bytes.Equal(s.payload, toNative) {
		t.Fatalf("sent %v % x", s.to, s.payload)
	}
	waitStats(t, f.t, func(s Stats) bool {
		return s.OutPackets == 2 && s.OutBytes == uint64(len(toB)+len(toNative))
	})
}

func TestTunnelAnswersTooBig(t *testing.T) {
	f := startFake(t, Config{Local: siteA, Relay: relay4})
	big := ipv6("2002:c000:202:1::10", "2002:c633:6402::1", DefaultMTU) // 48 bytes over
	f.dev.fromKernel <- big
	reply := recv(t, f.dev.toKernel, "Packet Too Big")
	none(t, f.conn.out, "packet sent")
	if reply[6] != protoICMPv6 || reply[40] != icmpTooBig || binary.BigEndian.Uint32(reply[44:]) != DefaultMTU {
		t.Fatalf("not a Packet Too Big for MTU 1480: % x", reply[:48])
	}
	if netip.AddrFrom16([16]byte(reply[8:24])) != f.t.Addr() || !bytes.Equal(reply[24:40], big[8:24]) {
		t.Fatal("Packet Too Big not from us to the sender")
	}
	waitStats(t, f.t, func(s Stats) bool { return s.Drops[TooBig] == 1 && s.ICMPErrors == 1 && s.OutPackets == 0 })
}

func TestTunnelWithoutRelayAnswersUnreachable(t *testing.T) {
	f := startFake(t, Config{Local: siteA})
	f.dev.fromKernel <- ipv6("2002:c000:202:1::10", native, 10)
	reply := recv(t, f.dev.toKernel, "unreachable")
	if reply[40] != icmpUnreachable || reply[41] != 0 {
		t.Fatalf("not a no-route unreachable: % x", reply[40:48])
	}
	waitStats(t, f.t, func(s Stats) bool { return s.Drops[NoRelay] == 1 && s.ICMPErrors == 1 })
}

func TestTunnelRateLimitsICMP(t *testing.T) {
	f := startFake(t, Config{Local: siteA}) // the clock stands still: no refill
	const n = 60
	for range n {
		f.dev.fromKernel <- ipv6("2002:c000:202:1::10", native, 10)
	}
	s := waitStats(t, f.t, func(s Stats) bool { return s.Drops[NoRelay] == n })
	if s.ICMPErrors != 50 || s.Drops[ICMPLimited] != n-50 {
		t.Fatalf("%d ICMPv6 errors, %d limited; want 50 and %d", s.ICMPErrors, s.Drops[ICMPLimited], n-50)
	}
}

func TestTunnelSkipsAnUnreachableDestination(t *testing.T) {
	f := startFake(t, Config{Local: siteA, Relay: relay4})
	f.conn.unreachable = siteB
	f.dev.fromKernel <- ipv6("2002:c000:202:1::10", "2002:c633:6402::1", 10)
	f.dev.fromKernel <- ipv6("2002:c000:202:1::10", native, 10)
	if s := recv(t, f.conn.out, "packet to the relay"); s.to != relay4 {
		t.Fatalf("sent to %v", s.to)
	}
	waitStats(t, f.t, func(s Stats) bool { return s.Drops[SendFailed] == 1 && s.OutPackets == 1 && s.OutBytes == 58 })
}

func TestTunnelDecapsulates(t *testing.T) {
	f := startFake(t, Config{Local: siteA, Relay: relay4})
	good := ipv6("2002:c633:6402::1", "2002:c000:202:1::10", 30)
	f.conn.in <- appendIPv4(nil, siteB, siteA, good)
	f.conn.in <- appendIPv4(nil, relay4, siteA, good) // source does not match
	if got := recv(t, f.dev.toKernel, "inner packet"); !bytes.Equal(got, good) {
		t.Fatalf("handed to the kernel % x", got)
	}
	none(t, f.dev.toKernel, "second packet")
	s := waitStats(t, f.t, func(s Stats) bool { return s.Drops[SrcNotOuter] == 1 })
	want := Stats{InPackets: 1, InBytes: uint64(len(good)), Drops: map[Reason]uint64{SrcNotOuter: 1}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Fatalf("stats (-want +got):\n%s", diff)
	}
}
