package wire

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
var addrPortCmp = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
var prefixCmp = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
var opts = []cmp.Option{addrCmp, addrPortCmp, prefixCmp}

func TestAddressRFC4380Example(t *testing.T) {
	// RFC 4380 section 4: server 65.54.227.120, client behind a cone NAT
	// mapped to 192.0.2.45:40000.
	want := netip.MustParseAddr("2001:0:4136:e378:8000:63bf:3fff:fdd2")
	a := Address{
		Server: netip.MustParseAddr("65.54.227.120"),
		Flags:  FlagCone,
		Mapped: netip.MustParseAddrPort("192.0.2.45:40000"),
	}
	got, err := a.IP()
	if err != nil || got != want {
		t.Fatalf("IP() = %v, %v; want %v", got, err, want)
	}
	back, err := ParseAddress(want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, back, opts...); diff != "" {
		t.Errorf("ParseAddress (-want +got):\n%s", diff)
	}
	if !back.Cone() {
		t.Error("cone flag lost")
	}
}

func TestAddressMiredo(t *testing.T) {
	// Taken by Miredo 1.2.6's client with server 203.0.113.10, directly on
	// the internet side at 203.0.113.50 (RFC 5991 random flags 0x3815).
	a, err := ParseAddress(netip.MustParseAddr("2001:0:cb00:710a:3815:4431:34ff:8ecd"))
	if err != nil {
		t.Fatal(err)
	}
	want := Address{Server: netip.MustParseAddr("203.0.113.10"), Flags: 0x3815, Mapped: netip.MustParseAddrPort("203.0.113.50:48078")}
	if diff := cmp.Diff(want, a, opts...); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if a.Flags&^FlagsRandom != 0 {
		t.Errorf("flags %#x outside RFC 5991's random bits", a.Flags)
	}
}

func TestParseAddressRefuses(t *testing.T) {
	for _, s := range []string{"2002:c000:22d::1", "2001:db8::1", "::ffff:192.0.2.1", "192.0.2.1"} {
		if _, err := ParseAddress(netip.MustParseAddr(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseAddress(%s) = %v, want ErrMalformed", s, err)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		cone   bool
		random uint16
		want   uint16
	}{
		{false, 0xffff, 0x3cff},
		{true, 0xffff, 0xbcff},
		{true, 0, 0x8000},
		{false, 0x4300, 0}, // R, U, G stay zero
	} {
		if got := Flags(c.cone, c.random); got != c.want {
			t.Errorf("Flags(%v, %#x) = %#x, want %#x", c.cone, c.random, got, c.want)
		}
	}
}

func TestChecksumAgainstXNet(t *testing.T) {
	src, dst := netip.MustParseAddr("fe80::1234:5678"), AllRouters
	for _, body := range [][]byte{nil, {1}, {1, 2, 3}, make([]byte, 61)} {
		m := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: 7, Seq: 9, Data: body}}
		wire, err := m.Marshal(icmp.IPv6PseudoHeader(src.AsSlice(), dst.AsSlice()))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := Checksum(src, dst, wire), uint16(wire[2])<<8|uint16(wire[3]); got != want {
			t.Errorf("data %d bytes: checksum %#04x, x/net says %#04x", len(body), got, want)
		}
	}
}

func TestICMPv6ChecksumChecked(t *testing.T) {
	ip, err := ICMPv6(netip.MustParseAddr("fe80::1"), AllRouters, 255, []byte{133, 0, 0, 0, 0, 0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ip.ICMPv6Message(); err != nil {
		t.Fatalf("own checksum refused: %v", err)
	}
	ip.Payload[5] ^= 1
	if _, err := ip.ICMPv6Message(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("corrupted message accepted: %v", err)
	}
}

func testRA(t testing.TB) QualificationRA {
	pio, err := PrefixInformation{
		Prefix:            netip.MustParsePrefix("2001:0:cb00:710a::/64"),
		ValidLifetime:     24 * time.Hour,
		PreferredLifetime: 4 * time.Hour,
	}.Option()
	if err != nil {
		t.Fatal(err)
	}
	return QualificationRA{
		Auth:   &Auth{Nonce: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		Origin: netip.MustParseAddrPort("198.51.100.7:40000"),
		Src:    netip.MustParseAddr("fe80::8000:f227:bec9:1c9a"),
		Dst:    netip.MustParseAddr("fe80::1:2:3:4"),
		RA: RouterAdvertisement{
			RouterLifetime: 0,
			Options:        []Option{pio, {Type: OptMTU, Data: []byte{0, 0, 0, 0, 0x05, 0x00}}},
		},
	}
}

func TestQualificationRoundTrip(t *testing.T) {
	rs := NewQualificationRS([8]byte{9, 9, 9, 9, 9, 9, 9, 9}, [8]byte{0xff, 0xff, 1, 2, 3, 4, 5, 6}, false)
	if rs.Cone() {
		t.Error("RS asks for the cone test")
	}
	if got := rs.Src.String(); got != "fe80::3cff:102:304:506" {
		t.Errorf("RS source %s", got)
	}
	b, err := rs.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 13+40+8 {
		t.Errorf("RS payload %d bytes, want 61 (auth header, IPv6 header, RS)", len(b))
	}
	back, err := ParseQualificationRS(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs, back, opts...); diff != "" {
		t.Errorf("RS (-want +got):\n%s", diff)
	}

	ra := testRA(t)
	b, err = ra.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if b[13] != 0 || b[14] != 0 {
		t.Fatalf("origin indication does not follow the authentication header: % x", b[:24])
	}
	got, err := ParseQualificationRA(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ra, got, opts...); diff != "" {
		t.Errorf("RA (-want +got):\n%s", diff)
	}
	addr, err := got.Address(0x1234 & FlagsRandom).IP()
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("2001:0:cb00:710a:1034:63bf:39cc:9bf8"); addr != want {
		t.Errorf("address %v, want %v", addr, want)
	}
}

func TestQualificationRARefuses(t *testing.T) {
	good := testRA(t)
	noOrigin := good
	noOrigin.Origin = netip.AddrPort{}
	noPrefix := good
	noPrefix.RA.Options = good.RA.Options[1:]
	wrongPrefix := good
	pio, _ := PrefixInformation{Prefix: netip.MustParsePrefix("2001:db8:1:2::/64")}.Option()
	wrongPrefix.RA.Options = []Option{pio}
	for name, q := range map[string]QualificationRA{"no origin": noOrigin, "no prefix": noPrefix, "not 2001::/32": wrongPrefix} {
		if _, err := q.Append(nil); err == nil {
			t.Errorf("%s: Append accepted it", name)
		}
		// Encode it anyway, by hand, and check the parser refuses it too.
		msg, _ := q.RA.Append(nil)
		ip, _ := ICMPv6(q.Src, q.Dst, 255, msg)
		b, err := Packet{Auth: q.Auth, Origin: q.Origin, IPv6: ip}.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseQualificationRA(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseQualificationRA = %v, want ErrMalformed", name, err)
		}
	}
}

func TestPacketLayouts(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:0:cb00:710a::1"), netip.MustParseAddr("2001:0:cb00:710a::2")
	bubble := Bubble(src, dst)
	for name, c := range map[string]struct {
		p    Packet
		size int
	}{
		"bubble":                 {Packet{IPv6: bubble}, 40},
		"indirect bubble":        {Packet{Origin: netip.MustParseAddrPort("192.0.2.1:3544"), IPv6: bubble}, 48},
		"auth+origin":            {Packet{Auth: &Auth{ClientID: []byte("id"), AuthValue: []byte("value"), Confirmation: 1}, Origin: netip.MustParseAddrPort("192.0.2.1:1"), IPv6: bubble}, 13 + 7 + 8 + 40},
		"data with trailers":     {Packet{IPv6: IPv6{NextHeader: 17, HopLimit: 64, Src: src, Dst: dst, Payload: []byte("12345678")}, Trailers: []byte{1, 4, 0, 0, 0, 1}}, 40 + 8 + 6},
		"flow label and traffic": {Packet{IPv6: IPv6{TrafficClass: 0xb8, FlowLabel: 0xabcde, NextHeader: ProtoNone, Src: src, Dst: dst}}, 40},
	} {
		b, err := c.p.Append(nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b) != c.size {
			t.Errorf("%s: %d bytes, want %d", name, len(b), c.size)
		}
		back, err := ParsePacket(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(c.p, back, opts...); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if !bubble.IsBubble() {
		t.Error("a bubble is not a bubble")
	}
}

func TestParsePacketRefuses(t *testing.T) {
	bubble, _ := Packet{IPv6: Bubble(netip.MustParseAddr("2001::1"), netip.MustParseAddr("2001::2"))}.Append(nil)
	for name, b := range map[string][]byte{
		"empty":                nil,
		"short auth":           {0, 1, 0, 0, 1, 2},
		"auth longer than all": append([]byte{0, 1, 200, 0}, make([]byte, 20)...),
		"short origin":         {0, 0, 1, 2, 3},
		"origin only":          {0, 0, 1, 2, 3, 4, 5, 6},
		"IPv4":                 append([]byte{0x45}, bubble[1:]...),
		"payload past end":     append([]byte{0x60, 0, 0, 0, 0, 8}, bubble[6:]...),
	} {
		if _, err := ParsePacket(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
