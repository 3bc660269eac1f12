package nat44

import (
	"encoding"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

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
	} {
		if v, err := tt.back([]byte(tt.text)); err == nil {
			t.Errorf("%s: UnmarshalText(%q) = %v, want an error", tt.name, tt.text, v)
		}
	}
	// ...and Marshal refuses what Unmarshal would refuse, so that a bad
	// value never reaches the state file or the API.
	for _, v := range []textValue{Proto(0), Proto(1), Filtering(-1), Filtering(3)} {
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
		{Proto: UDP, ExternalPort: 41641, Internal: netip.MustParseAddrPort("192.168.1.20:41641"), Remote: netip.MustParseAddr("198.51.100.7"), Expires: time.Date(2025, 1, 1, 2, 3, 4, 5, time.UTC), Owner: OwnerPCP, Lifetime: 2 * time.Hour, Nonce: Nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
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

func TestLifetimeAndNonceJSON(t *testing.T) {
	m := Mapping{Proto: UDP, ExternalPort: 1, Internal: netip.MustParseAddrPort("192.168.1.2:1"), Owner: OwnerPCP, Lifetime: 90 * time.Second, Nonce: Nonce{0xab}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"lifetime":90`, `"nonce":"ab0000000000000000000000"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	p := Pinhole{PinholeKey: PinholeKey{Proto: TCP, Internal: netip.MustParseAddrPort("[2001:db8::1]:22")}, ID: 7, Owner: OwnerAdmin, Lifetime: time.Minute}
	b, err = json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Pinhole
	if err := json.Unmarshal(b, &back); err != nil || back != p || !strings.Contains(string(b), `"lifetime":60`) {
		t.Errorf("pinhole JSON %s: back %+v, %v", b, back, err)
	}
	for _, bad := range []string{`{"lifetime":-1}`, `{"nonce":"ab"}`, `{"nonce":"zz0000000000000000000000"}`} {
		var m Mapping
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}
