package wire

import (
	"fmt"
	"net/netip"
)

// AllRouters is where a qualification RS is addressed (RFC 4380 section
// 5.2.1): the link-local all-routers group, over the unicast UDP path to
// the server.
var AllRouters = netip.MustParseAddr("ff02::2")

var linkLocal = netip.MustParsePrefix("fe80::/10")

// QualificationRS is the router solicitation a client sends to its server
// to qualify and to refresh its mapping (RFC 4380 sections 5.2.1 and
// 5.2.7), with the nonce the server echoes in its RA. Its link-local
// source carries the client's flags in the first 16 bits of the
// interface identifier; the server looks at the cone bit only.
type QualificationRS struct {
	Auth *Auth      // the nonce; nil without authentication header
	Src  netip.Addr // link-local
	Dst  netip.Addr // AllRouters
	RS   RouterSolicitation
}

// NewQualificationRS builds an RS with nonce. random fills the link-local
// interface identifier around the flags: the cone bit as asked, RFC 5991's
// random A bits from random, R, U and G zero.
//
// RFC 5991 has clients stop asking for the cone test (the cone bit in the
// RS): an answer that proves a cone NAT also tells any observer that the
// client is reachable by anyone, and a cone address invites scans. The
// client in the parent package always passes cone = false.
func NewQualificationRS(nonce [8]byte, random [8]byte, cone bool) QualificationRS {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	f := Flags(cone, uint16(random[0])<<8|uint16(random[1]))
	b[8], b[9] = byte(f>>8), byte(f)
	copy(b[10:], random[2:])
	return QualificationRS{Auth: &Auth{Nonce: nonce}, Src: netip.AddrFrom16(b), Dst: AllRouters}
}

// Cone reports whether the RS asks for the cone test (RFC 4380 section
// 5.2.1: the server then answers from its other address).
func (q QualificationRS) Cone() bool { return q.Src.As16()[8]&0x80 != 0 }

// ParseQualificationRS decodes a Teredo UDP payload holding an RS.
func ParseQualificationRS(b []byte) (QualificationRS, error) {
	p, err := ParsePacket(b)
	if err != nil {
		return QualificationRS{}, err
	}
	if !linkLocal.Contains(p.IPv6.Src) {
		return QualificationRS{}, fmt.Errorf("%w: RS from %v, not link-local", ErrMalformed, p.IPv6.Src)
	}
	msg, err := p.IPv6.ICMPv6Message()
	if err != nil {
		return QualificationRS{}, err
	}
	rs, err := ParseRouterSolicitation(msg)
	if err != nil {
		return QualificationRS{}, err
	}
	return QualificationRS{Auth: p.Auth, Src: p.IPv6.Src, Dst: p.IPv6.Dst, RS: rs}, nil
}

// Append encodes the RS as a Teredo UDP payload after dst.
func (q QualificationRS) Append(dst []byte) ([]byte, error) {
	if !linkLocal.Contains(q.Src) {
		return nil, fmt.Errorf("teredo: RS from %v, not link-local", q.Src)
	}
	msg, err := q.RS.Append(nil)
	if err != nil {
		return nil, err
	}
	ip, err := ICMPv6(q.Src, q.Dst, 255, msg)
	if err != nil {
		return nil, err
	}
	return Packet{Auth: q.Auth, IPv6: ip}.Append(dst)
}

// QualificationRA is a Teredo server's answer to an RS (RFC 4380 section
// 5.2.1): the origin indication gives the client's mapped address and
// port as the server saw them, a prefix information option gives the
// server's Teredo /64 (2001:0:SSSS:SSSS::/64), and the authentication
// header, if the RS had one, echoes its nonce.
type QualificationRA struct {
	Auth     *Auth
	Origin   netip.AddrPort
	Src, Dst netip.Addr
	RA       RouterAdvertisement
}

// TeredoPrefix returns the first /64 prefix in 2001::/32 the RA gives.
func (q QualificationRA) TeredoPrefix() (netip.Prefix, bool) {
	for _, p := range q.RA.Prefixes() {
		if p.Prefix.Bits() == 64 && Prefix.Contains(p.Prefix.Addr()) {
			return p.Prefix, true
		}
	}
	return netip.Prefix{}, false
}

// Address is the Teredo address the RA makes for a client with flags:
// the server from the prefix, the mapped address from the origin.
func (q QualificationRA) Address(flags uint16) Address {
	p, _ := q.TeredoPrefix()
	a := addressFromBytes(p.Addr().As16())
	return Address{Server: a.Server, Flags: flags, Mapped: q.Origin}
}

// ParseQualificationRA decodes a Teredo UDP payload holding an RA; it
// must have an origin indication and a Teredo prefix.
func ParseQualificationRA(b []byte) (QualificationRA, error) {
	p, err := ParsePacket(b)
	if err != nil {
		return QualificationRA{}, err
	}
	if !p.Origin.IsValid() {
		return QualificationRA{}, fmt.Errorf("%w: RA without origin indication", ErrMalformed)
	}
	msg, err := p.IPv6.ICMPv6Message()
	if err != nil {
		return QualificationRA{}, err
	}
	ra, err := ParseRouterAdvertisement(msg)
	if err != nil {
		return QualificationRA{}, err
	}
	q := QualificationRA{Auth: p.Auth, Origin: p.Origin, Src: p.IPv6.Src, Dst: p.IPv6.Dst, RA: ra}
	if _, ok := q.TeredoPrefix(); !ok {
		return QualificationRA{}, fmt.Errorf("%w: RA without a Teredo /64 prefix", ErrMalformed)
	}
	return q, nil
}

// Append encodes the RA as a Teredo UDP payload after dst.
func (q QualificationRA) Append(dst []byte) ([]byte, error) {
	if !q.Origin.IsValid() {
		return nil, fmt.Errorf("teredo: RA without origin indication")
	}
	if _, ok := q.TeredoPrefix(); !ok {
		return nil, fmt.Errorf("teredo: RA without a Teredo /64 prefix")
	}
	msg, err := q.RA.Append(nil)
	if err != nil {
		return nil, err
	}
	ip, err := ICMPv6(q.Src, q.Dst, 255, msg)
	if err != nil {
		return nil, err
	}
	return Packet{Auth: q.Auth, Origin: q.Origin, IPv6: ip}.Append(dst)
}
