package ra

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// ErrMalformed wraps every reason parseRS refuses a solicitation for.
var ErrMalformed = errors.New("ra: malformed router solicitation")

// solicitation is a validated Router Solicitation (RFC 4861 4.1).
type solicitation struct {
	Source   netip.Addr       // the IPv6 source; unspecified (::) when the host has no address yet
	LinkAddr net.HardwareAddr // the Source Link-Layer Address option; nil when absent
	Options  []ndp.Option     // all options, unknown ones raw
}

// parseRS validates an ICMPv6 message received from src with IPv6 hop
// limit hopLimit as a Router Solicitation, with the checks of RFC 4861
// 6.1.1 (the kernel has checked the ICMP checksum): hop limit 255, code 0,
// ICMP length 8 or more, every option of non-zero length, and no source
// link-layer address option when the source is unspecified.
func parseRS(b []byte, src netip.Addr, hopLimit int) (solicitation, error) {
	if hopLimit != ndp.HopLimit {
		return solicitation{}, fmt.Errorf("%w: hop limit %d", ErrMalformed, hopLimit)
	}
	if len(b) < 8 {
		return solicitation{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if t := ipv6.ICMPType(b[0]); t != ipv6.ICMPTypeRouterSolicitation {
		return solicitation{}, fmt.Errorf("%w: ICMPv6 type %d", ErrMalformed, b[0])
	}
	if b[1] != 0 {
		return solicitation{}, fmt.Errorf("%w: code %d", ErrMalformed, b[1])
	}
	if !src.Is6() || src.Is4In6() {
		return solicitation{}, fmt.Errorf("%w: source %v", ErrMalformed, src)
	}
	// ndp's option parser would loop on a zero-length option; RFC 4861
	// 6.1.1 wants the packet dropped.
	for o := b[8:]; len(o) > 0; {
		if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
			return solicitation{}, fmt.Errorf("%w: bad option length", ErrMalformed)
		}
		o = o[int(o[1])*8:]
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		return solicitation{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	rs, ok := m.(*ndp.RouterSolicitation)
	if !ok {
		return solicitation{}, fmt.Errorf("%w: not a solicitation", ErrMalformed)
	}
	s := solicitation{Source: src.WithZone(""), Options: rs.Options}
	for _, o := range rs.Options {
		lla, ok := o.(*ndp.LinkLayerAddress)
		if !ok || lla.Direction != ndp.Source {
			continue
		}
		if src.IsUnspecified() {
			return solicitation{}, fmt.Errorf("%w: source link-layer address with unspecified source", ErrMalformed)
		}
		s.LinkAddr = lla.Addr
	}
	return s, nil
}
