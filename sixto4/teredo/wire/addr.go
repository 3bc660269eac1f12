package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Prefix is the global Teredo IPv6 service prefix (RFC 4380 section 2.6).
var Prefix = netip.MustParsePrefix("2001::/32")

// Flag bits of a Teredo address (RFC 4380 section 4, RFC 5991 section 3:
// "CRAAAAUG AAAAAAAA").
const (
	// FlagCone is C: the client is behind a cone NAT (or none).
	FlagCone uint16 = 0x8000
	// FlagsRandom are the twelve A bits a client fills at random so that
	// an address seen in a qualification exchange cannot be scanned for
	// directly (RFC 5991). R, U and G stay zero.
	FlagsRandom uint16 = 0x3cff
)

// Flags returns the flags of an address: the cone bit and the random A
// bits from random (its other bits are ignored).
func Flags(cone bool, random uint16) uint16 {
	f := random & FlagsRandom
	if cone {
		f |= FlagCone
	}
	return f
}

// Address is a Teredo IPv6 address taken apart (RFC 4380 section 4):
// 2001:0:SSSS:SSSS:FFFF:PPPP:CCCC:CCCC with the server's IPv4 address,
// the flags, and the client's mapped UDP port and IPv4 address, both
// obfuscated (every bit inverted) so that NATs do not rewrite them.
type Address struct {
	Server netip.Addr     // the Teredo server's primary IPv4 address
	Flags  uint16         // FlagCone, FlagsRandom
	Mapped netip.AddrPort // the client's address and port as the NAT maps them
}

// Cone reports whether the cone flag is set.
func (a Address) Cone() bool { return a.Flags&FlagCone != 0 }

// ParseAddress decodes a Teredo address; it must be in 2001::/32.
func ParseAddress(ip netip.Addr) (Address, error) {
	if !ip.Is6() || ip.Is4In6() || !Prefix.Contains(ip) {
		return Address{}, fmt.Errorf("%w: %v is not a Teredo address (2001::/32)", ErrMalformed, ip)
	}
	return addressFromBytes(ip.As16()), nil
}

func addressFromBytes(b [16]byte) Address {
	var server, mapped [4]byte
	copy(server[:], b[4:8])
	for i := range mapped {
		mapped[i] = b[12+i] ^ 0xff
	}
	return Address{
		Server: netip.AddrFrom4(server),
		Flags:  binary.BigEndian.Uint16(b[8:10]),
		Mapped: netip.AddrPortFrom(netip.AddrFrom4(mapped), binary.BigEndian.Uint16(b[10:12])^0xffff),
	}
}

// IP encodes the address in 2001::/32. Server and the mapped address must
// be IPv4.
func (a Address) IP() (netip.Addr, error) {
	if !a.Server.Is4() || !a.Mapped.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("teredo: address needs IPv4 server and mapped addresses, not %v and %v", a.Server, a.Mapped.Addr())
	}
	var b [16]byte
	p := Prefix.Addr().As16()
	copy(b[:4], p[:4])
	s := a.Server.As4()
	copy(b[4:8], s[:])
	binary.BigEndian.PutUint16(b[8:10], a.Flags)
	binary.BigEndian.PutUint16(b[10:12], a.Mapped.Port()^0xffff)
	m := a.Mapped.Addr().As4()
	for i := range m {
		b[12+i] = m[i] ^ 0xff
	}
	return netip.AddrFrom16(b), nil
}

// obfuscate and unobfuscate an IPv4 address and port as in the address
// and the origin indication: every bit inverted.
func putObfuscated(b []byte, ap netip.AddrPort) {
	binary.BigEndian.PutUint16(b[0:2], ap.Port()^0xffff)
	a := ap.Addr().As4()
	for i := range a {
		b[2+i] = a[i] ^ 0xff
	}
}

func getObfuscated(b []byte) netip.AddrPort {
	var a [4]byte
	for i := range a {
		a[i] = b[2+i] ^ 0xff
	}
	return netip.AddrPortFrom(netip.AddrFrom4(a), binary.BigEndian.Uint16(b[0:2])^0xffff)
}
