//go:build linux && !nolab

package gateway_test

import (
	"context"
	bin "encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
	"gateway/sixto4/teredo"
	"gateway/sixto4/teredo/wire"
)

// eifConfig is the lab's default config with endpoint-independent
// filtering (docs/config.md, nat filtering) in place of the lab's
// address-and-port-dependent one.
func eifConfig(l *lab.Lab, extra string) string {
	const from, to = "option filtering 'address-and-port-dependent'", "option filtering 'endpoint-independent'"
	c := labgw.Config(l, extra)
	if !strings.Contains(c, from) {
		panic("the lab's config sets no filtering")
	}
	return strings.Replace(c, from, to, 1)
}

// teredoTools skips (or, under CI, fails) without Miredo and a TUN device.
func teredoTools(t *testing.T) {
	t.Helper()
	testenv.Tool(t, "miredo", "miredo")
	testenv.Tool(t, "miredo-server", "miredo-server")
	testenv.Tool(t, "nft", "nftables")
	testenv.Device(t, "/dev/net/tun")
}

// qualifyFromLAN1 runs our own Teredo qualification with the cone test
// (teredo.Qualifier.ConeTest) from a UDP socket in lan1 against the lab's
// Teredo server, through site A's gateway.
func qualifyFromLAN1(t *testing.T, g *gw) teredo.Qualification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.l.WaitTeredoServer(ctx); err != nil {
		t.Fatal(err)
	}
	var conn *net.UDPConn
	if err := g.l.Do(lab.LAN1, func() (err error) {
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lan1, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Several short attempts: the gateway learns the flow for its
	// endpoint-independent filter from a conntrack event, which may come
	// after the server's first answer from its other address.
	q, err := teredo.Qualifier{Timeout: 300 * time.Millisecond, Attempts: 6, ConeTest: true}.Qualify(ctx, conn, lab.TeredoServerAddr.Addr())
	if err != nil {
		t.Fatalf("qualify from lan1: %v", err)
	}
	a, err := wire.ParseAddress(q.Address)
	if err != nil {
		t.Fatal(err)
	}
	if a.Mapped != q.Mapped || a.Mapped.Addr() != wanAddr || a.Server != lab.TeredoServerAddr.Addr() || a.Cone() != q.Cone {
		t.Errorf("qualification %+v, its address decodes to %+v; want mapped to the gateway's %v, server %v", q, a, wanAddr, lab.TeredoServerAddr.Addr())
	}
	return q
}

// Issue 12 part 4: with endpoint-independent filtering, a LAN host's
// Teredo client that runs the cone test qualifies as cone; with the
// default filtering, as restricted.
func TestTeredoEIFConeQualification(t *testing.T) {
	teredoTools(t)
	for _, tt := range []struct {
		name   string
		config func(*lab.Lab, string) string
		cone   bool
	}{
		{"endpoint-independent filtering: cone", eifConfig, true},
		{"address-and-port-dependent filtering: restricted", labgw.Config, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := startWith(t, tt.config, "", lab.LAN1)
			start := time.Now()
			q := qualifyFromLAN1(t, g)
			t.Logf("lan1 qualified in %v: %+v", time.Since(start), q)
			if q.Cone != tt.cone {
				t.Errorf("cone %v, want %v", q.Cone, tt.cone)
			}
		})
	}
}

// Issue 12 part 4 with Miredo's own client on lan1, behind the gateway in
// EIF mode: it qualifies, pings site C's Miredo client (behind natc's
// plain NAT) at its Teredo address and opens TCP to it. Miredo never asks
// for the cone test (RFC 5991): the RSs it sends, captured on lan1, say
// so, and its address is restricted whatever the gateway's filtering.
func TestTeredoEIFMiredoClient(t *testing.T) {
	teredoTools(t)
	testenv.Tool(t, "busybox", "busybox")
	g := startWith(t, eifConfig, "", lab.LAN1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peer, err := g.l.TeredoAddr(ctx, lab.TeredoPeer)
	if err != nil {
		t.Fatal(err)
	}

	rss := captureTeredoRS(t, g.l, lab.LAN1)
	start := time.Now()
	if _, err := g.l.StartMiredoClient(lab.LAN1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if p, ok := g.l.Process(lab.MiredoClientProc(lab.LAN1)); ok {
				b, _ := os.ReadFile(p.Log)
				t.Logf("lan1's Miredo client:\n%s", labgw.Tail(b, 20))
			}
		}
	})
	mine, err := g.l.TeredoAddr(ctx, lab.LAN1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wire.ParseAddress(mine)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lan1's Miredo client took %v in %v: %+v; tpeer is %v", mine, time.Since(start), a, peer)
	if a.Server != lab.TeredoServerAddr.Addr() || a.Mapped.Addr() != wanAddr {
		t.Errorf("lan1's address names server %v, mapped %v; want %v, the gateway's %v", a.Server, a.Mapped, lab.TeredoServerAddr.Addr(), wanAddr)
	}
	if a.Cone() {
		t.Errorf("Miredo's client took a cone address %v; it never runs the cone test", mine)
	}
	got := rss()
	if len(got) == 0 {
		t.Error("no qualification RS from Miredo's client captured on lan1")
	}
	for _, rs := range got {
		t.Logf("Miredo's RS to %v from %v, cone bit %v", rs.to, rs.Src, rs.Cone())
		if rs.Cone() {
			t.Errorf("Miredo's client asked for the cone test: RS to %v from %v", rs.to, rs.Src)
		}
	}

	t.Run("ping", func(t *testing.T) {
		out, err := g.l.Command(ctx, lab.LAN1, "busybox", "ping", "-6", "-c", "3", "-W", "3", peer.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("lan1 → tpeer %v: %v\n%s", peer, err, out)
		}
		t.Logf("%s", lastLine(out))
	})

	t.Run("TCP", func(t *testing.T) {
		var ln net.Listener
		if err := g.l.Do(lab.TeredoPeer, func() (err error) {
			ln, err = net.Listen("tcp6", net.JoinHostPort(peer.String(), "0"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		done := make(chan netip.AddrPort, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				close(done)
				return
			}
			defer c.Close()
			io.WriteString(c, "hello from tpeer")
			done <- netip.MustParseAddrPort(c.RemoteAddr().String())
		}()
		var c net.Conn
		if err := g.l.Do(lab.LAN1, func() (err error) {
			c, err = net.DialTimeout("tcp6", ln.Addr().String(), 10*time.Second)
			return err
		}); err != nil {
			t.Fatalf("lan1 → tpeer %v: %v", ln.Addr(), err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		if string(b) != "hello from tpeer" {
			t.Errorf("read %q", b)
		}
		if from := <-done; from.Addr() != mine {
			t.Errorf("tpeer saw the connection from %v, want lan1's Teredo address %v", from, mine)
		}
	})
}

func lastLine(b []byte) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	return ls[len(ls)-1]
}

// captureTeredoRS captures, on host's lab.HostIf, the qualification RSs
// that leave for the Teredo server (UDP to port 3544) from now on; the
// returned function stops the capture and returns them.
func captureTeredoRS(t *testing.T, l *lab.Lab, host string) func() []capturedRS {
	t.Helper()
	var fd int
	if err := l.Do(host, func() error {
		ifi, err := net.InterfaceByName(lab.HostIf)
		if err != nil {
			return err
		}
		// ETH_P_ALL: only such taps see the packets the host sends.
		fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(syscall.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatalf("capture in %s: %v", host, err)
	}
	// A receive timeout, so that the reader sees stop: closing a
	// blocking socket does not end a read in progress.
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	var quit atomic.Bool
	var rss []capturedRS
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 2048)
		for {
			n, from, err := syscall.Recvfrom(fd, b, 0)
			if err != nil {
				// The timeout, or an interrupted read: once
				// stopped, what was queued has been read.
				if quit.Load() {
					return
				}
				continue
			}
			if ll, ok := from.(*syscall.SockaddrLinklayer); !ok || ll.Protocol != htons(syscall.ETH_P_IP) || ll.Pkttype != syscall.PACKET_OUTGOING {
				continue
			}
			if rs, ok := teredoRS(b[:n]); ok {
				rss = append(rss, rs)
			}
		}
	}()
	var stopped bool
	stop := func() []capturedRS {
		if !stopped {
			stopped = true
			quit.Store(true)
			<-done
			syscall.Close(fd)
		}
		return rss
	}
	t.Cleanup(func() { stop() })
	return stop
}

// capturedRS is a qualification RS and the server address it went to.
type capturedRS struct {
	wire.QualificationRS
	to netip.AddrPort
}

// teredoRS decodes an IPv4 packet that carries a qualification RS to the
// Teredo port.
func teredoRS(b []byte) (capturedRS, bool) {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != syscall.IPPROTO_UDP {
		return capturedRS{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	if len(b) < ihl+8 || bin.BigEndian.Uint16(b[ihl+2:]) != 3544 {
		return capturedRS{}, false
	}
	rs, err := wire.ParseQualificationRS(b[ihl+8:])
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), 3544)
	return capturedRS{rs, to}, err == nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
