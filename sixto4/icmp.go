package sixto4

import (
	"encoding/binary"
	"net/netip"
)

// ICMPv6 types (RFC 4443 section 2.1).
const (
	icmpUnreachable = 1 // code 0: no route to destination
	icmpTooBig      = 2
)

// mayAnswer reports whether an ICMPv6 error may be sent about pkt (a
// well-formed IPv6 packet): not about an ICMPv6 error, nor to an
// unspecified or multicast source (RFC 4443 section 2.4 (e)). Only the
// first next header is looked at: an error about an ICMPv6 error behind
// extension headers is possible, and the rate limit bounds it.
func mayAnswer(pkt []byte) bool {
	src := netip.AddrFrom16([16]byte(pkt[8:24]))
	if src.IsUnspecified() || src.IsMulticast() {
		return false
	}
	if pkt[6] == protoICMPv6 && len(pkt) > ipv6HeaderLen && pkt[ipv6HeaderLen] < 128 {
		return false
	}
	return true
}

// appendICMPv6Error appends an IPv6 packet from src carrying an ICMPv6
// error of type typ and code, with the 32-bit field param (the MTU of a
// Packet Too Big), about the packet invoking, to its source: "as much of
// the invoking packet as possible without the ICMPv6 packet exceeding the
// minimum IPv6 MTU" (RFC 4443 sections 2.4 (c), 3.1, 3.2).
func appendICMPv6Error(dst []byte, src netip.Addr, typ, code uint8, param uint32, invoking []byte) []byte {
	body := invoking
	if max := minIPv6MTU - ipv6HeaderLen - 8; len(body) > max {
		body = body[:max]
	}
	plen := 8 + len(body)
	start := len(dst)
	dst = append(dst, 0x60, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(plen))
	dst = append(dst, protoICMPv6, 64)
	s := src.As16()
	dst = append(dst, s[:]...)
	dst = append(dst, invoking[8:24]...) // to the invoking packet's source
	dst = append(dst, typ, code, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, param)
	dst = append(dst, body...)
	pkt := dst[start:]
	sum := checksumICMPv6(pkt[8:24], pkt[24:40], pkt[ipv6HeaderLen:])
	binary.BigEndian.PutUint16(pkt[ipv6HeaderLen+2:], sum)
	return dst
}

// checksumICMPv6 is the ICMPv6 checksum of msg (its checksum field zero)
// with the IPv6 pseudo-header (RFC 4443 section 2.3, RFC 8200 section 8.1).
func checksumICMPv6(src, dst, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(src)
	add(dst)
	sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff)
	sum += protoICMPv6
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// appendIPv4 appends an IPv4 header for a protocol-41 packet from src to
// dst carrying payload, then the payload: what the kernel builds for the
// raw socket (no DF: see Tunnel). Tests build the packets of the far side
// with it.
func appendIPv4(b []byte, src, dst netip.Addr, payload []byte) []byte {
	start := len(b)
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(ipv4HeaderLen+len(payload)))
	b = append(b, 0, 0, 0, 0, 64, protoIPv6, 0, 0)
	s, d := src.As4(), dst.As4()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	h := b[start:]
	var sum uint32
	for i := 0; i < ipv4HeaderLen; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	return append(b, payload...)
}
