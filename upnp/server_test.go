package upnp

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gateway/internal/leakcheck"
	"gateway/nat44"
)

// freePort is a TCP and UDP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := uint16(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		if c, err := net.ListenPacket("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()); err == nil {
			c.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestRun runs the server on lo: a description over HTTP, a unicast
// M-SEARCH answered, and Run returns on cancel with every goroutine
// ended.
func TestRun(t *testing.T) {
	leakcheck.Check(t)
	_, n := newCore(t, nat44.Policy{})
	port, ssdpPort := freePort(t), freePort(t)
	s, err := New(Config{LANs: []LAN{{Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")}}, Port: port, SSDPPort: ssdpPort, StateDir: t.TempDir(), NAT: n, Firewall: n, MaxDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	url := "http://" + netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String() + PathRootDesc
	var body []byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(url)
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(string(body), TypeIGD2) {
		t.Fatalf("root description: %s", body)
	}

	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msearch := "M-SEARCH * HTTP/1.1\r\nHOST: 127.0.0.1:1900\r\nMAN: \"ssdp:discover\"\r\nST: upnp:rootdevice\r\n\r\n"
	if _, err := c.WriteTo([]byte(msearch), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(ssdpPort)}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	m, _, err := c.ReadFrom(buf)
	if err != nil || !strings.Contains(string(buf[:m]), "LOCATION: "+url) {
		t.Fatalf("M-SEARCH answer %q, %v", buf[:m], err)
	}
}

func TestHostCheck(t *testing.T) {
	s := &Server{cfg: Config{LANs: []LAN{{Name: "br-lan", Prefix: netip.MustParsePrefix("192.168.1.1/24"), IPv6: []netip.Prefix{netip.MustParsePrefix("2001:db8:1:1::1/64")}}}}}
	for host, want := range map[string]bool{
		"192.168.1.1:5000": true, "192.168.1.1": true, "[2001:db8:1:1::1]:5000": true, "[2001:db8:1:1::1]": true,
		"[2001:DB8:1:1:0::1]:5000": true, "[::ffff:192.168.1.1]:5000": true,
		"192.168.1.2:5000": false, "[2001:db8:1:1::2]:5000": false, "evil.example:5000": false, "": false,
		"[fe80::1%br-lan]:5000": false, "2001:db8:1:1::1:5000": false,
	} {
		if got := s.ourHost(host); got != want {
			t.Errorf("ourHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestLANOf(t *testing.T) {
	s := &Server{cfg: Config{LANs: []LAN{{Name: "br-lan", Prefix: netip.MustParsePrefix("192.168.1.1/24"), IPv6: []netip.Prefix{netip.MustParsePrefix("2001:db8:1:1::1/64")}}}}}
	for a, want := range map[string]bool{
		"192.168.1.10": true, "::ffff:192.168.1.10": true, "2001:db8:1:1::10": true, "fe80::10%br-lan": true,
		"192.168.2.10": false, "2001:db8:1:2::10": false, "fe80::10%eth0": false, "fe80::10": false,
	} {
		if _, got := s.lanOf(netip.MustParseAddr(a)); got != want {
			t.Errorf("lanOf(%s) = %v, want %v", a, got, want)
		}
	}
}

// TestAliveSchedule: the first set of ssdp:alive goes out three times a
// second apart, later rounds twice, a round every interval (UDA 2.0
// §1.2.2), and every round well within the 30 min max-age.
func TestAliveSchedule(t *testing.T) {
	const interval = 10 * time.Minute
	var at []time.Duration
	var now time.Duration
	for sent := 1; sent <= 7; sent++ {
		at = append(at, now)
		w, _ := aliveWait(sent, interval)
		now += w
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 2*time.Second + interval, 3*time.Second + interval, 3*time.Second + 2*interval, 4*time.Second + 2*interval}
	for i := range want {
		if at[i] != want[i] {
			t.Fatalf("ssdp:alive at %v, want %v", at, want)
		}
	}
	if interval+aliveSpacing*aliveCopies >= maxAge/2 {
		t.Errorf("a round every %v: not within half the max-age %v", interval, maxAge)
	}
}

func TestNotFromLAN(t *testing.T) {
	_, n := newCore(t, nat44.Policy{})
	s, err := New(Config{LANs: []LAN{{Name: "br-lan", Prefix: netip.MustParsePrefix("192.168.1.1/24"), IPv6: []netip.Prefix{netip.MustParsePrefix("2001:db8:1:1::1/64")}}}, StateDir: t.TempDir(), NAT: n})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		remote, host string
		want         int
	}{
		{"[2001:db8:1:1::10]:40000", "[2001:db8:1:1::1]:5000", http.StatusNotFound},
		{"[2001:db8:9::10]:40000", "[2001:db8:1:1::1]:5000", http.StatusForbidden},
		{"[2001:db8:1:1::10]:40000", "attacker.example:5000", http.StatusForbidden},
	} {
		r := httptest.NewRequest("GET", "http://"+tt.host+"/nothing", nil)
		r.RemoteAddr, r.Host = tt.remote, tt.host
		w := httptest.NewRecorder()
		s.serveHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("from %s to %s: %d, want %d", tt.remote, tt.host, w.Code, tt.want)
		}
	}
}
