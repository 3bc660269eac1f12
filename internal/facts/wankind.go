package facts

import (
	"fmt"
	"net/netip"
)

// AddrKind says what kind of IPv4 address the WAN has, which decides what
// the LAN can expect: a private or shared address means another NAT sits
// upstream (double NAT), so mappings made here do not reach the internet on
// their own and 6to4 cannot work.
type AddrKind int

// The kinds of WAN address.
const (
	KindNone    AddrKind = iota // no IPv4 address on the WAN
	KindPublic                  // globally routable
	KindPrivate                 // RFC 1918: double NAT behind a home router
	KindShared                  // RFC 6598 100.64.0.0/10: carrier-grade NAT
	KindBogon                   // not routable on the internet at all
)

func (k AddrKind) String() string {
	if k < KindNone || k > KindBogon {
		return fmt.Sprintf("addrkind(%d)", int(k))
	}
	return [...]string{"none", "public", "private", "shared", "bogon"}[k]
}

// MarshalText reports the kind by name in the JSON API.
func (k AddrKind) MarshalText() ([]byte, error) {
	if k < KindNone || k > KindBogon {
		return nil, fmt.Errorf("facts: cannot marshal address kind %d", int(k))
	}
	return []byte(k.String()), nil
}

// DoubleNAT reports whether another NAT stands between the WAN and the
// internet.
func (k AddrKind) DoubleNAT() bool { return k == KindPrivate || k == KindShared }

var (
	private = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	shared        = netip.MustParsePrefix("100.64.0.0/10")
	documentation = []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
	}
	// RFC 6890 special-purpose blocks that are never reachable from the
	// internet, less the ones classified above.
	bogons = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("240.0.0.0/4"),
	}
)

// ClassifyWAN tells the kind of a WAN address. The documentation ranges
// (RFC 5737) are bogons on the internet; allowDocumentation counts them as
// public, which is what the lab and the tests use.
func ClassifyWAN(a netip.Addr, allowDocumentation bool) AddrKind {
	if !a.IsValid() || !a.Is4() {
		return KindNone
	}
	for _, p := range private {
		if p.Contains(a) {
			return KindPrivate
		}
	}
	if shared.Contains(a) {
		return KindShared
	}
	for _, p := range documentation {
		if p.Contains(a) {
			if allowDocumentation {
				return KindPublic
			}
			return KindBogon
		}
	}
	for _, p := range bogons {
		if p.Contains(a) {
			return KindBogon
		}
	}
	return KindPublic
}

// UnmarshalText reads the names that String writes.
func (k *AddrKind) UnmarshalText(b []byte) error {
	for i := KindNone; i <= KindBogon; i++ {
		if i.String() == string(b) {
			*k = i
			return nil
		}
	}
	return fmt.Errorf("facts: unknown address kind %q", b)
}
