package gateway

import (
	"net/netip"
	"testing"
)

func TestHostInPrefix(t *testing.T) {
	p := netip.MustParsePrefix("192.168.1.1/24")
	cases := []struct {
		n    int
		want string
	}{{1, "192.168.1.1"}, {10, "192.168.1.10"}, {254, "192.168.1.254"}, {255, "192.168.1.255"}, {256, "invalid IP"}, {0, "invalid IP"}, {-1, "invalid IP"}}
	for _, c := range cases {
		if got := hostInPrefix(p, c.n).String(); got != c.want {
			t.Errorf("hostInPrefix(%v, %d) = %s, want %s", p, c.n, got, c.want)
		}
	}
	if got := hostInPrefix(netip.MustParsePrefix("10.77.0.1/16"), 1<<16-2).String(); got != "10.77.255.254" {
		t.Errorf("last host of a /16 = %s", got)
	}
}
