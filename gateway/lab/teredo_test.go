package lab_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/internal/testenv"
	"gateway/sixto4/teredo/wire"
)

// teredoLab is a lab with the Teredo world running.
func teredoLab(t *testing.T) *lab.Lab {
	t.Helper()
	testenv.Tool(t, "miredo", "miredo")
	testenv.Tool(t, "miredo-server", "miredo-server")
	testenv.Tool(t, "nft", "nftables")
	testenv.Device(t, "/dev/net/tun")
	l := labtest.New(t)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []string{lab.TeredoServerProc, lab.TeredoRelayProc, lab.TeredoPeerProc} {
				if pr, ok := l.Process(p); ok {
					b, _ := os.ReadFile(pr.Log)
					t.Logf("%s (alive %v):\n%s", p, pr.Alive, b)
				}
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := l.StartTeredo(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Teredo world started in %v", time.Since(start))
	return l
}

// Site C's Miredo client qualifies with the lab's server behind natc's
// masquerade, and the native IPv6 host pub reaches its Teredo address
// through the Miredo relay that the ISP routes 2001::/32 to.
func TestTeredoWorld(t *testing.T) {
	l := teredoLab(t)
	start := time.Now()
	addr, err := l.TeredoAddr(context.Background(), lab.TeredoPeer)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wire.ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tpeer took %v in %v: %+v", addr, time.Since(start), a)
	if a.Server != lab.TeredoServerAddr.Addr() || a.Mapped.Addr() != lab.NATCWANAddr.Addr() {
		t.Errorf("tpeer's address names server %v, mapped %v; want %v behind natc's %v",
			a.Server, a.Mapped, lab.TeredoServerAddr.Addr(), lab.NATCWANAddr.Addr())
	}
	if a.Cone() {
		t.Errorf("cone flag behind plain masquerade: %+v", a)
	}

	t.Run("pub to tpeer over TCP through the relay", func(t *testing.T) {
		ln := listenIn(t, l, lab.TeredoPeer, net.JoinHostPort(addr.String(), "0"))
		serve(t, ln, func(c net.Conn) { c.Write([]byte("hello from tpeer")) })
		c, err := dialFrom(l, lab.Public, ln.Addr().String(), 10*time.Second)
		if err != nil {
			t.Fatalf("pub cannot reach tpeer at %v: %v", ln.Addr(), err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 64)
		n, _ := c.Read(b)
		if string(b[:n]) != "hello from tpeer" {
			t.Errorf("read %q", b[:n])
		}
		if src := netip.MustParseAddrPort(c.LocalAddr().String()).Addr(); src != lab.PublicAddrs6[0].Addr() && src != lab.PublicAddrs6[1].Addr() {
			t.Errorf("pub dialled from %v, want one of its native %v", src, lab.PublicAddrs6)
		}
	})
}

// Site B's WAN goes private behind the ISP's CGNAT and back: gwb reaches
// the Teredo server in both states, from the ISP's address while
// private, and Status counts either state as up.
func TestSiteBWAN(t *testing.T) {
	l := labtest.New(t)
	testenv.Tool(t, "nft", "nftables")
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		cgnat bool
		src   netip.Addr // what the server sees
	}{
		{"private", true, lab.InetAddr.Addr()},
		{"private again: no change", true, lab.InetAddr.Addr()},
		{"public", false, lab.SiteBWANAddr.Addr()},
		{"private after public", true, lab.InetAddr.Addr()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.SetSiteBWAN(ctx, tt.cgnat); err != nil {
				t.Fatal(err)
			}
			if l.SiteBCGNAT() != tt.cgnat {
				t.Errorf("SiteBCGNAT = %v, want %v", l.SiteBCGNAT(), tt.cgnat)
			}
			if got := udpSource(t, l, lab.GatewayB, lab.TeredoServer, lab.TeredoServerAddr.Addr()); got != tt.src {
				t.Errorf("the server saw gwb's datagram from %v, want %v", got, tt.src)
			}
			st := l.Status()
			if !st.Up {
				t.Errorf("status not up: %q", st.Problems)
			}
			want := lab.SiteBWANAddr
			if tt.cgnat {
				want = lab.SiteBCGNATAddr
			}
			for _, h := range st.Hosts {
				if h.Name != lab.GatewayB {
					continue
				}
				for _, f := range h.Interfaces {
					if f.Name == lab.GatewayWAN && (len(f.Addrs) < 1 || f.Addrs[0] != want) {
						t.Errorf("gwb's WAN holds %v, want %v only", f.Addrs, want)
					}
				}
			}
		})
	}
}

// udpSource sends a datagram from host from to addr in host to and
// returns the source address it arrives from.
func udpSource(t *testing.T, l *lab.Lab, from, to string, addr netip.Addr) netip.Addr {
	t.Helper()
	var srv *net.UDPConn
	if err := l.Do(to, func() (err error) {
		srv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cl *net.UDPConn
	if err := l.Do(from, func() (err error) {
		cl, err = net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	b := make([]byte, 16)
	for range 10 {
		cl.Write([]byte("hello"))
		srv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, src, err := srv.ReadFromUDPAddrPort(b)
		if err == nil {
			return src.Addr().Unmap()
		}
		if !strings.Contains(err.Error(), "timeout") {
			t.Fatal(err)
		}
	}
	t.Fatalf("nothing from %s reached %v", from, addr)
	return netip.Addr{}
}
