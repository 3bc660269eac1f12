package gateway

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gateway/gateway/uci"
	"gateway/ra/ndpwire"
)

// IPv6Config is the "ipv6" section: where the LAN's IPv6 prefix comes from
// and what the router advertisements say. With no section IPv6 is on with
// the defaults: every LAN device gets a global address with no setting.
type IPv6Config struct {
	Line int // of the section; 0 when absent
	// PD asks the ISP for a prefix by DHCPv6 prefix delegation on the WAN.
	PD bool
	// PDHint is the prefix length asked for (RFC 8415 IA_PD hint); 0 asks
	// for none and takes what the ISP gives.
	PDHint int
	// WANAddress also asks for an address for the WAN (IA_NA).
	WANAddress bool
	// SixToFour runs 6to4 when the WAN IPv4 address is public.
	SixToFour bool
	// Relay is the IPv4 unicast address of the 6to4 relay that native IPv6
	// goes through; invalid: 6to4 reaches only other 6to4 sites. The
	// 192.88.99.1 anycast is deprecated (RFC 7526) and not a default.
	Relay netip.Addr
	// Static is a prefix from the config, used when nothing better is there.
	Static netip.Prefix
	// Subnet is the LAN /64's subnet number inside a shorter uplink prefix
	// (2002:WWXX:YYZZ:<Subnet>::/64 with 6to4). Subnet 0 of a 6to4 prefix
	// is the router's own tunnel address, so the default is 1.
	Subnet uint16
	// RA sends router advertisements on the LAN (on by default).
	RA      bool
	DNS     []netip.Addr // RDNSS (RFC 8106)
	Domains []string     // DNSSL
	// MTU is advertised when set; 0 advertises 1480 while 6to4 is the
	// uplink and none otherwise.
	MTU int
	// ULA is the local prefix used with no uplink; invalid: one made once
	// and kept in the state directory (RFC 4193).
	ULA netip.Prefix
	// RAInterval is the most time between unsolicited advertisements; 0
	// is the RFC's 600 s.
	RAInterval time.Duration
	// TeredoServers are the Teredo servers (IPv4 addresses or host
	// names, tried in order) of the last-resort uplink: with no
	// delegation, no 6to4 and no static prefix the router qualifies as a
	// Teredo client (RFC 4380) and the LAN's ULA reaches the IPv6
	// internet through NAT66 to the Teredo address. None: no Teredo
	// client.
	TeredoServers []string
	// Teredo turns the client off while keeping the servers.
	Teredo bool
	// TeredoRelay runs a Teredo relay (RFC 4380 section 5.4) whenever the
	// LAN has a global prefix, so LAN hosts reach Teredo hosts (2001::/32)
	// directly rather than through some far public relay.
	TeredoRelay bool
	// TeredoPort is the UDP port of the Teredo client and relay on the
	// WAN (only one of them runs at a time).
	TeredoPort uint16
}

// TeredoClient says whether the Teredo client is on: on, with a server.
func (c *IPv6Config) TeredoClient() bool { return c.Teredo && len(c.TeredoServers) > 0 }

// defaultIPv6 is what a file with no "ipv6" section gets.
func defaultIPv6() *IPv6Config {
	return &IPv6Config{PD: true, WANAddress: true, SixToFour: true, Subnet: 1, RA: true,
		Teredo: true, TeredoRelay: true, TeredoPort: defaultTeredoPort}
}

func (p *parser) ipv6Section(s *uci.Section, c *Config) {
	if p.ipv6Seen {
		p.errf(s.Line, "a second 'ipv6' section")
	}
	p.ipv6Seen = true
	v6 := defaultIPv6()
	v6.Line = s.Line
	enabled := true
	prefix := func(o *uci.Option, v string, want func(netip.Prefix) string) netip.Prefix {
		pf, err := netip.ParsePrefix(v)
		if err != nil || !pf.Addr().Is6() || pf.Addr().Zone() != "" {
			p.errf(o.Line, "%s %q is not an IPv6 prefix", o.Name, v)
			return netip.Prefix{}
		}
		if pf != pf.Masked() {
			p.errf(o.Line, "%s %q has bits set past its length (want %v)", o.Name, v, pf.Masked())
			return netip.Prefix{}
		}
		if why := want(pf); why != "" {
			p.errf(o.Line, "%s %v: %s", o.Name, pf, why)
			return netip.Prefix{}
		}
		return pf
	}
	p.options(s, map[string]func(*uci.Option, string){
		"enabled":     func(o *uci.Option, v string) { enabled = p.bool(o, v) },
		"pd":          func(o *uci.Option, v string) { v6.PD = p.bool(o, v) },
		"pd_hint":     func(o *uci.Option, v string) { v6.PDHint = p.intRange(o, v, 0, 64) },
		"wan_address": func(o *uci.Option, v string) { v6.WANAddress = p.bool(o, v) },
		"sixto4":      func(o *uci.Option, v string) { v6.SixToFour = p.bool(o, v) },
		"relay": func(o *uci.Option, v string) {
			a, err := netip.ParseAddr(v)
			switch {
			case err != nil || !a.Is4():
				p.errf(o.Line, "relay %q is not an IPv4 address", v)
			case !a.IsGlobalUnicast() || a.IsPrivate():
				p.errf(o.Line, "relay %v is not a public unicast address", a)
			default:
				v6.Relay = a
			}
		},
		"prefix": func(o *uci.Option, v string) {
			v6.Static = prefix(o, v, func(pf netip.Prefix) string {
				if pf.Bits() > 64 {
					return "longer than /64: SLAAC needs a /64"
				}
				if !pf.Addr().IsGlobalUnicast() || pf.Addr().IsPrivate() {
					return "not a global unicast prefix (a ULA goes in option ula)"
				}
				return ""
			})
		},
		"ula": func(o *uci.Option, v string) {
			v6.ULA = prefix(o, v, func(pf netip.Prefix) string {
				if pf.Bits() != 64 || !pf.Addr().IsPrivate() {
					return "want a /64 in fd00::/8 (RFC 4193)"
				}
				return ""
			})
		},
		"subnet": func(o *uci.Option, v string) { v6.Subnet = uint16(p.intRange(o, v, 0, 65535)) },
		"ra":     func(o *uci.Option, v string) { v6.RA = p.bool(o, v) },
		// Lists: every value, not only the last.
		"dns": func(o *uci.Option, _ string) {
			for _, v := range o.Values {
				a, err := netip.ParseAddr(v)
				if err != nil || !a.Is6() || a.Zone() != "" {
					p.errf(o.Line, "dns %q is not an IPv6 address", v)
					continue
				}
				v6.DNS = append(v6.DNS, a)
			}
		},
		"domain": func(o *uci.Option, _ string) {
			for _, v := range o.Values {
				// Sent in RAs' DNSSL as is: ASCII names only
				// (an internationalized one in its xn-- form).
				if ndpwire.CheckDomain(v) != nil {
					p.errf(o.Line, "domain %q is not an ASCII letter-digit-hyphen domain name", v)
					continue
				}
				v6.Domains = append(v6.Domains, v)
			}
		},
		"mtu":          func(o *uci.Option, v string) { v6.MTU = p.intRange(o, v, 1280, 65535) },
		"ra_interval":  func(o *uci.Option, v string) { v6.RAInterval = p.seconds(o, v, 4*time.Second) },
		"teredo":       func(o *uci.Option, v string) { v6.Teredo = p.bool(o, v) },
		"teredo_relay": func(o *uci.Option, v string) { v6.TeredoRelay = p.bool(o, v) },
		"teredo_port":  func(o *uci.Option, v string) { v6.TeredoPort = uint16(p.intRange(o, v, 1, 65535)) },
		"teredo_server": func(o *uci.Option, _ string) {
			for _, v := range o.Values {
				if why := teredoServerProblem(v); why != "" {
					p.errf(o.Line, "teredo_server %q: %s", v, why)
					continue
				}
				v6.TeredoServers = append(v6.TeredoServers, v)
			}
		},
	})
	if v6.RAInterval > 1800*time.Second {
		p.errf(s.Line, "ra_interval %v is over RFC 4861's 1800 s", v6.RAInterval)
	}
	c.IPv6 = nil
	if enabled {
		c.IPv6 = v6
	}
}

// defaultTeredoPort is the Teredo client's and relay's UDP port: the
// Teredo server port (RFC 4380 section 4), which a relay must use.
const defaultTeredoPort = 3544

// teredoServerProblem says what is wrong with a teredo_server value: an
// IPv4 address that is public unicast, or a host name.
func teredoServerProblem(v string) string {
	if a, err := netip.ParseAddr(v); err == nil {
		switch {
		case !a.Is4():
			return "not an IPv4 address (a Teredo server has one)"
		case !a.IsGlobalUnicast() || a.IsPrivate():
			return "not a public unicast address"
		}
		return ""
	}
	if v == "" || len(v) > 253 || strings.ContainsAny(v, " \t/:@") || strings.HasPrefix(v, ".") || strings.HasPrefix(v, "-") {
		return "not an IPv4 address or host name"
	}
	return ""
}

// Uplink names where the LAN's IPv6 prefix comes from.
const (
	UplinkPD     = "pd"     // delegated by the ISP
	UplinkSixto4 = "6to4"   // 2002:WWXX:YYZZ::/48 from the public WAN address
	UplinkStatic = "static" // from the config
	UplinkTeredo = "teredo" // the ULA, NAT66 to the router's Teredo address
	UplinkNone   = "none"   // a ULA for local traffic only
)

// uplinkInputs are what the uplink choice looks at.
type uplinkInputs struct {
	Delegated netip.Prefix // valid while the ISP delegates one
	Sixto4    netip.Prefix // the 6to4 /48 while the tunnel runs
	Static    netip.Prefix
	ULA       netip.Prefix
	Teredo    bool // the Teredo client is qualified
}

// chooseUplink picks the LAN's /64 (RFC 7084's order as the design has it:
// a delegated prefix, then 6to4, then a static prefix, then the ULA behind
// a qualified Teredo client, else the ULA for local traffic) and says
// where it comes from.
func chooseUplink(in uplinkInputs, subnet uint16) (netip.Prefix, string, error) {
	for _, c := range []struct {
		p    netip.Prefix
		name string
	}{{in.Delegated, UplinkPD}, {in.Sixto4, UplinkSixto4}, {in.Static, UplinkStatic}} {
		if !c.p.IsValid() {
			continue
		}
		lan, err := subnet64(c.p, subnet)
		if err != nil {
			return netip.Prefix{}, "", fmt.Errorf("%s prefix: %w", c.name, err)
		}
		return lan, c.name, nil
	}
	if in.Teredo {
		return in.ULA, UplinkTeredo, nil
	}
	return in.ULA, UplinkNone, nil
}

// subnet64 is the /64 number n of p. A subnet number that does not fit in
// p's free bits is refused, except that a /64 is its own only subnet.
func subnet64(p netip.Prefix, n uint16) (netip.Prefix, error) {
	if !p.Addr().Is6() || p.Bits() > 64 {
		return netip.Prefix{}, fmt.Errorf("%v is not an IPv6 prefix of /64 or shorter", p)
	}
	free := 64 - p.Bits()
	if free == 0 {
		return p.Masked(), nil
	}
	if free < 16 && int(n) >= 1<<free {
		return netip.Prefix{}, fmt.Errorf("subnet %d does not fit in %v (%d subnets)", n, p, 1<<free)
	}
	b := p.Masked().Addr().As16()
	// The subnet number goes in the lowest bits of the first 64.
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	hi |= uint64(n)
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), nil
}
