//go:build linux && !nolab

package gateway_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
	"gateway/nat44"
	"gateway/web"
)

// TestIPv6Firewall sends real traffic through the daemon's IPv6 filter
// (RFC 6092): the LAN goes out and gets its answers; unsolicited inbound
// TCP to a LAN host is dropped, gets through once the host has a pinhole,
// and is dropped again when the pinhole expires; a pinhole survives a
// restart of the daemon.
func TestIPv6Firewall(t *testing.T) {
	g := startGateway(t, "")
	pub6, pub6b := lab.PublicAddrs6[0].Addr(), lab.PublicAddrs6[1].Addr()
	lan16 := lab.LAN1Addr6.Addr()
	tcpServer(t, g.l, lab.Public, hostPort(pub6, 80))
	tcpServer(t, g.l, lab.LAN1, hostPort(lan16, 22))
	tcpServer(t, g.l, lab.LAN1, hostPort(lan16, 23))

	// Out, and the answer back in.
	wantTCP(t, g.l, lab.LAN1, hostPort(pub6, 80), "pub saw ["+lan16.String()+"]")
	// Unsolicited in: dropped.
	wantNoTCP(t, g.l, lab.Public, hostPort(lan16, 22))

	// A pinhole for port 22 only, from any remote; and one for 23 from
	// the other public address only.
	var p nat44.Pinhole
	if err := g.api().Do("POST", "/api/v1/pinholes", web.PinholeRequest{Proto: nat44.TCP, Internal: netip.AddrPortFrom(lan16, 22), Lifetime: web.Seconds(4 * time.Second), Description: "ssh"}, &p); err != nil {
		t.Fatal(err)
	}
	if err := g.api().Do("POST", "/api/v1/pinholes", web.PinholeRequest{Proto: nat44.TCP, Internal: netip.AddrPortFrom(lan16, 23), Remote: lab.PublicAddrs6[1].Addr()}, nil); err != nil {
		t.Fatal(err)
	}
	wantTCP(t, g.l, lab.Public, hostPort(lan16, 22), "lan1 saw [2001:db8:100::")
	// The remote-filtered pinhole lets in its remote only.
	if got, err := tcpGetFrom(g.l, lab.Public, pub6, hostPort(lan16, 23)); err == nil {
		t.Fatalf("from %v, not the pinhole's remote, port 23 answered %q", pub6, got)
	}
	if got, err := tcpGetFrom(g.l, lab.Public, pub6b, hostPort(lan16, 23)); err != nil || !strings.HasPrefix(got, "lan1 saw ["+pub6b.String()+"]") {
		t.Fatalf("from the pinhole's remote %v: %q, %v", pub6b, got, err)
	}

	// The timed pinhole expires: dropped again.
	eventuallyWithin(t, 10*time.Second, "pinhole expiry", func() error {
		if got, err := tcpGet(g.l, lab.Public, hostPort(lan16, 22)); err == nil {
			return fmt.Errorf("still open: %q", got)
		}
		return nil
	})

	// The permanent one survives kill -9 and a restart.
	if err := g.l.Stop(labgw.Daemon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := labgw.Start(ctx, g.l, binary, g.cfg); err != nil {
		t.Fatal(err)
	}
	var ps []nat44.Pinhole
	if err := g.api().Do("GET", "/api/v1/pinholes", nil, &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Internal.Port() != 23 || ps[0].Remote != lab.PublicAddrs6[1].Addr() {
		t.Fatalf("pinholes after a restart: %+v; want the one for port 23 from %v", ps, lab.PublicAddrs6[1].Addr())
	}
	wantNoTCP(t, g.l, lab.Public, hostPort(lan16, 22))
	if _, err := tcpGetFrom(g.l, lab.Public, pub6b, hostPort(lan16, 23)); err != nil {
		t.Fatalf("the restored pinhole does not let its remote in: %v", err)
	}
}
