package dhcp4

import "net/netip"

// Route is one classless static route of option 121 (RFC 3442).
type Route struct {
	Dest    netip.Prefix // network address (host bits zero), e.g. 10.8.0.0/16
	Gateway netip.Addr   // a router on the LAN, or 0.0.0.0 for an on-link route
}

// AppendRoutes appends the data of option 121 (RFC 3442 section 2): for
// each route the prefix length, the significant octets of the
// destination, and the router. Routes that are not IPv4 are left out.
func AppendRoutes(dst []byte, routes []Route) []byte {
	for _, r := range routes {
		if !r.Dest.IsValid() || !r.Dest.Addr().Is4() || !r.Gateway.Is4() {
			continue
		}
		bits := r.Dest.Bits()
		d, gw := r.Dest.Masked().Addr().As4(), r.Gateway.As4()
		dst = append(append(dst, byte(bits)), d[:(bits+7)/8]...)
		dst = append(dst, gw[:]...)
	}
	return dst
}

// ParseRoutes reads the data of option 121. A width over 32, a route
// cut short, or a destination with bits set beyond its width (RFC 3442
// section 2 sends only the octets the width covers; within the last one
// the bits past the width belong to no subnet number) is malformed.
func ParseRoutes(b []byte) ([]Route, error) {
	var out []Route
	for len(b) > 0 {
		bits := int(b[0])
		n := (bits + 7) / 8
		if bits > 32 || len(b) < 1+n+4 {
			return nil, malformed("classless route of width %d in %d octets", bits, len(b))
		}
		var d [4]byte
		copy(d[:], b[1:1+n])
		p := netip.PrefixFrom(netip.AddrFrom4(d), bits)
		if p.Masked() != p {
			return nil, malformed("classless route %v with host bits", p)
		}
		out = append(out, Route{p, netip.AddrFrom4([4]byte(b[1+n:]))})
		b = b[1+n+4:]
	}
	return out, nil
}

// Routes reads option 121; ok is false when it is absent or malformed.
func (m *Message) Routes() ([]Route, bool) {
	d, ok := m.Get(OptClasslessRoutes)
	if !ok {
		return nil, false
	}
	r, err := ParseRoutes(d)
	return r, err == nil
}
