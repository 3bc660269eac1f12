//go:build linux && !nolab

package gateway_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gateway/gateway"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/gateway/labgw"
	"gateway/internal/facts"
	"gateway/internal/testenv"
)

// Site B's WAN moves behind the ISP's carrier-grade NAT (lab.SetSiteBWAN)
// and back: its daemon follows the address through its netlink watch,
// calls it shared (RFC 6598) then public again, and lanb reaches the
// internet through both NATs, seen from the ISP's address while private.
func TestSiteBBehindCGNAT(t *testing.T) {
	testenv.Tool(t, "udhcpc", "udhcpc")
	testenv.Tool(t, "nft", "nftables")
	l := labtest.New(t)
	if err := labgw.StartInternet(l, binary); err != nil {
		t.Fatal(err)
	}
	api := startSiteB(t, l)
	tcpServer(t, l, lab.Public, hostPort(pub1, 7002))
	for _, tt := range []struct {
		name  string
		cgnat bool
		wan   netip.Addr
		kind  facts.AddrKind
		seen  netip.Addr // lanb's source as pub sees it
	}{
		{"behind the CGNAT", true, lab.SiteBCGNATAddr.Addr(), facts.KindShared, lab.InetAddr.Addr()},
		{"public again", false, lab.SiteBWANAddr.Addr(), facts.KindPublic, lab.SiteBWANAddr.Addr()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.SetSiteBWAN(ctx, tt.cgnat); err != nil {
				t.Fatal(err)
			}
			var st gateway.Status
			for {
				err := api.Do("GET", "/api/v1/status", nil, &st)
				if err == nil && st.WANAddr == tt.wan && st.WANKind == tt.kind {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("gwb's daemon says WAN %v (%v), %v; want %v (%v)", st.WANAddr, st.WANKind, err, tt.wan, tt.kind)
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("gwb: WAN %v (%v), IPv6 %+v", st.WANAddr, st.WANKind, st.IPv6)
			got, err := tcpGet(l, lab.LANB, hostPort(pub1, 7002))
			if err != nil || !strings.HasPrefix(got, "pub saw "+tt.seen.String()+":") {
				t.Fatalf("lanb → pub: %q, %v; want pub to see %v", got, err, tt.seen)
			}
		})
	}
}
