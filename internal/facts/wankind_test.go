package facts

import (
	"net/netip"
	"testing"
)

func TestClassifyWAN(t *testing.T) {
	tests := []struct {
		addr      string // "" is the invalid Addr
		kind      AddrKind
		kindDoc   AddrKind // with allowDocumentation
		doubleNAT bool
	}{
		{"8.8.8.8", KindPublic, KindPublic, false},
		{"1.1.1.1", KindPublic, KindPublic, false},
		{"9.255.255.255", KindPublic, KindPublic, false},
		{"10.0.0.1", KindPrivate, KindPrivate, true},
		{"10.255.255.255", KindPrivate, KindPrivate, true},
		{"11.0.0.0", KindPublic, KindPublic, false},
		{"172.15.255.255", KindPublic, KindPublic, false},
		{"172.16.0.1", KindPrivate, KindPrivate, true},
		{"172.31.255.254", KindPrivate, KindPrivate, true},
		{"172.32.0.0", KindPublic, KindPublic, false},
		{"192.168.1.1", KindPrivate, KindPrivate, true},
		{"192.169.0.1", KindPublic, KindPublic, false},
		{"100.63.255.255", KindPublic, KindPublic, false},
		{"100.64.0.1", KindShared, KindShared, true},
		{"100.127.255.254", KindShared, KindShared, true},
		{"100.128.0.0", KindPublic, KindPublic, false},
		{"192.0.2.1", KindBogon, KindPublic, false},     // TEST-NET-1
		{"198.51.100.1", KindBogon, KindPublic, false},  // TEST-NET-2
		{"203.0.113.254", KindBogon, KindPublic, false}, // TEST-NET-3
		{"203.0.114.1", KindPublic, KindPublic, false},
		{"192.0.0.8", KindBogon, KindBogon, false},  // IETF protocol assignments
		{"198.18.0.1", KindBogon, KindBogon, false}, // benchmarking
		{"198.19.255.1", KindBogon, KindBogon, false},
		{"198.20.0.1", KindPublic, KindPublic, false},
		{"0.0.0.0", KindBogon, KindBogon, false},
		{"0.1.2.3", KindBogon, KindBogon, false},
		{"127.0.0.1", KindBogon, KindBogon, false},
		{"169.254.1.1", KindBogon, KindBogon, false},
		{"224.0.0.1", KindBogon, KindBogon, false},
		{"239.255.255.250", KindBogon, KindBogon, false},
		{"240.0.0.1", KindBogon, KindBogon, false},
		{"255.255.255.255", KindBogon, KindBogon, false},
		{"2001:db8::1", KindNone, KindNone, false},
		{"2a00:1450::1", KindNone, KindNone, false},
		{"::ffff:8.8.8.8", KindNone, KindNone, false}, // not an IPv4 WAN address
		{"", KindNone, KindNone, false},
	}
	for _, tt := range tests {
		var a netip.Addr
		if tt.addr != "" {
			a = netip.MustParseAddr(tt.addr)
		}
		if got := ClassifyWAN(a, false); got != tt.kind {
			t.Errorf("ClassifyWAN(%q, false) = %v, want %v", tt.addr, got, tt.kind)
		}
		if got := ClassifyWAN(a, true); got != tt.kindDoc {
			t.Errorf("ClassifyWAN(%q, true) = %v, want %v", tt.addr, got, tt.kindDoc)
		}
		if got := tt.kind.DoubleNAT(); got != tt.doubleNAT {
			t.Errorf("%v.DoubleNAT() = %v, want %v", tt.kind, got, tt.doubleNAT)
		}
	}
}

func TestAddrKindText(t *testing.T) {
	for _, k := range []AddrKind{KindNone, KindPublic, KindPrivate, KindShared, KindBogon} {
		b, err := k.MarshalText()
		if err != nil || string(b) != k.String() {
			t.Fatalf("%v.MarshalText() = %q, %v", k, b, err)
		}
		var back AddrKind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("round trip of %v: %v, %v", k, back, err)
		}
	}
	for _, s := range []string{"cgnat", "Public", ""} {
		var k AddrKind
		if err := k.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("UnmarshalText(%q) = %v, want an error", s, k)
		}
	}
	for _, k := range []AddrKind{-1, 5} {
		if b, err := k.MarshalText(); err == nil {
			t.Errorf("AddrKind(%d).MarshalText() = %q, want an error", int(k), b)
		}
	}
}
