package ra

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"gateway/ra/ndpwire"
)

// ErrMalformed wraps every reason parseRS refuses a solicitation for.
var ErrMalformed = errors.New("ra: malformed router solicitation")

// solicitation is a validated Router Solicitation (RFC 4861 4.1).
type solicitation struct {
	Source   netip.Addr       // the IPv6 source; unspecified (::) when the host has no address yet
	LinkAddr net.HardwareAddr // the Source Link-Layer Address option; nil when absent
	Options  []ndpwire.Option // all options, unknown ones raw
}

// parseRS validates an ICMPv6 message received from src with IPv6 hop
// limit hopLimit as a Router Solicitation, with the checks of RFC 4861
// 6.1.1 (the kernel has checked the ICMP checksum): hop limit 255, code 0,
// ICMP length 8 or more, every option of non-zero length, and no source
// link-layer address option when the source is unspecified.
func parseRS(b []byte, src netip.Addr, hopLimit int) (solicitation, error) {
	if hopLimit != ndpwire.HopLimit {
		return solicitation{}, fmt.Errorf("%w: hop limit %d", ErrMalformed, hopLimit)
	}
	if !src.Is6() || src.Is4In6() {
		return solicitation{}, fmt.Errorf("%w: source %v", ErrMalformed, src)
	}
	rs, err := ndpwire.ParseRouterSolicitation(b)
	if err != nil {
		return solicitation{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	s := solicitation{Source: src.WithZone(""), Options: rs.Options}
	for _, o := range rs.Options {
		lla, ok := o.(ndpwire.SourceLinkLayerAddress)
		if !ok {
			continue
		}
		if src.IsUnspecified() {
			return solicitation{}, fmt.Errorf("%w: source link-layer address with unspecified source", ErrMalformed)
		}
		s.LinkAddr = lla.Addr
	}
	return s, nil
}
