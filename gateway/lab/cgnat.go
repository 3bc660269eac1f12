package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// Site B's WAN behind a carrier-grade NAT (SetSiteBWAN).
var (
	// CGNATPrefix is the shared address space (RFC 6598) that the ISP
	// masquerades towards the internet.
	CGNATPrefix = netip.MustParsePrefix("100.64.0.0/10")
	// SiteBCGNATISPAddr is on ISPWANB next to SiteBISPAddr: gwb's default
	// route while its WAN is private.
	SiteBCGNATISPAddr = netip.MustParsePrefix("100.64.0.1/24")
	// SiteBCGNATAddr is gwb's WAN address while it is private, in place
	// of SiteBWANAddr.
	SiteBCGNATAddr = netip.MustParsePrefix("100.64.0.2/24")
)

// cgnatFile in Dir marks site B's WAN as private, for Status.
const cgnatFile = "siteb-cgnat"

// SetSiteBWAN gives site B's gateway a private WAN address behind the
// ISP's carrier-grade NAT (cgnat true: SiteBCGNATAddr, default route via
// SiteBCGNATISPAddr; the ISP masquerades it to its own address) or its
// public one back (SiteBWANAddr via SiteBISPAddr). The new address comes
// first and the old one goes last, as a DHCP client renewing into a new
// lease would do it; the daemon sees it through its netlink watch of the
// WAN. Setting the state it is in changes nothing.
func (l *Lab) SetSiteBWAN(ctx context.Context, cgnat bool) error {
	from, to, via := SiteBWANAddr, SiteBCGNATAddr, SiteBCGNATISPAddr
	if !cgnat {
		from, to, via = SiteBCGNATAddr, SiteBWANAddr, SiteBISPAddr
	}
	if l.SiteBCGNAT() == cgnat {
		return nil
	}
	b := batch{ns: l.NS(GatewayB), cmds: [][]string{
		{"addr", "replace", to.String(), "dev", GatewayWAN},
		{"route", "replace", "default", "via", via.Addr().String(), "dev", GatewayWAN},
		{"addr", "del", from.String(), "dev", GatewayWAN},
	}}
	if err := runBatch(ctx, b); err != nil {
		return err
	}
	mark := filepath.Join(l.Dir, cgnatFile)
	if cgnat {
		if err := writeFileAtomic(mark, []byte("site B's WAN is behind the ISP's CGNAT\n")); err != nil {
			return err
		}
		return nil
	}
	if err := os.Remove(mark); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// SiteBCGNAT reports whether site B's WAN is private (SetSiteBWAN).
func (l *Lab) SiteBCGNAT() bool {
	_, err := os.Stat(filepath.Join(l.Dir, cgnatFile))
	return err == nil
}

// withSiteBCGNAT returns a copy of t with gwb's WAN as SetSiteBWAN
// leaves it when private.
func (t *topology) withSiteBCGNAT() *topology {
	t = &topology{hosts: slices.Clone(t.hosts), links: slices.Clone(t.links)}
	for i := range t.links {
		e := &t.links[i].b
		if e.host == GatewayB && e.name == GatewayWAN {
			e.addrs = []netip.Prefix{SiteBCGNATAddr}
		}
	}
	for i := range t.hosts {
		if t.hosts[i].name == GatewayB {
			t.hosts[i].gateway = SiteBCGNATISPAddr.Addr()
		}
	}
	return t
}
