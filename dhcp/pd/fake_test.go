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

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	testMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
	serverDUID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}}
	otherDUID  = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}}
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
	m  *dhcpv6.Message
}

// server answers what the client sends with answer (nil: no answer), and
// records it. It runs until the test's context ends.
type server struct {
	mu     sync.Mutex
	got    []seen
	answer func(m *dhcpv6.Message) [][]byte
}

func (s *server) run(ctx context.Context, f *fakeNet) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-f.toServer:
			m, err := dhcpv6.MessageFromBytes(b)
			if err != nil {
				panic(err) // the client sent garbage
			}
			s.mu.Lock()
			s.got = append(s.got, seen{time.Now(), m})
			answer := s.answer
			s.mu.Unlock()
			if answer == nil {
				continue
			}
			for _, r := range answer(m) {
				f.toClient <- r
			}
		}
	}
}

func (s *server) setAnswer(a func(m *dhcpv6.Message) [][]byte) {
	s.mu.Lock()
	s.answer = a
	s.mu.Unlock()
}

func (s *server) messages() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.got...)
}

func (s *server) count(t dhcpv6.MessageType) int {
	n := 0
	for _, g := range s.messages() {
		if g.m.MessageType == t {
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
	status           *dhcpv6.OptStatusCode // in IA_PD, instead of the prefix
	duid             dhcpv6.DUID           // nil: serverDUID
}

// standard answers Solicit with Advertise and Request, Renew and Rebind
// with Reply, giving g; Release gets a Reply.
func standard(g grant) func(m *dhcpv6.Message) [][]byte {
	return func(m *dhcpv6.Message) [][]byte {
		typ := dhcpv6.MessageTypeReply
		if m.MessageType == dhcpv6.MessageTypeSolicit {
			typ = dhcpv6.MessageTypeAdvertise
		}
		if m.MessageType == dhcpv6.MessageTypeRelease {
			r := &dhcpv6.Message{MessageType: typ, TransactionID: m.TransactionID}
			r.AddOption(dhcpv6.OptClientID(m.Options.ClientID()))
			r.AddOption(dhcpv6.OptServerID(serverDUID))
			return [][]byte{r.ToBytes()}
		}
		return [][]byte{g.reply(m, typ)}
	}
}

func (g grant) reply(m *dhcpv6.Message, typ dhcpv6.MessageType) []byte {
	r := &dhcpv6.Message{MessageType: typ, TransactionID: m.TransactionID}
	r.AddOption(dhcpv6.OptClientID(m.Options.ClientID()))
	duid := g.duid
	if duid == nil {
		duid = serverDUID
	}
	r.AddOption(dhcpv6.OptServerID(duid))
	pd := &dhcpv6.OptIAPD{IaId: m.Options.OneIAPD().IaId, T1: g.t1, T2: g.t2}
	if g.status != nil {
		pd.Options.Add(g.status)
	} else {
		pd.Options.Add(&dhcpv6.OptIAPrefix{PreferredLifetime: g.preferred, ValidLifetime: g.valid,
			Prefix: &net.IPNet{IP: g.prefix.Addr().AsSlice(), Mask: net.CIDRMask(g.prefix.Bits(), 128)}})
	}
	r.AddOption(pd)
	if na := m.Options.OneIANA(); na != nil && g.addr.IsValid() {
		o := &dhcpv6.OptIANA{IaId: na.IaId, T1: g.t1, T2: g.t2}
		o.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: g.addr.AsSlice(), PreferredLifetime: g.preferred, ValidLifetime: g.valid})
		r.AddOption(o)
	}
	return r.ToBytes()
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

func newHarness(t *testing.T, dir string, cfg Config, answer func(*dhcpv6.Message) [][]byte) *harness {
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
