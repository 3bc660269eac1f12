package sixto4

import (
	"net/netip"
)

// prefix6to4 is 2002::/16, the 6to4 prefix (RFC 3056 section 2).
var prefix6to4 = netip.MustParsePrefix("2002::/16")

// PrefixOf is the 6to4 site prefix 2002:WWXX:YYZZ::/48 of the IPv4
// address v4 (RFC 3056 section 2); false if v4 is not IPv4.
func PrefixOf(v4 netip.Addr) (netip.Prefix, bool) {
	if !v4.Is4() {
		return netip.Prefix{}, false
	}
	b := v4.As4()
	var a [16]byte
	a[0], a[1] = 0x20, 0x02
	copy(a[2:6], b[:])
	return netip.PrefixFrom(netip.AddrFrom16(a), 48), true
}

// RouterAddr is the router's own address in the 6to4 prefix of v4,
// 2002:WWXX:YYZZ::1.
func RouterAddr(v4 netip.Addr) (netip.Addr, bool) {
	p, ok := PrefixOf(v4)
	if !ok {
		return netip.Addr{}, false
	}
	a := p.Addr().As16()
	a[15] = 1
	return netip.AddrFrom16(a), true
}

// EmbeddedIPv4 is the IPv4 address inside a 6to4 address 2002:WWXX:YYZZ::;
// false if v6 is not in 2002::/16.
func EmbeddedIPv4(v6 netip.Addr) (netip.Addr, bool) {
	if !v6.Is6() || v6.Is4In6() || !prefix6to4.Contains(v6) {
		return netip.Addr{}, false
	}
	b := v6.As16()
	return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
}

// embedded4 is EmbeddedIPv4 over the 16 bytes of an address in a packet.
func embedded4(b []byte) (netip.Addr, bool) {
	if b[0] != 0x20 || b[1] != 0x02 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
}

// Class says why an IPv4 address cannot be a 6to4 site's: the RFC 3964
// section 5.3.1 list (private, shared, loopback, link-local, multicast,
// broadcast, 0/8) and the other special-purpose blocks of RFC 6890.
type Class uint8

const (
	Public        Class = iota
	Zero                // 0.0.0.0/8, "this network"
	Private             // 10/8, 172.16/12, 192.168/16 (RFC 1918)
	Shared              // 100.64/10, carrier-grade NAT (RFC 6598)
	Loopback            // 127/8
	LinkLocal           // 169.254/16
	Multicast           // 224/4
	Broadcast           // 255.255.255.255
	Reserved            // 240/4 (RFC 1112), 192.0.0/24 (RFC 6890), 198.18/15 (RFC 2544)
	Documentation       // 192.0.2/24, 198.51.100/24, 203.0.113/24 (RFC 5737)
	NotIPv4
)

var classNames = [...]string{"public", "zero", "private", "shared", "loopback", "link-local", "multicast", "broadcast", "reserved", "documentation", "not-ipv4"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "class?"
}

// ClassOf classifies an IPv4 address. It runs for every packet, hence
// the switch on bytes rather than a list of netip.Prefix.
func ClassOf(v4 netip.Addr) Class {
	if !v4.Is4() {
		return NotIPv4
	}
	b := v4.As4()
	switch {
	case b[0] == 0:
		return Zero
	case b[0] == 10, b[0] == 172 && b[1]&0xf0 == 16, b[0] == 192 && b[1] == 168:
		return Private
	case b[0] == 100 && b[1]&0xc0 == 64:
		return Shared
	case b[0] == 127:
		return Loopback
	case b[0] == 169 && b[1] == 254:
		return LinkLocal
	case b == [4]byte{255, 255, 255, 255}:
		return Broadcast
	case b[0] >= 240, b[0] == 192 && b[1] == 0 && b[2] == 0, b[0] == 198 && b[1]&0xfe == 18:
		return Reserved
	case b[0] >= 224:
		return Multicast
	case b[0] == 192 && b[1] == 0 && b[2] == 2, b[0] == 198 && b[1] == 51 && b[2] == 100, b[0] == 203 && b[1] == 0 && b[2] == 113:
		return Documentation
	}
	return Public
}

// Usable reports whether v4 can be a 6to4 site's or relay's address: a
// public unicast address. allowDoc also admits the RFC 5737 documentation
// ranges, which the lab uses as its "public" internet.
func Usable(v4 netip.Addr, allowDoc bool) bool {
	c := ClassOf(v4)
	return c == Public || allowDoc && c == Documentation
}
