package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
)

// CheckHost checks cfg against this machine, for `gateway check-config`
// on the router: what the daemon's services would refuse at start, such
// as a DHCP reservation outside the LAN interface's subnet. What cannot be
// checked here (an interface that does not exist yet) comes back as a
// note; the daemon waits for it.
func CheckHost(cfg *Config) (notes []string, err error) {
	var errs []error
	nc := natConfig(cfg, slog.New(slog.DiscardHandler))
	if err := nc.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: nat: %w", cfg.File, err))
	}
	if err := nc.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: nat: %w", cfg.File, err))
	}
	for _, name := range append([]string{cfg.WAN}, cfg.LANs...) {
		if _, err := net.InterfaceByName(name); err != nil {
			notes = append(notes, fmt.Sprintf("interface %s does not exist here (yet): the daemon waits for it", name))
		}
	}
	if cfg.DHCP != nil {
		lan, ok := interfaceIPv4(cfg.DHCP.Interface)
		if !ok {
			notes = append(notes, fmt.Sprintf("dhcp: interface %s has no IPv4 address here: the pool, routes and reservations are checked against it when the daemon starts", cfg.DHCP.Interface))
		} else if err := checkDHCP(cfg, lan); err != nil {
			errs = append(errs, err)
		}
	}
	return notes, errors.Join(errs...)
}

// checkDHCP checks the DHCP section against the LAN address lan as the
// DHCP service would.
func checkDHCP(cfg *Config, lan netip.Prefix) error {
	dc, err := dhcpConfig(cfg, lan, slog.New(slog.DiscardHandler))
	if err == nil {
		err = dc.Validate()
	}
	if err != nil {
		return fmt.Errorf("%s:%d: dhcp on %s (%v): %w", cfg.File, cfg.DHCP.Line, cfg.DHCP.Interface, lan, err)
	}
	return nil
}

// interfaceIPv4 is the first IPv4 address of the interface called name.
func interfaceIPv4(name string) (netip.Prefix, bool) {
	i, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Prefix{}, false
	}
	as, err := i.Addrs()
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, a := range as {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		addr, ok := netip.AddrFromSlice(n.IP)
		if !ok || !addr.Unmap().Is4() {
			continue
		}
		bits, _ := n.Mask.Size()
		return netip.PrefixFrom(addr.Unmap(), bits), true
	}
	return netip.Prefix{}, false
}
