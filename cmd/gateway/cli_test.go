package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"gateway/nat44"
	"gateway/web"
)

func TestRequests(t *testing.T) {
	eq := cmpopts.EquateComparable(netip.AddrPort{}, netip.Addr{})
	m, err := mappingRequest([]string{"udp", "3074", "192.168.1.20:3074", "3600", "xbox"})
	want := web.MappingRequest{Proto: nat44.UDP, ExternalPort: 3074, Internal: netip.MustParseAddrPort("192.168.1.20:3074"), Lifetime: web.Seconds(time.Hour), Description: "xbox"}
	if err != nil || !cmp.Equal(want, m, eq) {
		t.Fatalf("mappingRequest = %+v, %v; diff %s", m, err, cmp.Diff(want, m, eq))
	}
	p, err := pinholeRequest([]string{"tcp", "[2001:db8::10]:22", "600", "2001:db8:ffff::1"})
	wantP := web.PinholeRequest{Proto: nat44.TCP, Internal: netip.MustParseAddrPort("[2001:db8::10]:22"), Lifetime: web.Seconds(10 * time.Minute), Remote: netip.MustParseAddr("2001:db8:ffff::1")}
	if err != nil || !cmp.Equal(wantP, p, eq) {
		t.Fatalf("pinholeRequest = %+v, %v; diff %s", p, err, cmp.Diff(wantP, p, eq))
	}
	for _, bad := range [][]string{{"sctp", "1", "1.2.3.4:1"}, {"tcp", "x", "1.2.3.4:1"}, {"tcp", "1", "1.2.3.4"}, {"tcp", "1", "1.2.3.4:1", "-5"}} {
		if _, err := mappingRequest(bad); err == nil {
			t.Errorf("mappingRequest(%q) accepted", bad)
		}
	}
}
