package nat44

import (
	"encoding"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
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

type textValue interface {
	encoding.TextMarshaler
	String() string
}

func TestTextRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    textValue
		text string
		back func([]byte) (textValue, error)
	}{
		{"tcp", TCP, "tcp", unmarshalProto},
		{"udp", UDP, "udp", unmarshalProto},
		{"address-and-port-dependent", AddressAndPortDependent, "address-and-port-dependent", unmarshalFiltering},
		{"address-dependent", AddressDependent, "address-dependent", unmarshalFiltering},
		{"endpoint-independent", EndpointIndependent, "endpoint-independent", unmarshalFiltering},
		{"none", KindNone, "none", unmarshalKind},
		{"public", KindPublic, "public", unmarshalKind},
		{"private", KindPrivate, "private", unmarshalKind},
		{"shared", KindShared, "shared", unmarshalKind},
		{"bogon", KindBogon, "bogon", unmarshalKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.v.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.text || tt.v.String() != tt.text {
				t.Errorf("MarshalText = %q, String = %q; want %q", b, tt.v.String(), tt.text)
			}
			back, err := tt.back(b)
			if err != nil {
				t.Fatalf("UnmarshalText(%q): %v", b, err)
			}
			if back != tt.v {
				t.Errorf("round trip gave %v, want %v", back, tt.v)
			}
		})
	}
}

func unmarshalProto(b []byte) (textValue, error) {
	var p Proto
	err := p.UnmarshalText(b)
	return p, err
}

func unmarshalFiltering(b []byte) (textValue, error) {
	var f Filtering
	err := f.UnmarshalText(b)
	return f, err
}

func unmarshalKind(b []byte) (textValue, error) {
	var k AddrKind
	err := k.UnmarshalText(b)
	return k, err
}

func TestTextRefused(t *testing.T) {
	// Unmarshal refuses what Marshal never writes...
	for _, tt := range []struct {
		name string
		back func([]byte) (textValue, error)
		text string
	}{
		{"proto icmp", unmarshalProto, "icmp"},
		{"proto empty", unmarshalProto, ""},
		{"filtering full-cone", unmarshalFiltering, "full-cone"},
		{"filtering in another case", unmarshalFiltering, "Endpoint-Independent"},
		{"kind", unmarshalKind, "cgnat"},
		{"kind in another case", unmarshalKind, "Public"},
	} {
		if v, err := tt.back([]byte(tt.text)); err == nil {
			t.Errorf("%s: UnmarshalText(%q) = %v, want an error", tt.name, tt.text, v)
		}
	}
	// ...and Marshal refuses what Unmarshal would refuse, so that a bad
	// value never reaches the state file or the API.
	for _, v := range []textValue{Proto(0), Proto(1), Filtering(-1), Filtering(3), AddrKind(-1), AddrKind(5)} {
		if b, err := v.MarshalText(); err == nil {
			t.Errorf("%T(%v).MarshalText() = %q, want an error", v, v, b)
		}
	}
	// Parsing a protocol is case-insensitive, as the config file wants.
	if p, err := ParseProto("UDP"); err != nil || p != UDP {
		t.Errorf("ParseProto(UDP) = %v, %v", p, err)
	}
}

func TestMappingJSONRoundTrip(t *testing.T) {
	for _, m := range []Mapping{
		{Proto: TCP, ExternalPort: 8080, Internal: netip.MustParseAddrPort("192.168.1.10:80"), Owner: OwnerStatic, Description: "web"},
		{Proto: UDP, ExternalPort: 3074, Internal: netip.MustParseAddrPort("192.168.1.20:3074"), Expires: time.Date(2025, 1, 1, 2, 3, 4, 5, time.UTC), Owner: OwnerUPnP},
	} {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Mapping
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if diff := gocmp.Diff(m, back, netipComparers); diff != "" {
			t.Errorf("JSON %s round trip (-want +got):\n%s", b, diff)
		}
	}
}
