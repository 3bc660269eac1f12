package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Auth is the authentication header (RFC 4380 section 5.1.1) that
// qualification carries: the client's nonce, echoed by the server, ties
// an RA to the RS that asked for it. With ID-len and AU-len zero (no
// shared secret) it is a 13-byte header.
type Auth struct {
	ClientID     []byte // nil when ID-len is 0
	AuthValue    []byte // nil when AU-len is 0
	Nonce        [8]byte
	Confirmation uint8 // non-zero: the client's secret needs updating
}

// Len is the header's size on the wire.
func (a *Auth) Len() int { return 13 + len(a.ClientID) + len(a.AuthValue) }

// Packet is one Teredo UDP payload (RFC 4380 sections 5.1.1 and 4):
// optionally an authentication header, then optionally an origin
// indication, then an IPv6 packet, then RFC 6081 trailers (kept raw:
// nothing here uses them yet).
type Packet struct {
	Auth     *Auth          // nil: no authentication header
	Origin   netip.AddrPort // invalid: no origin indication
	IPv6     IPv6
	Trailers []byte // nil when none
}

// ParsePacket decodes a Teredo UDP payload.
func ParsePacket(b []byte) (Packet, error) {
	var p Packet
	if len(b) >= 2 && b[0] == 0 && b[1] == 1 {
		if len(b) < 13 {
			return Packet{}, fmt.Errorf("%w: authentication header of %d bytes", ErrMalformed, len(b))
		}
		idLen, auLen := int(b[2]), int(b[3])
		n := 13 + idLen + auLen
		if len(b) < n {
			return Packet{}, fmt.Errorf("%w: authentication header needs %d bytes, has %d", ErrMalformed, n, len(b))
		}
		a := &Auth{Confirmation: b[n-1]}
		if idLen > 0 {
			a.ClientID = append([]byte(nil), b[4:4+idLen]...)
		}
		if auLen > 0 {
			a.AuthValue = append([]byte(nil), b[4+idLen:4+idLen+auLen]...)
		}
		copy(a.Nonce[:], b[4+idLen+auLen:n-1])
		p.Auth = a
		b = b[n:]
	}
	// RFC 4380 section 5.1.1: the origin indication, if present, follows
	// the authentication header.
	if len(b) >= 2 && b[0] == 0 && b[1] == 0 {
		if len(b) < 8 {
			return Packet{}, fmt.Errorf("%w: origin indication of %d bytes", ErrMalformed, len(b))
		}
		p.Origin = getObfuscated(b[2:8])
		b = b[8:]
	}
	ip, n, err := parseIPv6(b)
	if err != nil {
		return Packet{}, err
	}
	p.IPv6 = ip
	if n < len(b) {
		p.Trailers = append([]byte(nil), b[n:]...)
	}
	return p, nil
}

// Append encodes the packet after dst.
func (p Packet) Append(dst []byte) ([]byte, error) {
	if a := p.Auth; a != nil {
		if len(a.ClientID) > 255 || len(a.AuthValue) > 255 {
			return nil, fmt.Errorf("teredo: authentication header fields of %d and %d bytes (at most 255)", len(a.ClientID), len(a.AuthValue))
		}
		dst = append(dst, 0, 1, byte(len(a.ClientID)), byte(len(a.AuthValue)))
		dst = append(dst, a.ClientID...)
		dst = append(dst, a.AuthValue...)
		dst = append(dst, a.Nonce[:]...)
		dst = append(dst, a.Confirmation)
	}
	if p.Origin.IsValid() {
		if !p.Origin.Addr().Is4() {
			return nil, fmt.Errorf("teredo: origin %v is not IPv4", p.Origin)
		}
		var o [8]byte
		putObfuscated(o[2:], p.Origin)
		dst = append(dst, o[:]...)
	}
	dst, err := p.IPv6.Append(dst)
	if err != nil {
		return nil, err
	}
	return append(dst, p.Trailers...), nil
}

// Next-header values this package knows.
const (
	ProtoICMPv6 = 58
	ProtoNone   = 59 // "no next header": a bubble
)

// IPv6 is an IPv6 header and the payload it announces (RFC 8200).
// Extension headers stay in Payload.
type IPv6 struct {
	TrafficClass uint8
	FlowLabel    uint32 // 20 bits
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr
	Payload      []byte // nil when empty
}

// ParseIPv6 decodes an IPv6 packet; bytes past its payload length are
// ignored.
func ParseIPv6(b []byte) (IPv6, error) {
	ip, _, err := parseIPv6(b)
	return ip, err
}

func parseIPv6(b []byte) (IPv6, int, error) {
	if len(b) < 40 {
		return IPv6{}, 0, fmt.Errorf("%w: IPv6 packet of %d bytes", ErrMalformed, len(b))
	}
	if b[0]>>4 != 6 {
		return IPv6{}, 0, fmt.Errorf("%w: IP version %d, not 6", ErrMalformed, b[0]>>4)
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if len(b) < 40+plen {
		return IPv6{}, 0, fmt.Errorf("%w: IPv6 payload length %d, %d bytes left", ErrMalformed, plen, len(b)-40)
	}
	vtf := binary.BigEndian.Uint32(b[0:4])
	ip := IPv6{
		TrafficClass: uint8(vtf >> 20),
		FlowLabel:    vtf & 0xfffff,
		NextHeader:   b[6],
		HopLimit:     b[7],
		Src:          netip.AddrFrom16([16]byte(b[8:24])),
		Dst:          netip.AddrFrom16([16]byte(b[24:40])),
	}
	if plen > 0 {
		ip.Payload = append([]byte(nil), b[40:40+plen]...)
	}
	return ip, 40 + plen, nil
}

// Append encodes the packet after dst.
func (ip IPv6) Append(dst []byte) ([]byte, error) {
	if !ip.Src.Is6() || !ip.Dst.Is6() || ip.Src.Zone() != "" || ip.Dst.Zone() != "" {
		return nil, fmt.Errorf("teredo: IPv6 packet from %v to %v: both must be IPv6 without zone", ip.Src, ip.Dst)
	}
	if ip.FlowLabel > 0xfffff {
		return nil, fmt.Errorf("teredo: flow label %#x wider than 20 bits", ip.FlowLabel)
	}
	if len(ip.Payload) > 0xffff {
		return nil, fmt.Errorf("teredo: IPv6 payload of %d bytes (jumbograms are not carried)", len(ip.Payload))
	}
	var h [40]byte
	binary.BigEndian.PutUint32(h[0:4], 6<<28|uint32(ip.TrafficClass)<<20|ip.FlowLabel)
	binary.BigEndian.PutUint16(h[4:6], uint16(len(ip.Payload)))
	h[6], h[7] = ip.NextHeader, ip.HopLimit
	s, d := ip.Src.As16(), ip.Dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	dst = append(dst, h[:]...)
	return append(dst, ip.Payload...), nil
}

// Bubble is a Teredo bubble from src to dst (RFC 4380 section 2.8): an
// IPv6 header with no payload and next header 59, sent to open a NAT
// mapping or to ask a peer to open one.
func Bubble(src, dst netip.Addr) IPv6 {
	return IPv6{NextHeader: ProtoNone, HopLimit: 255, Src: src, Dst: dst}
}

// IsBubble reports whether ip is a bubble.
func (ip IPv6) IsBubble() bool { return ip.NextHeader == ProtoNone && len(ip.Payload) == 0 }
