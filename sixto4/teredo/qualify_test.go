package teredo

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
	"gateway/sixto4/teredo/wire"
)

// fakeServer answers qualification RSs on 127.0.0.1:port and
// 127.0.0.2:port (primary and secondary) as a Teredo server would; its
// hooks let a test make it lie or stay silent.
type fakeServer struct {
	primary netip.Addr
	port    uint16

	mu sync.Mutex // guards the fields below
	// drop, if set, says whether to ignore the n-th RS (from 1) that
	// reached address at.
	drop func(at netip.Addr, n int) bool
	// origin, if set, replaces the origin the server would report.
	origin func(at netip.Addr, seen netip.AddrPort) netip.AddrPort
	// badNonceFirst sends an RA with a wrong nonce before each real one.
	badNonceFirst bool
	// restricted drops the answers to cone RSs, as a NAT without
	// endpoint-independent filtering would.
	restricted bool
	count      map[netip.Addr]int
	from       map[netip.AddrPort]int // RSs by sender
	// secret, if set, is the client's: RSs that it does not
	// authenticate are ignored, RAs are authenticated with raSecret
	// (nil: secret).
	secret, raSecret []byte
	ids              [][]byte // the client identifiers of authentic RSs
}

func newFakeServer(t *testing.T) *fakeServer {
	return newFakeServerAt(t, netip.MustParseAddr("127.0.0.1"), 0)
}

// newFakeServerAt starts a fake server on primary and primary+1, port
// (zero: any free one).
func newFakeServerAt(t *testing.T, primary netip.Addr, port uint16) *fakeServer {
	t.Helper()
	c1, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(primary, port)))
	if err != nil {
		testenv.Skip(t, "cannot bind %v:%d: %v", primary, port, err)
	}
	port = uint16(c1.LocalAddr().(*net.UDPAddr).Port)
	c2, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(primary.Next(), port)))
	if err != nil {
		c1.Close()
		testenv.Skip(t, "cannot bind %v:%d: %v", primary.Next(), port, err)
	}
	s := &fakeServer{primary: primary, port: port, count: map[netip.Addr]int{}, from: map[netip.AddrPort]int{}}
	var wg sync.WaitGroup
	for _, c := range [][2]*net.UDPConn{{c1, c2}, {c2, c1}} {
		wg.Add(1)
		go func() { defer wg.Done(); s.serve(c[0], c[1]) }()
	}
	t.Cleanup(func() { c1.Close(); c2.Close(); wg.Wait() })
	return s
}

// serve answers RSs that reach c; it answers cone RSs from other (RFC
// 4380 section 5.2.1).
func (s *fakeServer) serve(c, other *net.UDPConn) {
	at := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		rs, err := wire.ParseQualificationRS(buf[:n])
		if err != nil || rs.Auth == nil {
			continue
		}
		s.mu.Lock()
		s.count[at]++
		s.from[from]++
		drop := s.drop != nil && s.drop(at, s.count[at])
		origin := from
		if s.origin != nil {
			origin = s.origin(at, from)
		}
		bad := s.badNonceFirst
		if rs.Cone() {
			drop = drop || s.restricted
		}
		secret, raSecret := s.secret, s.raSecret
		if raSecret == nil {
			raSecret = secret
		}
		if secret != nil {
			if p, err := wire.ParsePacket(buf[:n]); err != nil || !wire.Authentic(secret, p) {
				drop = true
			} else {
				s.ids = append(s.ids, p.Auth.ClientID)
			}
		}
		s.mu.Unlock()
		if drop {
			continue
		}
		out := c
		if rs.Cone() {
			out = other
		}
		pio, _ := wire.PrefixInformation{
			Prefix:        netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0, 0, s.primary.As4()[0], s.primary.As4()[1], s.primary.As4()[2], s.primary.As4()[3]}), 64),
			ValidLifetime: time.Hour,
		}.Option()
		ra := wire.QualificationRA{
			Auth:   rs.Auth,
			Origin: origin,
			Src:    netip.MustParseAddr("fe80::8000:f227:bec9:1c9a"),
			Dst:    rs.Src,
			RA:     wire.RouterAdvertisement{Options: []wire.Option{pio}},
		}
		if bad {
			wrong := ra
			wrong.Auth = &wire.Auth{Nonce: [8]byte{0xde, 0xad}}
			wrong.Origin = netip.MustParseAddrPort("192.0.2.66:6666")
			b, _ := wrong.Append(nil)
			out.WriteToUDPAddrPort(b, from)
		}
		b, err := ra.Append(nil)
		if err != nil {
			panic(err)
		}
		if raSecret != nil {
			p, _ := wire.ParsePacket(b)
			p.Auth = &wire.Auth{ClientID: rs.Auth.ClientID, Nonce: rs.Auth.Nonce}
			p.Auth.AuthValue, _ = wire.AuthValue(raSecret, p)
			b, _ = p.Append(nil)
		}
		out.WriteToUDPAddrPort(b, from)
	}
}

func (s *fakeServer) set(fn func()) { s.mu.Lock(); fn(); s.mu.Unlock() }

func clientConn(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestQualify(t *testing.T) {
	natted := netip.MustParseAddrPort("198.51.100.7:40000")
	other := netip.MustParseAddrPort("198.51.100.7:40001")
	for _, c := range []struct {
		name     string
		setup    func(s *fakeServer)
		wantErr  error
		wantCone bool
		mapped   netip.AddrPort // zero: the client's own socket
		sends    int            // RSs the primary must have seen
		coneTest bool
	}{
		{name: "cone test answered", coneTest: true, setup: func(s *fakeServer) {
			s.origin = func(netip.Addr, netip.AddrPort) netip.AddrPort { return natted }
		}, mapped: natted, wantCone: true, sends: 1},
		{name: "cone test unanswered: restricted", coneTest: true, setup: func(s *fakeServer) {
			s.origin = func(netip.Addr, netip.AddrPort) netip.AddrPort { return natted }
			s.restricted = true
		}, mapped: natted, sends: 4},
		{name: "no NAT: cone", wantCone: true, sends: 1},
		{name: "behind a NAT: restricted", setup: func(s *fakeServer) {
			s.origin = func(netip.Addr, netip.AddrPort) netip.AddrPort { return natted }
		}, mapped: natted, sends: 1},
		{name: "symmetric NAT", setup: func(s *fakeServer) {
			s.origin = func(at netip.Addr, _ netip.AddrPort) netip.AddrPort {
				if at == s.primary {
					return natted
				}
				return other
			}
		}, wantErr: ErrSymmetric, sends: 1},
		{name: "two RSs lost", setup: func(s *fakeServer) {
			s.drop = func(at netip.Addr, n int) bool { return at == s.primary && n <= 2 }
		}, wantCone: true, sends: 3},
		{name: "silent server", setup: func(s *fakeServer) {
			s.drop = func(netip.Addr, int) bool { return true }
		}, wantErr: ErrNoAnswer, sends: 3},
		{name: "silent secondary", setup: func(s *fakeServer) {
			s.drop = func(at netip.Addr, _ int) bool { return at != s.primary }
		}, wantErr: ErrNoAnswer, sends: 1},
		{name: "RA with another nonce ignored", setup: func(s *fakeServer) { s.badNonceFirst = true }, wantCone: true, sends: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			s := newFakeServer(t)
			if c.setup != nil {
				s.set(func() { c.setup(s) })
			}
			conn := clientConn(t)
			q := Qualifier{Timeout: 100 * time.Millisecond, Port: s.port, ConeTest: c.coneTest}
			got, err := q.Qualify(context.Background(), conn, s.primary)
			s.set(func() {
				if n := s.count[s.primary]; n != c.sends {
					t.Errorf("primary saw %d RSs, want %d", n, c.sends)
				}
			})
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("Qualify = %+v, %v; want %v", got, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mapped := c.mapped
			if !mapped.IsValid() {
				mapped = conn.LocalAddr().(*net.UDPAddr).AddrPort()
			}
			if got.Mapped != mapped || got.Cone != c.wantCone || got.Server != s.primary {
				t.Errorf("got %+v; want mapped %v, cone %v", got, mapped, c.wantCone)
			}
			a, err := wire.ParseAddress(got.Address)
			if err != nil {
				t.Fatal(err)
			}
			if a.Server != s.primary || a.Mapped != mapped || a.Cone() != c.wantCone || a.Flags != got.Flags || a.Flags&^(wire.FlagCone|wire.FlagsRandom) != 0 {
				t.Errorf("address %v decodes to %+v", got.Address, a)
			}
		})
	}
}

func TestQualifyCancel(t *testing.T) {
	leakcheck.Check(t)
	s := newFakeServer(t)
	s.set(func() { s.drop = func(netip.Addr, int) bool { return true } })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := Qualifier{Timeout: 10 * time.Second, Port: s.port}.Qualify(ctx, clientConn(t), s.primary)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Qualify = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

func TestRefresh(t *testing.T) {
	leakcheck.Check(t)
	s := newFakeServer(t)
	conn := clientConn(t)
	qz := Qualifier{Timeout: 100 * time.Millisecond, Port: s.port}
	q, err := qz.Qualify(context.Background(), conn, s.primary)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := qz.Refresh(context.Background(), conn, q); err != nil || got != q {
		t.Fatalf("Refresh = %+v, %v; want unchanged %+v", got, err, q)
	}
	moved := netip.MustParseAddrPort("198.51.100.9:1234")
	s.set(func() { s.origin = func(netip.Addr, netip.AddrPort) netip.AddrPort { return moved } })
	got, err := qz.Refresh(context.Background(), conn, q)
	if !errors.Is(err, ErrMappingChanged) || got.Mapped != moved {
		t.Fatalf("Refresh after the mapping moved = %+v, %v; want ErrMappingChanged with %v", got, err, moved)
	}
}
