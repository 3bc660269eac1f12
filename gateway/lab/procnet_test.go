package lab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

// procHex is a as /proc/net/udp shows it: in host byte order.
func procHex(a string) string {
	b := netip.MustParseAddr(a).As4()
	return fmt.Sprintf("%08X", binary.NativeEndian.Uint32(b[:]))
}

func TestParseProcAddr(t *testing.T) {
	tests := []struct {
		in   string
		want netip.AddrPort
		ok   bool
	}{
		{procHex("198.51.100.30") + ":0DD8", netip.MustParseAddrPort("198.51.100.30:3544"), true},
		{procHex("127.0.0.1") + ":0035", netip.MustParseAddrPort("127.0.0.1:53"), true},
		{"00000000:0000", netip.MustParseAddrPort("0.0.0.0:0"), true},
		{"0100007F", netip.AddrPort{}, false},
		{"00000000000000000000000000000000:0035", netip.AddrPort{}, false}, // IPv6, from /proc/net/udp6
		{"zz00007F:0035", netip.AddrPort{}, false},
		{"0100007F:10000", netip.AddrPort{}, false},
	}
	for _, tt := range tests {
		got, ok := parseProcAddr(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
