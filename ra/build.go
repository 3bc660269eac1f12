package ra

import (
	"net"
	"net/netip"
	"time"

	"gateway/ra/ndpwire"
)

// curHopLimit is the Cur Hop Limit we advertise: the IANA default TTL
// (RFC 4861 6.2.1 AdvCurHopLimit "SHOULD be set to the current diameter
// of the Internet").
const curHopLimit = 64

// maxRouterLifetime is the largest Router Lifetime (RFC 4861 6.2.1: 9000 s).
const maxRouterLifetime = 9000 * time.Second

// raParams are the parts of an RA that come from the configuration.
type raParams struct {
	MAC    net.HardwareAddr // source link-layer address; nil: no option
	MTU    int              // 0: no MTU option
	RDNSS  []netip.Addr
	DNSSL  []string
	Routes []netip.Prefix
	// Lifetime is the router lifetime when a default route is offered,
	// and the lifetime of the RDNSS, DNSSL and route options:
	// 3 × MaxRtrAdvInterval (RFC 4861 6.2.1 AdvDefaultLifetime, RFC 8106
	// 5.1), so that two lost RAs do not make hosts forget them.
	Lifetime time.Duration
}

// buildRA is the Router Advertisement (RFC 4861 4.2) for prefixes at now.
// def offers a default route (Router Lifetime > 0). final is the RA sent
// when we stop (RFC 4861 6.2.5): Router Lifetime 0, every prefix
// deprecated and the routes withdrawn.
//
// Managed and Other are off: addresses come from SLAAC alone and DNS from
// RDNSS (RFC 8106), there is no DHCPv6 server on the LAN.
func buildRA(p raParams, prefixes []entry, def, final bool, now time.Time) ndpwire.RouterAdvertisement {
	ra := ndpwire.RouterAdvertisement{CurHopLimit: curHopLimit}
	// Bounded as RFC 9096 bounds the prefixes (its section 4 values): a
	// default route no longer than a preferred prefix, the other
	// options no longer than a valid one, so that after a silent
	// renumbering nothing stale outlives the addresses.
	optLife := min(wholeSeconds(p.Lifetime), ValidLimit)
	if def && !final {
		ra.RouterLifetime = min(wholeSeconds(p.Lifetime), PreferredLimit, maxRouterLifetime)
	}
	if len(p.MAC) == 6 {
		ra.Options = append(ra.Options, ndpwire.SourceLinkLayerAddress{Addr: p.MAC})
	}
	if p.MTU > 0 {
		ra.Options = append(ra.Options, ndpwire.MTU(p.MTU))
	}
	for _, e := range prefixes {
		valid, preferred := e.lifetimes(now)
		if final {
			preferred = 0
		}
		ra.Options = append(ra.Options, ndpwire.PrefixInformation{
			Prefix:            e.Prefix.Masked(),
			OnLink:            true,
			Autonomous:        true,
			ValidLifetime:     valid,
			PreferredLifetime: preferred,
		})
	}
	for _, r := range p.Routes {
		life := optLife
		if final {
			life = 0
		}
		ra.Options = append(ra.Options, ndpwire.RouteInformation{
			Prefix:     r.Masked(),
			Preference: ndpwire.Medium,
			Lifetime:   life,
		})
	}
	if len(p.RDNSS) > 0 {
		ra.Options = append(ra.Options, ndpwire.RDNSS{Lifetime: optLife, Servers: p.RDNSS})
	}
	if len(p.DNSSL) > 0 {
		ra.Options = append(ra.Options, ndpwire.DNSSL{Lifetime: optLife, Domains: p.DNSSL})
	}
	return ra
}
