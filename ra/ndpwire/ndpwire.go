// Package ndpwire is the Neighbor Discovery wire format (RFC 4861) as far
// as an advertising router needs it: Router Advertisements appended to
// bytes and Router Solicitations parsed from them, with the options of
// RFC 4861, RFC 4191 and RFC 8106 a home router sends. It owns no socket,
// reads no clock and logs nothing.
//
// The ICMPv6 checksum is left 0: a raw ICMPv6 socket has the kernel
// compute it on send and check it on receive (RFC 3542 3.1).
package ndpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"
)

// HopLimit is the IPv6 hop limit every Neighbor Discovery message is sent
// with, and the only one a receiver accepts (RFC 4861 6.1.1, 6.1.2).
const HopLimit = 255

// The ICMPv6 types of RFC 4861 section 4.
const (
	TypeRouterSolicitation  = 133
	TypeRouterAdvertisement = 134
)

// Infinity is the lifetime "all one bits" (0xffffffff seconds) that RFC
// 4861 4.6.2, RFC 4191 2.3 and RFC 8106 5.1 read as never ending.
const Infinity = time.Duration(math.MaxUint32) * time.Second

// ErrMalformed is wrapped by every parse and append error.
var ErrMalformed = errors.New("ndpwire: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("ndpwire: %s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

// OptionCode is an option's Type (RFC 4861 4.6).
type OptionCode uint8

// The option codes this package encodes or decodes.
const (
	OptSourceLinkLayerAddress OptionCode = 1  // RFC 4861 4.6.1
	OptPrefixInformation      OptionCode = 3  // RFC 4861 4.6.2
	OptMTU                    OptionCode = 5  // RFC 4861 4.6.4
	OptRouteInformation       OptionCode = 24 // RFC 4191 2.3
	OptRDNSS                  OptionCode = 25 // RFC 8106 5.1
	OptDNSSL                  OptionCode = 31 // RFC 8106 5.2
)

// Option is one of the option types of this package.
type Option interface {
	// appendOption appends the whole option, Type and Length included.
	appendOption(dst []byte) ([]byte, error)
}

// Preference is a 2-bit router or route preference (RFC 4191 2.1).
type Preference uint8

// The preferences of RFC 4191 2.1; 2 is reserved and refused.
const (
	Medium Preference = 0
	High   Preference = 1
	Low    Preference = 3
)

func (p Preference) check() error {
	if p > 3 || p == 2 {
		return malformed("preference %d", p)
	}
	return nil
}

// RouterSolicitation is a Router Solicitation (RFC 4861 4.1). The
// Reserved field is ignored on receipt and sent as zero.
type RouterSolicitation struct {
	Options []Option // the Source Link-Layer Address parsed, the rest raw
}

// ParseRouterSolicitation parses b, an ICMPv6 message, as a Router
// Solicitation: type 133, code 0 (RFC 4861 6.1.1), at least 8 bytes, and
// options each of non-zero length that end with the message. The
// checksum is not checked: the kernel has.
func ParseRouterSolicitation(b []byte) (RouterSolicitation, error) {
	if len(b) < 8 {
		return RouterSolicitation{}, malformed("router solicitation of %d bytes", len(b))
	}
	if b[0] != TypeRouterSolicitation {
		return RouterSolicitation{}, malformed("ICMPv6 type %d, not a router solicitation", b[0])
	}
	if b[1] != 0 {
		return RouterSolicitation{}, malformed("router solicitation code %d", b[1])
	}
	opts, err := parseOptions(b[8:])
	if err != nil {
		return RouterSolicitation{}, err
	}
	return RouterSolicitation{Options: opts}, nil
}

// Append appends the solicitation to dst, checksum 0.
func (m RouterSolicitation) Append(dst []byte) ([]byte, error) {
	dst = append(dst, TypeRouterSolicitation, 0, 0, 0, 0, 0, 0, 0)
	return appendOptions(dst, m.Options)
}

// RouterAdvertisement is a Router Advertisement (RFC 4861 4.2, with the
// router preference of RFC 4191 2.2). Durations are whole seconds
// (RouterLifetime, at most 65535 s, RFC 8319) or whole milliseconds
// (ReachableTime, RetransTimer); 0 is "unspecified" for the last two.
type RouterAdvertisement struct {
	CurHopLimit    uint8
	Managed        bool // M: addresses by DHCPv6
	Other          bool // O: other configuration by DHCPv6
	Preference     Preference
	RouterLifetime time.Duration // 0: not a default router
	ReachableTime  time.Duration
	RetransTimer   time.Duration
	Options        []Option
}

// Append appends the advertisement to dst, checksum 0. It refuses what a
// host would not read back as given: a duration that is negative, too
// long or not whole, a reserved preference, a malformed option.
func (m RouterAdvertisement) Append(dst []byte) ([]byte, error) {
	if err := m.Preference.check(); err != nil {
		return nil, err
	}
	life, err := units(m.RouterLifetime, time.Second, math.MaxUint16, "router lifetime")
	if err != nil {
		return nil, err
	}
	reach, err := units(m.ReachableTime, time.Millisecond, math.MaxUint32, "reachable time")
	if err != nil {
		return nil, err
	}
	retrans, err := units(m.RetransTimer, time.Millisecond, math.MaxUint32, "retrans timer")
	if err != nil {
		return nil, err
	}
	flags := uint8(m.Preference) << 3
	if m.Managed {
		flags |= 0x80
	}
	if m.Other {
		flags |= 0x40
	}
	dst = append(dst, TypeRouterAdvertisement, 0, 0, 0, m.CurHopLimit, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(life))
	dst = binary.BigEndian.AppendUint32(dst, reach)
	dst = binary.BigEndian.AppendUint32(dst, retrans)
	return appendOptions(dst, m.Options)
}

// units is d in whole units, refused when negative, not whole or above
// limit.
func units(d, unit time.Duration, limit uint32, what string) (uint32, error) {
	if d < 0 || d%unit != 0 || d/unit > time.Duration(limit) {
		return 0, malformed("%s %v", what, d)
	}
	return uint32(d / unit), nil
}

// lifetime is d in the 32-bit seconds of an option's lifetime field;
// Infinity is all ones.
func lifetime(d time.Duration, what string) (uint32, error) {
	return units(d, time.Second, math.MaxUint32, what)
}

func appendOptions(dst []byte, opts []Option) ([]byte, error) {
	for _, o := range opts {
		if o == nil {
			return nil, malformed("nil option")
		}
		var err error
		if dst, err = o.appendOption(dst); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// parseOptions parses the options that end a message: each has a length
// of one or more 8-byte units and fits (RFC 4861 4.6, 6.1.1).
func parseOptions(b []byte) ([]Option, error) {
	var opts []Option
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, malformed("option header cut short")
		}
		n := int(b[1]) * 8
		if n == 0 {
			return nil, malformed("option %d of length 0", b[0])
		}
		if n > len(b) {
			return nil, malformed("option %d of %d bytes, %d left", b[0], n, len(b))
		}
		data := append([]byte(nil), b[2:n]...)
		switch OptionCode(b[0]) {
		case OptSourceLinkLayerAddress:
			opts = append(opts, SourceLinkLayerAddress{Addr: data})
		default:
			opts = append(opts, RawOption{Code: OptionCode(b[0]), Data: data})
		}
		b = b[n:]
	}
	return opts, nil
}

// appendHeader appends an option's Type and Length for a body of n bytes
// (everything after the Length byte), refusing a body that does not make
// the option a whole number of 8-byte units, up to 255 of them.
func appendHeader(dst []byte, code OptionCode, n int) ([]byte, error) {
	if (n+2)%8 != 0 || n+2 > 255*8 {
		return nil, malformed("option %d with %d bytes of data", code, n)
	}
	return append(dst, byte(code), byte((n+2)/8)), nil
}

// SourceLinkLayerAddress is the Source Link-Layer Address option (RFC
// 4861 4.6.1). Addr is the option's whole data: on Ethernet, the 6-byte
// MAC address; on link layers with other address sizes, the address and
// its padding, whose layout the link layer's own RFC gives.
type SourceLinkLayerAddress struct {
	Addr net.HardwareAddr
}

func (o SourceLinkLayerAddress) appendOption(dst []byte) ([]byte, error) {
	dst, err := appendHeader(dst, OptSourceLinkLayerAddress, len(o.Addr))
	if err != nil {
		return nil, err
	}
	return append(dst, o.Addr...), nil
}

// MTU is the MTU option (RFC 4861 4.6.4).
type MTU uint32

func (o MTU) appendOption(dst []byte) ([]byte, error) {
	dst = append(dst, byte(OptMTU), 1, 0, 0)
	return binary.BigEndian.AppendUint32(dst, uint32(o)), nil
}

// PrefixInformation is the Prefix Information option (RFC 4861 4.6.2).
// Prefix must be an IPv6 prefix with the bits after its length zero
// ("MUST be initialized to zero by the sender").
type PrefixInformation struct {
	Prefix            netip.Prefix
	OnLink            bool // L
	Autonomous        bool // A: for SLAAC (RFC 4862 5.5.3)
	ValidLifetime     time.Duration
	PreferredLifetime time.Duration
}

func (o PrefixInformation) appendOption(dst []byte) ([]byte, error) {
	if err := checkPrefix(o.Prefix); err != nil {
		return nil, err
	}
	valid, err := lifetime(o.ValidLifetime, "valid lifetime")
	if err != nil {
		return nil, err
	}
	preferred, err := lifetime(o.PreferredLifetime, "preferred lifetime")
	if err != nil {
		return nil, err
	}
	var flags uint8
	if o.OnLink {
		flags |= 0x80
	}
	if o.Autonomous {
		flags |= 0x40
	}
	dst = append(dst, byte(OptPrefixInformation), 4, byte(o.Prefix.Bits()), flags)
	dst = binary.BigEndian.AppendUint32(dst, valid)
	dst = binary.BigEndian.AppendUint32(dst, preferred)
	dst = append(dst, 0, 0, 0, 0)
	a := o.Prefix.Addr().As16()
	return append(dst, a[:]...), nil
}

func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Zone() != "" || p.Masked() != p {
		return malformed("prefix %v: not an IPv6 prefix with its host bits zero", p)
	}
	return nil
}

// RouteInformation is the Route Information option (RFC 4191 2.3), sent
// in its shortest form: the prefix cut to the 8-byte units its length
// needs.
type RouteInformation struct {
	Prefix     netip.Prefix // host bits zero, as for PrefixInformation
	Preference Preference
	Lifetime   time.Duration
}

func (o RouteInformation) appendOption(dst []byte) ([]byte, error) {
	if err := checkPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if err := o.Preference.check(); err != nil {
		return nil, err
	}
	life, err := lifetime(o.Lifetime, "route lifetime")
	if err != nil {
		return nil, err
	}
	units := 1 // Length 1: no prefix bytes (prefix length 0)
	switch bits := o.Prefix.Bits(); {
	case bits > 64:
		units = 3
	case bits > 0:
		units = 2
	}
	dst = append(dst, byte(OptRouteInformation), byte(units), byte(o.Prefix.Bits()), uint8(o.Preference)<<3)
	dst = binary.BigEndian.AppendUint32(dst, life)
	a := o.Prefix.Addr().As16()
	return append(dst, a[:(units-1)*8]...), nil
}

// RDNSS is the Recursive DNS Server option (RFC 8106 5.1): one server or
// more. A zone on an address is not sent.
type RDNSS struct {
	Lifetime time.Duration
	Servers  []netip.Addr
}

func (o RDNSS) appendOption(dst []byte) ([]byte, error) {
	if len(o.Servers) == 0 || len(o.Servers) > 127 {
		return nil, malformed("RDNSS with %d servers", len(o.Servers))
	}
	life, err := lifetime(o.Lifetime, "RDNSS lifetime")
	if err != nil {
		return nil, err
	}
	dst = append(dst, byte(OptRDNSS), byte(1+2*len(o.Servers)), 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, life)
	for _, s := range o.Servers {
		if !s.Is6() {
			return nil, malformed("RDNSS server %v is not IPv6", s)
		}
		a := s.As16()
		dst = append(dst, a[:]...)
	}
	return dst, nil
}

// DNSSL is the DNS Search List option (RFC 8106 5.2): one domain or more,
// each of ASCII letter-digit-hyphen labels (CheckDomain), in the DNS wire
// format, the option padded with zeros.
type DNSSL struct {
	Lifetime time.Duration
	Domains  []string
}

func (o DNSSL) appendOption(dst []byte) ([]byte, error) {
	if len(o.Domains) == 0 {
		return nil, malformed("DNSSL without a domain")
	}
	life, err := lifetime(o.Lifetime, "DNSSL lifetime")
	if err != nil {
		return nil, err
	}
	start := len(dst)
	dst = append(dst, byte(OptDNSSL), 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, life)
	for _, d := range o.Domains {
		if dst, err = appendDomain(dst, d); err != nil {
			return nil, err
		}
	}
	for (len(dst)-start)%8 != 0 {
		dst = append(dst, 0)
	}
	n := (len(dst) - start) / 8
	if n > 255 {
		return nil, malformed("DNSSL of %d bytes", n*8)
	}
	dst[start+1] = byte(n)
	return dst, nil
}

// CheckDomain reports whether name can go in a DNSSL option: labels of 1
// to 63 ASCII letters, digits and hyphens, not starting or ending with a
// hyphen (RFC 1123 2.1), at most 253 characters; one trailing dot is
// allowed. Internationalized names must be given in their A-label
// (xn--) form: this package does no IDNA.
func CheckDomain(name string) error {
	_, err := appendDomain(nil, name)
	return err
}

// appendDomain appends name in the DNS wire format (RFC 1035 3.1):
// length-prefixed labels and a zero byte.
func appendDomain(dst []byte, name string) ([]byte, error) {
	bad := func(why string) error { return malformed("DNSSL domain %q: %s", name, why) }
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if name == "" {
		return nil, bad("empty")
	}
	if len(name) > 253 {
		return nil, bad("longer than 253 characters")
	}
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 {
			return nil, bad("a label of 0 or more than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return nil, bad("a label starts or ends with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return nil, bad("not an ASCII letter-digit-hyphen name")
			}
		}
		dst = append(dst, byte(len(label)))
		dst = append(dst, label...)
	}
	return append(dst, 0), nil
}

// RawOption is an option this package does not decode: its Type and the
// bytes after its Length, kept so that it survives a round trip.
type RawOption struct {
	Code OptionCode
	Data []byte // a whole number of 8-byte units, less the 2 header bytes
}

func (o RawOption) appendOption(dst []byte) ([]byte, error) {
	dst, err := appendHeader(dst, o.Code, len(o.Data))
	if err != nil {
		return nil, err
	}
	return append(dst, o.Data...), nil
}
