package pd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gateway/dhcp/dhcp6"
)

var (
	testMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
	serverDUID = dhcp6.DUID{0, 3, 0, 1, 0x02, 0, 0, 0, 0, 0x01} // DUID-LL
	otherDUID  = dhcp6.DUID{0, 2, 0, 0, 0x09, 0xbf, 1, 2, 3}    // DUID-EN
	testPrefix = netip.MustParsePrefix("2001:db8:1::/56")
	testAddr   = netip.MustParseAddr("2001:db8:0:1::100")
)

// fakeNet is the WAN link of a unit test: the client's Conn and Link on
// one side, a scripted server on the other.
type fakeNet struct {
	toServer chan []byte
	toClient chan []byte
	closed   chan struct{}
	once     sync.Once

	mu    sync.Mutex
	addrs map[netip.Prefix][2]time.Duration // on the link: preferred, valid
}

func newFakeNet() *fakeNet {
	return &fakeNet{toServer: make(chan []byte, 64), toClient: make(chan []byte, 64),
		closed: make(chan struct{}), addrs: make(map[netip.Prefix][2]time.Duration)}
}

func (f *fakeNet) open(iface string) (Conn, Link, error) { return f, f, nil }

func (f *fakeNet) Send(b []byte) error {
	select {
	case <-f.closed:
		return net.ErrClosed
	default:
	}
	f.toServer <- append([]byte(nil), b...)
	return nil
}

func (f *fakeNet) Recv(b []byte) (int, error) {
	select {
	case p := <-f.toClient:
		return copy(b, p), nil
	case <-f.closed:
		return 0, net.ErrClosed
	}
}

// Close closes the socket; the Link's Close does nothing (it is the same
// value).
func (f *fakeNet) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeNet) HardwareAddr() (net.HardwareAddr, error) { return testMAC, nil }

func (f *fakeNet) SetAddr(a netip.Prefix, preferred, valid time.Duration) error {
	if !a.IsValid() || preferred > valid || valid <= 0 {
		return errors.New("fake: invalid address or lifetimes")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs[a] = [2]time.Duration{preferred, valid}
	return nil
}

func (f *fakeNet) DelAddr(a netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.addrs, a)
	return nil
}

func (f *fakeNet) hasAddr(a netip.Prefix) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.addrs[a]
	return ok
}

// seen is a message the fake server received, and when.
type seen struct {
	at time.Time
	m  msg
}

// msg is a message the client sent.
type msg struct{ dhcp6.Message }

// prefixes returns the prefixes of the message's first IA_PD.
func (m msg) prefixes() []dhcp6.IAPrefix {
	if len(m.IAPD) == 0 {
		return nil
	}
	return m.IAPD[0].Prefixes
}

// server answers what the client sends with answer (nil: no answer), and
// records it. It runs until the test's context ends.
type server struct {
	mu     sync.Mutex
	got    []seen
	answer func(m msg) [][]byte
}

func (s *server) run(ctx context.Context, f *fakeNet) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-f.toServer:
			m, err := dhcp6.ParseMessage(b)
			if err != nil {
				panic(err) // the client sent garbage
			}
			s.mu.Lock()
			s.got = append(s.got, seen{time.Now(), msg{m}})
			answer := s.answer
			s.mu.Unlock()
			if answer == nil {
				continue
			}
			for _, r := range answer(msg{m}) {
				f.toClient <- r
			}
		}
	}
}

func (s *server) setAnswer(a func(m msg) [][]byte) {
	s.mu.Lock()
	s.answer = a
	s.mu.Unlock()
}

func (s *server) messages() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.got...)
}

func (s *server) count(t dhcp6.MessageType) int {
	n := 0
	for _, g := range s.messages() {
		if g.m.Type == t {
			n++
		}
	}
	return n
}

// grant is what a standard server gives.
type grant struct {
	prefix           netip.Prefix
	preferred, valid time.Duration
	t1, t2           time.Duration
	addr             netip.Addr
	status           *dhcp6.Status // in IA_PD, instead of the prefix
	duid             dhcp6.DUID    // nil: serverDUID
}

// standard answers Solicit with Advertise and Request, Renew and Rebind
// with Reply, giving g; Release gets a Reply.
func standard(g grant) func(m msg) [][]byte {
	return func(m msg) [][]byte {
		typ := dhcp6.Reply
		if m.Type == dhcp6.Solicit {
			typ = dhcp6.Advertise
		}
		if m.Type == dhcp6.Release {
			return [][]byte{encode(dhcp6.Message{Type: typ, TransactionID: m.TransactionID, ClientID: m.ClientID, ServerID: serverDUID})}
		}
		return [][]byte{g.reply(m, typ)}
	}
}

func encode(m dhcp6.Message) []byte {
	b, err := m.Append(nil)
	if err != nil {
		panic(err) // a test builds a message the codec refuses
	}
	return b
}

func (g grant) reply(m msg, typ dhcp6.MessageType) []byte {
	r := dhcp6.Message{Type: typ, TransactionID: m.TransactionID, ClientID: m.ClientID, ServerID: g.duid}
	if r.ServerID == nil {
		r.ServerID = serverDUID
	}
	pd := dhcp6.IAPD{IAID: m.IAPD[0].IAID, T1: g.t1, T2: g.t2, Status: g.status}
	if g.status == nil {
		pd.Prefixes = []dhcp6.IAPrefix{{Preferred: g.preferred, Valid: g.valid, Prefix: g.prefix}}
	}
	r.IAPD = []dhcp6.IAPD{pd}
	if len(m.IANA) > 0 && g.addr.IsValid() {
		r.IANA = []dhcp6.IANA{{IAID: m.IANA[0].IAID, T1: g.t1, T2: g.t2,
			Addrs: []dhcp6.IAAddr{{Addr: g.addr, Preferred: g.preferred, Valid: g.valid}}}}
	}
	return encode(r)
}

// harness runs a client against a fake server inside a synctest bubble.
type harness struct {
	t      *testing.T
	net    *fakeNet
	srv    *server
	c      *Client
	dir    string
	cancel context.CancelFunc
	done   chan error
	notes  chan Lease
}

func newHarness(t *testing.T, dir string, cfg Config, answer func(msg) [][]byte) *harness {
	t.Helper()
	h := &harness{t: t, net: newFakeNet(), srv: &server{answer: answer}, dir: dir,
		done: make(chan error, 1), notes: make(chan Lease, 64)}
	cfg.Iface, cfg.StateDir = "wan", dir
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := newWithDeps(cfg, func(l Lease) { h.notes <- l }, h.net.open)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	sctx, scancel := context.WithCancel(context.Background())
	t.Cleanup(scancel)
	go h.srv.run(sctx, h.net)
	go func() { h.done <- c.Run(ctx) }()
	return h
}

// stop cancels Run and returns its error.
func (h *harness) stop() error {
	h.cancel()
	return <-h.done
}

// note returns the next notification, or fails after d of bubble time.
func (h *harness) note(d time.Duration, what string) Lease {
	h.t.Helper()
	select {
	case l := <-h.notes:
		return l
	case <-time.After(d):
		h.t.Fatalf("no notification within %v: %s", d, what)
		return Lease{}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}
