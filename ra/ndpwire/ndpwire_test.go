package ndpwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
)

var (
	mac  = net.HardwareAddr{0x02, 0, 0x5e, 0x10, 0, 1}
	dns1 = netip.MustParseAddr("2001:db8::53")
	dns2 = netip.MustParseAddr("fd00::1")
)

// TestAgainstNDP appends advertisements and compares the bytes with those
// github.com/mdlayher/ndp (the codec this package replaced in the router,
// an independent implementation) marshals for the same message.
func TestAgainstNDP(t *testing.T) {
	tests := []struct {
		name string
		ours RouterAdvertisement
		ndp  *ndp.RouterAdvertisement
	}{
		{
			name: "empty",
			ours: RouterAdvertisement{},
			ndp:  &ndp.RouterAdvertisement{},
		},
		{
			name: "header fields",
			ours: RouterAdvertisement{CurHopLimit: 64, Managed: true, Other: true, Preference: Low,
				RouterLifetime: 1800 * time.Second, ReachableTime: 30500 * time.Millisecond, RetransTimer: time.Second},
			ndp: &ndp.RouterAdvertisement{CurrentHopLimit: 64, ManagedConfiguration: true, OtherConfiguration: true,
				RouterSelectionPreference: ndp.Low, RouterLifetime: 1800 * time.Second,
				ReachableTime: 30500 * time.Millisecond, RetransmitTimer: time.Second},
		},
		{
			name: "what ra sends",
			ours: RouterAdvertisement{CurHopLimit: 64, RouterLifetime: 1800 * time.Second, Options: []Option{
				SourceLinkLayerAddress{Addr: mac},
				MTU(1480),
				PrefixInformation{Prefix: netip.MustParsePrefix("2001:db8:a::/64"), OnLink: true, Autonomous: true,
					ValidLifetime: 5400 * time.Second, PreferredLifetime: 2700 * time.Second},
				RouteInformation{Prefix: netip.MustParsePrefix("fd00:1::/48"), Lifetime: 1800 * time.Second},
				RDNSS{Lifetime: 1800 * time.Second, Servers: []netip.Addr{dns1}},
				DNSSL{Lifetime: 1800 * time.Second, Domains: []string{"lan"}},
			}},
			ndp: &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: 1800 * time.Second, Options: []ndp.Option{
				&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac},
				ndp.NewMTU(1480),
				&ndp.PrefixInformation{PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: true,
					ValidLifetime: 5400 * time.Second, PreferredLifetime: 2700 * time.Second, Prefix: netip.MustParseAddr("2001:db8:a::")},
				&ndp.RouteInformation{PrefixLength: 48, RouteLifetime: 1800 * time.Second, Prefix: netip.MustParseAddr("fd00:1::")},
				&ndp.RecursiveDNSServer{Lifetime: 1800 * time.Second, Servers: []netip.Addr{dns1}},
				&ndp.DNSSearchList{Lifetime: 1800 * time.Second, DomainNames: []string{"lan"}},
			}},
		},
		{
			name: "infinite and zero lifetimes, flags off",
			ours: RouterAdvertisement{Options: []Option{
				PrefixInformation{Prefix: netip.MustParsePrefix("2001:db8::/32"), ValidLifetime: Infinity},
				RDNSS{Lifetime: Infinity, Servers: []netip.Addr{dns1, dns2}},
			}},
			ndp: &ndp.RouterAdvertisement{Options: []ndp.Option{
				&ndp.PrefixInformation{PrefixLength: 32, ValidLifetime: ndp.Infinity, Prefix: netip.MustParseAddr("2001:db8::")},
				&ndp.RecursiveDNSServer{Lifetime: ndp.Infinity, Servers: []netip.Addr{dns1, dns2}},
			}},
		},
		{
			name: "route information in its three lengths and preferences",
			ours: RouterAdvertisement{Options: []Option{
				RouteInformation{Prefix: netip.MustParsePrefix("::/0"), Preference: High, Lifetime: time.Second},
				RouteInformation{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Preference: Low},
				RouteInformation{Prefix: netip.MustParsePrefix("2001:db8:1:2:3::/80"), Lifetime: Infinity},
				RouteInformation{Prefix: netip.MustParsePrefix("2001:db8::1/128")},
			}},
			ndp: &ndp.RouterAdvertisement{Options: []ndp.Option{
				&ndp.RouteInformation{PrefixLength: 0, Preference: ndp.High, RouteLifetime: time.Second, Prefix: netip.MustParseAddr("::")},
				&ndp.RouteInformation{PrefixLength: 64, Preference: ndp.Low, Prefix: netip.MustParseAddr("2001:db8:1::")},
				&ndp.RouteInformation{PrefixLength: 80, RouteLifetime: ndp.Infinity, Prefix: netip.MustParseAddr("2001:db8:1:2:3::")},
				&ndp.RouteInformation{PrefixLength: 128, Prefix: netip.MustParseAddr("2001:db8::1")},
			}},
		},
		{
			// 6 + 1+3+1+7+1 = 19: padded to 24 bytes.
			name: "search list padded, several domains",
			ours: RouterAdvertisement{Options: []Option{
				DNSSL{Lifetime: 600 * time.Second, Domains: []string{"home.example", "lan", "xn--bcher-kva.example", "A-1.b2"}},
				DNSSL{Lifetime: 600 * time.Second, Domains: []string{"abcdefghi"}}, // 6+11 = 17: 24
				DNSSL{Lifetime: 600 * time.Second, Domains: []string{"abcdefgh"}},  // 6+10 = 16: exact
			}},
			ndp: &ndp.RouterAdvertisement{Options: []ndp.Option{
				&ndp.DNSSearchList{Lifetime: 600 * time.Second, DomainNames: []string{"home.example", "lan", "xn--bcher-kva.example", "A-1.b2"}},
				&ndp.DNSSearchList{Lifetime: 600 * time.Second, DomainNames: []string{"abcdefghi"}},
				&ndp.DNSSearchList{Lifetime: 600 * time.Second, DomainNames: []string{"abcdefgh"}},
			}},
		},
		{
			name: "raw option",
			ours: RouterAdvertisement{Options: []Option{RawOption{Code: 200, Data: []byte{1, 2, 3, 4, 5, 6}}}},
			ndp:  &ndp.RouterAdvertisement{Options: []ndp.Option{&ndp.RawOption{Type: 200, Length: 1, Value: []byte{1, 2, 3, 4, 5, 6}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ours.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ndp.MarshalMessage(tt.ndp)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ours:\n%s\nndp's:\n%s", hex.Dump(got), hex.Dump(want))
			}
			// Appending keeps what dst held.
			pre := []byte{9, 9}
			if again, err := tt.ours.Append(pre); err != nil || !bytes.Equal(again[2:], got) || again[0] != 9 {
				t.Errorf("Append to a non-empty slice: %x, %v", again, err)
			}
		})
	}
}

// TestParseNDPSolicitations parses solicitations that mdlayher/ndp
// marshals.
func TestParseNDPSolicitations(t *testing.T) {
	nonce := ndp.NewNonce()
	nb, err := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: []ndp.Option{nonce}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ndp  []ndp.Option
		want RouterSolicitation
	}{
		{"no options", nil, RouterSolicitation{}},
		{"source link-layer address", []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}},
			RouterSolicitation{Options: []Option{SourceLinkLayerAddress{Addr: mac}}}},
		{"unknown options kept raw", []ndp.Option{
			&ndp.RawOption{Type: 200, Length: 2, Value: bytes.Repeat([]byte{7}, 14)},
			&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac},
			nonce,
		}, RouterSolicitation{Options: []Option{
			RawOption{Code: 200, Data: bytes.Repeat([]byte{7}, 14)},
			SourceLinkLayerAddress{Addr: mac},
			RawOption{Code: 14, Data: nb[10:16]},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: tt.ndp})
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseRouterSolicitation(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			back, err := got.Append(nil)
			if err != nil || !bytes.Equal(back, b) {
				t.Errorf("re-appended %x (%v), ndp's %x", back, err, b)
			}
		})
	}
}

func TestParseRouterSolicitationRefuses(t *testing.T) {
	rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
	with := func(b ...byte) []byte { return append(append([]byte(nil), rs...), b...) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"nothing", nil},
		{"7 bytes", rs[:7]},
		{"a router advertisement", append([]byte{134}, rs[1:]...)},
		{"code 1", []byte{133, 1, 0, 0, 0, 0, 0, 0}},
		{"one byte of option", with(1)},
		{"option of length 0", with(1, 0, 0, 0, 0, 0, 0, 0)},
		{"option past the end", with(1, 2, 0, 0, 0, 0, 0, 0)},
		{"second option past the end", with(1, 1, 0, 0, 0, 0, 0, 0, 200, 1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRouterSolicitation(tt.b)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %+v, %v; want ErrMalformed", got, err)
			}
		})
	}
	// What RFC 4861 4.1 says to ignore: the Reserved field.
	if _, err := ParseRouterSolicitation([]byte{133, 0, 0xab, 0xcd, 1, 2, 3, 4}); err != nil {
		t.Errorf("reserved bits set: %v", err)
	}
}

func TestAppendRefuses(t *testing.T) {
	p64 := netip.MustParsePrefix("2001:db8::/64")
	opt := func(o Option) RouterAdvertisement { return RouterAdvertisement{Options: []Option{o}} }
	tests := []struct {
		name string
		ra   RouterAdvertisement
	}{
		{"reserved router preference", RouterAdvertisement{Preference: 2}},
		{"preference out of 2 bits", RouterAdvertisement{Preference: 4}},
		{"router lifetime over 16 bits", RouterAdvertisement{RouterLifetime: 65536 * time.Second}},
		{"router lifetime not whole seconds", RouterAdvertisement{RouterLifetime: 1500 * time.Millisecond}},
		{"negative router lifetime", RouterAdvertisement{RouterLifetime: -time.Second}},
		{"reachable time not whole milliseconds", RouterAdvertisement{ReachableTime: time.Microsecond}},
		{"retrans timer over 32 bits", RouterAdvertisement{RetransTimer: (1 << 32) * time.Millisecond}},
		{"nil option", opt(nil)},
		{"link-layer address of 5 bytes", opt(SourceLinkLayerAddress{Addr: mac[:5]})},
		{"no link-layer address", opt(SourceLinkLayerAddress{})},
		{"prefix with host bits", opt(PrefixInformation{Prefix: netip.MustParsePrefix("2001:db8::1/64")})},
		{"IPv4 prefix", opt(PrefixInformation{Prefix: netip.MustParsePrefix("192.0.2.0/24")})},
		{"no prefix", opt(PrefixInformation{})},
		{"valid lifetime beyond infinity", opt(PrefixInformation{Prefix: p64, ValidLifetime: Infinity + time.Second})},
		{"negative preferred lifetime", opt(PrefixInformation{Prefix: p64, PreferredLifetime: -time.Second})},
		{"route with host bits", opt(RouteInformation{Prefix: netip.MustParsePrefix("2001:db8::1/48")})},
		{"route of reserved preference", opt(RouteInformation{Prefix: p64, Preference: 2})},
		{"route lifetime in half seconds", opt(RouteInformation{Prefix: p64, Lifetime: 500 * time.Millisecond})},
		{"RDNSS without servers", opt(RDNSS{Lifetime: time.Second})},
		{"RDNSS with an IPv4 server", opt(RDNSS{Servers: []netip.Addr{netip.MustParseAddr("192.0.2.53")}})},
		{"RDNSS with no address", opt(RDNSS{Servers: []netip.Addr{{}}})},
		{"DNSSL without domains", opt(DNSSL{})},
		{"DNSSL with a Unicode domain", opt(DNSSL{Domains: []string{"bücher.example"}})},
		{"DNSSL with an underscore", opt(DNSSL{Domains: []string{"my_lan"}})},
		{"DNSSL with an empty label", opt(DNSSL{Domains: []string{"a..b"}})},
		{"DNSSL with a leading hyphen", opt(DNSSL{Domains: []string{"-lan"}})},
		{"DNSSL with a trailing hyphen", opt(DNSSL{Domains: []string{"lan-.example"}})},
		{"DNSSL with a 64-byte label", opt(DNSSL{Domains: []string{strings.Repeat("a", 64)}})},
		{"DNSSL with a 254-byte name", opt(DNSSL{Domains: []string{strings.Repeat(strings.Repeat("a", 62)+".", 4) + "ab"}})},
		{"DNSSL with just a dot", opt(DNSSL{Domains: []string{"."}})},
		{"DNSSL beyond 255 units", opt(DNSSL{Domains: slicesRepeat(strings.Repeat("a", 63)+"."+strings.Repeat("b", 63), 17)})},
		{"raw option of 5 bytes", opt(RawOption{Code: 200, Data: make([]byte, 5)})},
		{"raw option without data", opt(RawOption{Code: 200})},
		{"raw option beyond 255 units", opt(RawOption{Code: 200, Data: make([]byte, 256*8-2)})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.ra.Append(nil)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("appended %x, %v; want ErrMalformed", b, err)
			}
		})
	}
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestCheckDomain(t *testing.T) {
	for _, ok := range []string{"lan", "lan.", "home.arpa", "Home.Example", "xn--bcher-kva.example", "3com.example",
		strings.Repeat(strings.Repeat("a", 62)+".", 3) + strings.Repeat("b", 61)} {
		if err := CheckDomain(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "lan..", ".lan", "a b", "bücher.example", "lan_1", "-a", "a-"} {
		if err := CheckDomain(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// The trailing dot of an absolute name is not an extra empty name.
	a, _ := DNSSL{Domains: []string{"lan."}}.appendOption(nil)
	b, _ := DNSSL{Domains: []string{"lan"}}.appendOption(nil)
	if !bytes.Equal(a, b) {
		t.Errorf("lan. is %x, lan is %x", a, b)
	}
}

// FuzzParseRouterSolicitation: what parses appends to a solicitation that
// parses to the same value, and to the same bytes but for the Reserved
// field and the checksum.
func FuzzParseRouterSolicitation(f *testing.F) {
	for _, opts := range [][]ndp.Option{nil, {&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}},
		{&ndp.RawOption{Type: 200, Length: 1, Value: make([]byte, 6)}, ndp.NewNonce()}} {
		b, err := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: opts})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseRouterSolicitation(b)
		if err != nil {
			return
		}
		wire, err := rs.Append(nil)
		if err != nil {
			t.Fatalf("accepted solicitation cannot be appended: %v", err)
		}
		if !bytes.Equal(wire[:2], b[:2]) || !bytes.Equal(wire[8:], b[8:]) {
			t.Fatalf("appended %x from %x", wire, b)
		}
		back, err := ParseRouterSolicitation(wire)
		if err != nil {
			t.Fatalf("appended solicitation refused: %v", err)
		}
		if diff := cmp.Diff(rs, back); diff != "" {
			t.Fatalf("round trip changed the solicitation (-first +second):\n%s", diff)
		}
	})
}

// FuzzRouterAdvertisement appends advertisements of fuzzed fields and
// checks them against mdlayher/ndp: whatever we append, it marshals to
// the same bytes and parses back to the same fields.
func FuzzRouterAdvertisement(f *testing.F) {
	f.Add(uint8(64), uint8(0), uint16(1800), uint32(5400), uint32(2700), []byte{0x20, 0x01, 0x0d, 0xb8}, uint8(64), uint32(1480), "lan")
	f.Add(uint8(0), uint8(0xc0|3<<3), uint16(0), uint32(0xffffffff), uint32(0), []byte{}, uint8(0), uint32(0), "home.example")
	f.Add(uint8(255), uint8(1<<3), uint16(65535), uint32(1), uint32(1), []byte{0xfd, 1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(80), uint32(1<<31), "a-b.c-d.e")
	f.Fuzz(func(t *testing.T, hop, flags uint8, life uint16, valid, preferred uint32, prefix []byte, bits uint8, mtu uint32, domain string) {
		var a [16]byte
		copy(a[:], prefix)
		p, err := netip.AddrFrom16(a).Prefix(int(bits % 129))
		if err != nil {
			t.Fatal(err)
		}
		sec := func(n uint32) time.Duration { return time.Duration(n) * time.Second }
		pref := Preference(flags >> 3 & 3)
		ours := RouterAdvertisement{CurHopLimit: hop, Managed: flags&0x80 != 0, Other: flags&0x40 != 0, Preference: pref,
			RouterLifetime: sec(uint32(life)), Options: []Option{
				MTU(mtu),
				PrefixInformation{Prefix: p, OnLink: flags&1 != 0, Autonomous: flags&2 != 0, ValidLifetime: sec(valid), PreferredLifetime: sec(preferred)},
				RouteInformation{Prefix: p, Preference: pref, Lifetime: sec(valid)},
				RDNSS{Lifetime: sec(preferred), Servers: []netip.Addr{p.Addr()}},
				DNSSL{Lifetime: sec(valid), Domains: []string{domain}},
			}}
		got, err := ours.Append(nil)
		if err != nil {
			if pref == 2 || CheckDomain(domain) != nil {
				return
			}
			t.Fatalf("refused: %v", err)
		}
		theirs := &ndp.RouterAdvertisement{CurrentHopLimit: hop, ManagedConfiguration: ours.Managed, OtherConfiguration: ours.Other,
			RouterSelectionPreference: ndp.Preference(pref), RouterLifetime: ours.RouterLifetime, Options: []ndp.Option{
				ndp.NewMTU(mtu),
				&ndp.PrefixInformation{PrefixLength: uint8(p.Bits()), OnLink: flags&1 != 0, AutonomousAddressConfiguration: flags&2 != 0,
					ValidLifetime: sec(valid), PreferredLifetime: sec(preferred), Prefix: p.Addr()},
				&ndp.RouteInformation{PrefixLength: uint8(p.Bits()), Preference: ndp.Preference(pref), RouteLifetime: sec(valid), Prefix: p.Addr()},
				&ndp.RecursiveDNSServer{Lifetime: sec(preferred), Servers: []netip.Addr{p.Addr()}},
				&ndp.DNSSearchList{Lifetime: sec(valid), DomainNames: []string{strings.TrimSuffix(domain, ".")}},
			}}
		want, err := ndp.MarshalMessage(theirs)
		if err != nil && strings.Contains(domain, "--") {
			return // ndp decodes xn-- labels as Punycode; we send LDH as given
		}
		if err != nil {
			t.Fatalf("ndp refuses what we append (%x): %v", got, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ours:\n%s\nndp's:\n%s", hex.Dump(got), hex.Dump(want))
		}
		if _, err := ndp.ParseMessage(got); err != nil {
			t.Fatalf("ndp cannot parse what we append (%x): %v", got, err)
		}
	})
}

// TestImports keeps the package pure (STYLE.md section 1) and free of
// IDNA, whose tables cost the router binary (golang.org/x/net/idna and
// golang.org/x/text).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{"encoding/binary": true, "errors": true, "fmt": true, "math": true,
		"net": true, "net/netip": true, "strings": true, "time": true}
	for _, imp := range strings.Fields(string(out)) {
		if !allowed[imp] {
			t.Errorf("ndpwire imports %s; it may import only %v", imp, allowed)
		}
	}
}
