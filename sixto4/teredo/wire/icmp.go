package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// ICMPv6 types used in qualification (RFC 4861 section 4).
const (
	TypeRouterSolicitation  = 133
	TypeRouterAdvertisement = 134
)

// Checksum is the ICMPv6 checksum of msg sent from src to dst (RFC 4443
// section 2.3): the ones' complement sum over the pseudo-header and msg,
// with msg's own checksum field (bytes 2 and 3) counted as zero.
func Checksum(src, dst netip.Addr, msg []byte) uint16 {
	s, d := src.As16(), dst.As16()
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(s[:])
	add(d[:])
	sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff) + ProtoICMPv6
	if len(msg) >= 4 {
		add(msg[:2])
		add(msg[4:])
	} else {
		add(msg)
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ICMPv6 wraps msg (an ICMPv6 message whose checksum field is ignored) in
// an IPv6 packet from src to dst, with its checksum filled in.
func ICMPv6(src, dst netip.Addr, hopLimit uint8, msg []byte) (IPv6, error) {
	if len(msg) < 4 {
		return IPv6{}, fmt.Errorf("teredo: ICMPv6 message of %d bytes", len(msg))
	}
	m := append([]byte(nil), msg...)
	binary.BigEndian.PutUint16(m[2:4], Checksum(src, dst, m))
	return IPv6{NextHeader: ProtoICMPv6, HopLimit: hopLimit, Src: src, Dst: dst, Payload: m}, nil
}

// ICMPv6Message returns ip's ICMPv6 message after checking its checksum.
func (ip IPv6) ICMPv6Message() ([]byte, error) {
	if ip.NextHeader != ProtoICMPv6 {
		return nil, fmt.Errorf("%w: next header %d, not ICMPv6", ErrMalformed, ip.NextHeader)
	}
	if len(ip.Payload) < 4 {
		return nil, fmt.Errorf("%w: ICMPv6 message of %d bytes", ErrMalformed, len(ip.Payload))
	}
	if got, want := binary.BigEndian.Uint16(ip.Payload[2:4]), Checksum(ip.Src, ip.Dst, ip.Payload); got != want {
		return nil, fmt.Errorf("%w: ICMPv6 checksum %#04x, want %#04x", ErrMalformed, got, want)
	}
	return ip.Payload, nil
}

// Option is a neighbor discovery option (RFC 4861 section 4.6) kept raw:
// Data is what follows the type and length bytes, so len(Data)+2 is a
// non-zero multiple of 8.
type Option struct {
	Type uint8
	Data []byte
}

// Option types used here.
const (
	OptPrefixInformation = 3
	OptMTU               = 5
)

func parseOptions(b []byte) ([]Option, error) {
	var opts []Option
	for len(b) > 0 {
		if len(b) < 8 || b[1] == 0 || len(b) < int(b[1])*8 {
			return nil, fmt.Errorf("%w: ND option (%d bytes left)", ErrMalformed, len(b))
		}
		n := int(b[1]) * 8
		opts = append(opts, Option{Type: b[0], Data: append([]byte(nil), b[2:n]...)})
		b = b[n:]
	}
	return opts, nil
}

func appendOptions(dst []byte, opts []Option) ([]byte, error) {
	for _, o := range opts {
		n := len(o.Data) + 2
		if n%8 != 0 || n > 255*8 {
			return nil, fmt.Errorf("teredo: ND option %d with %d data bytes (length+2 must be a multiple of 8)", o.Type, len(o.Data))
		}
		dst = append(dst, o.Type, byte(n/8))
		dst = append(dst, o.Data...)
	}
	return dst, nil
}

// RouterSolicitation is an ICMPv6 router solicitation (RFC 4861 section
// 4.1).
type RouterSolicitation struct {
	Options []Option
}

// ParseRouterSolicitation decodes an ICMPv6 message (type, code,
// checksum and body; the checksum is checked by ICMPv6Message).
func ParseRouterSolicitation(msg []byte) (RouterSolicitation, error) {
	if len(msg) < 8 || msg[0] != TypeRouterSolicitation || msg[1] != 0 {
		return RouterSolicitation{}, fmt.Errorf("%w: not a router solicitation", ErrMalformed)
	}
	opts, err := parseOptions(msg[8:])
	return RouterSolicitation{Options: opts}, err
}

// Append encodes the message after dst with a zero checksum (ICMPv6
// fills it in).
func (rs RouterSolicitation) Append(dst []byte) ([]byte, error) {
	dst = append(dst, TypeRouterSolicitation, 0, 0, 0, 0, 0, 0, 0)
	return appendOptions(dst, rs.Options)
}

// RouterAdvertisement is an ICMPv6 router advertisement (RFC 4861
// section 4.2); options stay raw, Prefixes decodes the prefix ones.
type RouterAdvertisement struct {
	CurHopLimit    uint8
	Flags          uint8         // M, O, ...
	RouterLifetime time.Duration // whole seconds, at most 65535 s
	ReachableTime  time.Duration // whole milliseconds
	RetransTimer   time.Duration // whole milliseconds
	Options        []Option
}

// ParseRouterAdvertisement decodes an ICMPv6 message.
func ParseRouterAdvertisement(msg []byte) (RouterAdvertisement, error) {
	if len(msg) < 16 || msg[0] != TypeRouterAdvertisement || msg[1] != 0 {
		return RouterAdvertisement{}, fmt.Errorf("%w: not a router advertisement", ErrMalformed)
	}
	opts, err := parseOptions(msg[16:])
	if err != nil {
		return RouterAdvertisement{}, err
	}
	return RouterAdvertisement{
		CurHopLimit:    msg[4],
		Flags:          msg[5],
		RouterLifetime: time.Duration(binary.BigEndian.Uint16(msg[6:8])) * time.Second,
		ReachableTime:  time.Duration(binary.BigEndian.Uint32(msg[8:12])) * time.Millisecond,
		RetransTimer:   time.Duration(binary.BigEndian.Uint32(msg[12:16])) * time.Millisecond,
		Options:        opts,
	}, nil
}

// Append encodes the message after dst with a zero checksum.
func (ra RouterAdvertisement) Append(dst []byte) ([]byte, error) {
	lt, err := units(ra.RouterLifetime, time.Second, 0xffff)
	if err != nil {
		return nil, fmt.Errorf("teredo: router lifetime: %w", err)
	}
	reach, err := units(ra.ReachableTime, time.Millisecond, 0xffffffff)
	if err != nil {
		return nil, fmt.Errorf("teredo: reachable time: %w", err)
	}
	retrans, err := units(ra.RetransTimer, time.Millisecond, 0xffffffff)
	if err != nil {
		return nil, fmt.Errorf("teredo: retrans timer: %w", err)
	}
	dst = append(dst, TypeRouterAdvertisement, 0, 0, 0, ra.CurHopLimit, ra.Flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(lt))
	dst = binary.BigEndian.AppendUint32(dst, uint32(reach))
	dst = binary.BigEndian.AppendUint32(dst, uint32(retrans))
	return appendOptions(dst, ra.Options)
}

// units is d in whole units no greater than max.
func units(d, unit time.Duration, max uint64) (uint64, error) {
	if d < 0 || d%unit != 0 || uint64(d/unit) > max {
		return 0, fmt.Errorf("%v is not a whole number of %v up to %d", d, unit, max)
	}
	return uint64(d / unit), nil
}

// PrefixInformation is the prefix information option (RFC 4861 section
// 4.6.2). A Teredo server's RA carries its Teredo /64 in one.
type PrefixInformation struct {
	Prefix            netip.Prefix
	OnLink            bool // L
	Autonomous        bool // A
	ValidLifetime     time.Duration
	PreferredLifetime time.Duration
}

// ParsePrefixInformation decodes o, which must be of type 3. The prefix
// is masked to its length: RFC 4861 section 4.6.2 has receivers ignore
// the bits past it.
func ParsePrefixInformation(o Option) (PrefixInformation, error) {
	if o.Type != OptPrefixInformation || len(o.Data) != 30 {
		return PrefixInformation{}, fmt.Errorf("%w: prefix information option (type %d, %d bytes)", ErrMalformed, o.Type, len(o.Data))
	}
	d := o.Data
	if d[0] > 128 {
		return PrefixInformation{}, fmt.Errorf("%w: prefix length %d", ErrMalformed, d[0])
	}
	p, err := netip.AddrFrom16([16]byte(d[14:30])).Prefix(int(d[0]))
	if err != nil {
		return PrefixInformation{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return PrefixInformation{
		Prefix:            p,
		OnLink:            d[1]&0x80 != 0,
		Autonomous:        d[1]&0x40 != 0,
		ValidLifetime:     time.Duration(binary.BigEndian.Uint32(d[2:6])) * time.Second,
		PreferredLifetime: time.Duration(binary.BigEndian.Uint32(d[6:10])) * time.Second,
	}, nil
}

// Option encodes the prefix information as an option.
func (p PrefixInformation) Option() (Option, error) {
	if !p.Prefix.IsValid() || !p.Prefix.Addr().Is6() || p.Prefix.Addr().Zone() != "" || p.Prefix != p.Prefix.Masked() {
		return Option{}, fmt.Errorf("teredo: prefix %v is not a masked IPv6 prefix", p.Prefix)
	}
	valid, err := units(p.ValidLifetime, time.Second, 0xffffffff)
	if err != nil {
		return Option{}, fmt.Errorf("teredo: valid lifetime: %w", err)
	}
	pref, err := units(p.PreferredLifetime, time.Second, 0xffffffff)
	if err != nil {
		return Option{}, fmt.Errorf("teredo: preferred lifetime: %w", err)
	}
	d := make([]byte, 30)
	d[0] = byte(p.Prefix.Bits())
	if p.OnLink {
		d[1] |= 0x80
	}
	if p.Autonomous {
		d[1] |= 0x40
	}
	binary.BigEndian.PutUint32(d[2:6], uint32(valid))
	binary.BigEndian.PutUint32(d[6:10], uint32(pref))
	a := p.Prefix.Addr().As16()
	copy(d[14:30], a[:])
	return Option{Type: OptPrefixInformation, Data: d}, nil
}

// Prefixes returns the RA's well-formed prefix information options.
func (ra RouterAdvertisement) Prefixes() []PrefixInformation {
	var ps []PrefixInformation
	for _, o := range ra.Options {
		if p, err := ParsePrefixInformation(o); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}
