package pmp

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gateway/internal/leakcheck"
	"gateway/nat44"
	"gateway/upnp/natpmp"
	"gateway/upnp/pcp"
)

// TestServer runs the server on loopback: it answers requests, sends the
// announcements on the RFC's schedule at start and again after a WAN
// change, and leaves no goroutine behind.
func TestServer(t *testing.T) {
	leakcheck.Check(t)
	n, _ := startNAT(t, nat44.Policy{})
	heard, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer heard.Close()
	s, err := New(Config{
		NAT: n, Feed: n,
		Listen:    []Listen{{Addr: netip.MustParseAddrPort("127.0.0.1:0")}},
		LANs:      []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Announce4: heard.LocalAddr().(*net.UDPAddr).AddrPort(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	// hear returns the next announcement of version v with its arrival.
	hear := func(v byte) ([]byte, time.Time) {
		t.Helper()
		buf := make([]byte, 1500)
		heard.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			n, _, err := heard.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("no announcement of version %d: %v", v, err)
			}
			if buf[0] == v {
				return append([]byte(nil), buf[:n]...), time.Now()
			}
		}
	}
	b, first := hear(natpmp.Version)
	if r, err := natpmp.ParseResponse(b); err != nil || r.ExternalAddr != wan {
		t.Fatalf("NAT-PMP announcement %+v %v", r, err)
	}
	b, _ = hear(pcp.Version)
	if r, err := pcp.ParseResponse(b); err != nil || r.Opcode != pcp.OpAnnounce {
		t.Fatalf("PCP announcement %+v %v", r, err)
	}
	if _, second := hear(natpmp.Version); second.Sub(first) < 200*time.Millisecond {
		t.Errorf("second announcement %v after the first; want 250 ms", second.Sub(first))
	}

	// A request is answered from the socket it came to.
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(s.Addrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0, 0})
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	k, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := natpmp.ParseResponse(buf[:k]); err != nil || r.ExternalAddr != wan {
		t.Fatalf("answer %+v %v", r, err)
	}

	// A WAN change starts the announcements again, with the new address.
	moved := netip.MustParseAddr("203.0.113.3")
	if err := n.SetWAN(moved); err != nil {
		t.Fatal(err)
	}
	for {
		b, _ := hear(natpmp.Version)
		if r, err := natpmp.ParseResponse(b); err == nil && r.ExternalAddr == moved {
			break
		}
	}
	if got := s.Counters()["natpmp_requests"]; got != 1 {
		t.Errorf("natpmp_requests = %d", got)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Listen: []Listen{{}}, Announce4: netip.MustParseAddrPort("[ff02::1]:5350")}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no mapping service", "listen address", "IPv4 announcement"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
