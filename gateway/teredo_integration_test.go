//go:build linux && !nolab

package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway"
	"gateway/gateway/client"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
	"gateway/nat44"
	"gateway/web"
)

// teredoWorld starts the lab's internet with its Teredo server, relay and
// site C's Miredo client, and returns tpeer's Teredo address.
func teredoWorld(t *testing.T, l *lab.Lab) netip.Addr {
	t.Helper()
	testenv.Tool(t, "miredo", "miredo")
	testenv.Tool(t, "miredo-server", "miredo-server")
	if err := labgw.StartInternet(l, binary); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	peer, err := l.TeredoAddr(ctx, lab.TeredoPeer)
	if err != nil {
		t.Fatal(err)
	}
	return peer
}

// ping6 pings dst from host (a few tries: the first packets to a Teredo
// peer wait for its bubbles or relay).
func ping6(t *testing.T, l *lab.Lab, host string, dst netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []byte
	var err error
	for ctx.Err() == nil {
		out, err = l.Command(ctx, host, "busybox", "ping", "-6", "-c", "1", "-W", "2", dst.String()).CombinedOutput()
		if err == nil {
			return
		}
	}
	t.Fatalf("%s cannot ping %v: %v\n%s", host, dst, err, out)
}

// waitIPv6 polls the daemon's status until ok says yes.
func waitIPv6(t *testing.T, api *client.Client, what string, ok func(gateway.IPv6Status) bool) gateway.IPv6Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st gateway.Status
		err := api.Do("GET", "/api/v1/status", nil, &st)
		if err == nil && st.IPv6 != nil && ok(*st.IPv6) {
			return *st.IPv6
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %+v, %v", what, st.IPv6, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// teredoOf is the Teredo client's part of the status, decoded.
func teredoOf(t *testing.T, s gateway.IPv6Status) gateway.TeredoStatus {
	t.Helper()
	var ts gateway.TeredoStatus
	if s.Teredo == nil {
		return ts
	}
	if err := remarshal(s.Teredo, &ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestTeredoUplink: site B's LAN has 6to4 while its WAN address is public,
// and reaches site C's Miredo client through gwb's own Teredo relay. When
// the WAN goes behind the ISP's carrier-grade NAT, gwb qualifies as a
// Teredo client, the LAN renumbers to the ULA (the 6to4 address
// deprecated) and reaches the Miredo client and a native IPv6 host through
// NAT66 to gwb's Teredo address; when the WAN is public again, 6to4 comes
// back.
func TestTeredoUplink(t *testing.T) {
	testenv.Tool(t, "udhcpc", "udhcpc")
	l := labtest.New(t)
	peer := teredoWorld(t, l)
	api := startSiteB(t, l)
	tcpServer(t, l, lab.TeredoPeer, netip.AddrPortFrom(peer, 7101).String())
	native := lab.PublicAddrs6[0].Addr()
	tcpServer(t, l, lab.Public, netip.AddrPortFrom(native, 7102).String())
	sixto4 := lab.LANBAddr6.Addr()

	// 6to4, and the relay for 2001::/32 beside it.
	st := waitIPv6(t, api, "6to4 with the relay", func(s gateway.IPv6Status) bool {
		return s.Uplink == gateway.UplinkSixto4 && s.Relay != nil && s.Teredo == nil
	})
	ping6(t, l, lab.LANB, peer)
	got, err := tcpGet(l, lab.LANB, netip.AddrPortFrom(peer, 7101).String())
	if want := fmt.Sprintf("%s saw [%s]:", lab.TeredoPeer, sixto4); err != nil || !strings.HasPrefix(got, want) {
		t.Fatalf("lanb → tpeer through the relay: %q, %v; want %q", got, err, want)
	}
	st = waitIPv6(t, api, "the relay knows tpeer", func(s gateway.IPv6Status) bool { return s.Relay != nil })
	t.Logf("relay: %+v", st.Relay)

	// Behind the CGNAT: Teredo.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.SetSiteBWAN(ctx, true); err != nil {
		t.Fatal(err)
	}
	st = waitIPv6(t, api, "Teredo as the uplink", func(s gateway.IPv6Status) bool {
		return s.Uplink == gateway.UplinkTeredo && s.Relay == nil
	})
	ts := teredoOf(t, st)
	if !ts.Qualified || !lab.TeredoPrefix.Contains(ts.Address) || ts.Server != lab.TeredoServerAddr.Addr() ||
		ts.Mapped.Addr() != lab.InetAddr.Addr() || ts.Cone {
		t.Fatalf("Teredo state %+v: want qualified with %v, mapped by the ISP's CGNAT to %v, not cone", ts, lab.TeredoServerAddr.Addr(), lab.InetAddr.Addr())
	}
	if !st.Prefix.Addr().IsPrivate() || st.Prefix.Bits() != 64 {
		t.Fatalf("LAN prefix %v over Teredo, want the ULA /64", st.Prefix)
	}
	ula := eui64(st.Prefix, labgw.SiteB.MAC(lab.LANB))
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := labgw.WaitAddr6(wctx, l, lab.LANB, ula); err != nil {
		t.Fatal(err)
	}
	t.Logf("lanb has %v over Teredo %v after %v", ula, time.Since(start).Round(time.Millisecond), ts.Address)
	eventually(t, "the 6to4 address deprecated", func() error {
		if lft, dep, ok := addrLifetime(t, l, lab.LANB, sixto4); ok && (!dep || lft != "0") {
			return fmt.Errorf("lanb's %v: preferred %s deprecated %v", sixto4, lft, dep)
		}
		return nil
	})

	ping6(t, l, lab.LANB, peer)
	got, err = tcpGet(l, lab.LANB, netip.AddrPortFrom(peer, 7101).String())
	if want := fmt.Sprintf("%s saw [%s]:", lab.TeredoPeer, ts.Address); err != nil || !strings.HasPrefix(got, want) {
		t.Fatalf("lanb → tpeer over Teredo: %q, %v; want %q (NAT66 to gwb's Teredo address)", got, err, want)
	}
	ping6(t, l, lab.LANB, native)
	got, err = tcpGet(l, lab.LANB, netip.AddrPortFrom(native, 7102).String())
	if want := fmt.Sprintf("%s saw [%s]:", lab.Public, ts.Address); err != nil || !strings.HasPrefix(got, want) {
		t.Fatalf("lanb → pub's native address over Teredo: %q, %v; want %q", got, err, want)
	}
	st = waitIPv6(t, api, "peers", func(s gateway.IPv6Status) bool { return len(teredoOf(t, s).Peers) >= 2 })
	for _, p := range teredoOf(t, st).Peers {
		if !p.Trusted {
			t.Errorf("peer %+v not trusted after traffic", p)
		}
	}
	// Unsolicited from outside to the Teredo address does not reach the
	// LAN (no pinhole): tpeer's connection gets nowhere.
	tcpServer(t, l, lab.LANB, netip.AddrPortFrom(ula, 7103).String())
	if got, err := tcpGet(l, lab.TeredoPeer, netip.AddrPortFrom(ts.Address, 7103).String()); err == nil {
		t.Fatalf("tpeer reached lanb unsolicited through the Teredo address: %q", got)
	}
	// A pinhole for lanb's port opens it on the Teredo address (NAT66
	// inbound), for that port alone.
	var ph nat44.Pinhole
	if err := api.Do("POST", "/api/v1/pinholes", web.PinholeRequest{Proto: nat44.TCP, Internal: netip.AddrPortFrom(ula, 7103), Description: "teredo test"}, &ph); err != nil {
		t.Fatal(err)
	}
	got, err = tcpGet(l, lab.TeredoPeer, netip.AddrPortFrom(ts.Address, 7103).String())
	if want := fmt.Sprintf("%s saw [%s]:", lab.LANB, peer); err != nil || !strings.HasPrefix(got, want) {
		t.Fatalf("tpeer → the Teredo address's pinholed port: %q, %v; want %q", got, err, want)
	}
	tcpServer(t, l, lab.LANB, netip.AddrPortFrom(ula, 7105).String())
	if got, err := tcpGet(l, lab.TeredoPeer, netip.AddrPortFrom(ts.Address, 7105).String()); err == nil {
		t.Fatalf("tpeer reached lanb's port without a pinhole: %q", got)
	}

	// kill -9: the respawned daemon qualifies again, keeps the ULA (no
	// renumbering) and the pinhole, and the LAN reaches the peer again.
	before, ok := l.Process(labgw.SiteB.Daemon)
	if !ok || !before.Alive {
		t.Fatalf("gwb's daemon: %+v, %v", before, ok)
	}
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gwb's daemon back", func() error {
		if p, ok := l.Process(labgw.SiteB.Daemon); !ok || !p.Alive || p.PID == before.PID {
			return fmt.Errorf("daemon %+v", p)
		}
		return nil
	})
	st = waitIPv6(t, api, "Teredo again after kill -9", func(s gateway.IPv6Status) bool {
		return s.Uplink == gateway.UplinkTeredo && teredoOf(t, s).Qualified
	})
	if ula2 := eui64(st.Prefix, labgw.SiteB.MAC(lab.LANB)); ula2 != ula {
		t.Fatalf("the LAN renumbered across kill -9: %v, was %v", ula2, ula)
	}
	ts = teredoOf(t, st)
	ping6(t, l, lab.LANB, peer)
	eventually(t, "the pinhole after kill -9", func() error {
		got, err := tcpGet(l, lab.TeredoPeer, netip.AddrPortFrom(ts.Address, 7103).String())
		if want := fmt.Sprintf("%s saw [%s]:", lab.LANB, peer); err != nil || !strings.HasPrefix(got, want) {
			return fmt.Errorf("tpeer → %v port 7103: %q, %v", ts.Address, got, err)
		}
		return nil
	})
	if err := api.Do("DELETE", fmt.Sprintf("/api/v1/pinholes/%d", ph.ID), nil, nil); err != nil {
		t.Fatal(err)
	}

	// Public again: 6to4 and the relay, the Teredo client gone.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := l.SetSiteBWAN(ctx2, false); err != nil {
		t.Fatal(err)
	}
	waitIPv6(t, api, "6to4 again", func(s gateway.IPv6Status) bool {
		return s.Uplink == gateway.UplinkSixto4 && s.Teredo == nil && s.Relay != nil
	})
	wctx2, wcancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel2()
	if err := labgw.WaitAddr6(wctx2, l, lab.LANB, sixto4); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the 6to4 address preferred again", func() error {
		if lft, dep, ok := addrLifetime(t, l, lab.LANB, sixto4); !ok || dep || lft == "0" {
			return fmt.Errorf("lanb's %v: preferred %s deprecated %v present %v", sixto4, lft, dep, ok)
		}
		return nil
	})
	ping6(t, l, lab.LANB, peer)
}

// TestTeredoRelayFromDelegatedLAN: with a delegated prefix, LAN hosts reach
// a Teredo host through the gateway's own relay, both ways: lan1 opens TCP
// to site C's Miredo client, and the Miredo client pings lan1 (its echo
// test finds the relay from lan1's answer).
func TestTeredoRelayFromDelegatedLAN(t *testing.T) {
	l := labtest.New(t)
	peer := teredoWorld(t, l)
	g := startIn(t, l, labgw.Config, "", lab.LAN1)
	st := waitIPv6(t, g.api(), "the delegation and the relay", func(s gateway.IPv6Status) bool {
		return s.Uplink == gateway.UplinkPD && s.Relay != nil
	})
	lan1 := lab.LAN1Addr6.Addr()
	tcpServer(t, l, lab.TeredoPeer, netip.AddrPortFrom(peer, 7104).String())
	ping6(t, l, lab.LAN1, peer)
	got, err := tcpGet(l, lab.LAN1, netip.AddrPortFrom(peer, 7104).String())
	if want := fmt.Sprintf("%s saw [%s]:", lab.TeredoPeer, lan1); err != nil || !strings.HasPrefix(got, want) {
		t.Fatalf("lan1 → tpeer: %q, %v; want %q", got, err, want)
	}
	ping6(t, l, lab.TeredoPeer, lan1)
	st = waitIPv6(t, g.api(), "the relay's counters", func(s gateway.IPv6Status) bool { return s.Relay != nil })
	var rs gateway.RelayStatus
	if err := remarshal(st.Relay, &rs); err != nil {
		t.Fatal(err)
	}
	if rs.Stats.InPackets == 0 || rs.Stats.OutPackets == 0 || len(rs.Peers) == 0 {
		t.Fatalf("relay %+v: want packets both ways and tpeer as a peer", rs)
	}
	t.Logf("relay: %+v", rs.Stats)
}

// remarshal decodes v, a status part decoded as JSON into an `any`, into
// out.
func remarshal(v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
