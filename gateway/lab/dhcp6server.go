package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DelegatedPrefix6 is the prefix that the ISP's DHCPv6 server delegates
// to the gateway (and routes to WANAddr6); LANPrefix6 is in it.
var DelegatedPrefix6 = netip.MustParsePrefix("2001:db8:1::/56")

// WANPool6 is the range of IA_NA addresses the ISP's DHCPv6 server gives,
// first and last, on the link to the gateway.
var WANPool6 = [2]netip.Addr{netip.MustParseAddr("2001:db8:0:1::100"), netip.MustParseAddr("2001:db8:0:1::1ff")}

// PDServer is the process name (for Stop and Status) of the ISP's DHCPv6
// server.
const PDServer = "dhcp6-isp"

// PDServerOptions set the lifetimes of what the ISP's DHCPv6 server gives.
type PDServerOptions struct {
	// Preferred and Valid are the lifetimes of the prefix and the
	// addresses. 0 means 30 min and 1 h.
	Preferred, Valid time.Duration
	// T1 and T2 are the renewal and rebinding times of the IAs. 0 sends
	// 0: the client chooses (RFC 8415 section 21.21).
	T1, T2 time.Duration
}

// StartPDServer runs isc-dhcp-server's `dhcpd -6 -f` in the ISP host on
// ISPWAN: it delegates DelegatedPrefix6 (one /56, to one gateway at a time)
// and gives IA_NA addresses from WANPool6. It is process PDServer, logging
// to Dir/logs/dhcp6-isp.log; its config is Dir/isp/dhcpd6.conf, its leases
// Dir/isp/dhcp/dhcpd6.leases.
//
// dhcpd runs with the paths that Debian's and Ubuntu's AppArmor profile
// for /usr/sbin/dhcpd allows (/etc/dhcp/dhcpd6.conf, /var/lib/dhcp/
// dhcpd6.leases, /run/dhcpd6.pid): in the host's private mount namespace
// (Command), those are the lab's own files, bind-mounted.
func (l *Lab) StartPDServer(opt PDServerOptions) (pid int, err error) {
	if opt.Preferred == 0 {
		opt.Preferred = 30 * time.Minute
	}
	if opt.Valid == 0 {
		opt.Valid = time.Hour
	}
	if opt.Preferred > opt.Valid || opt.T1 > opt.T2 && opt.T2 > 0 {
		return 0, fmt.Errorf("lab: DHCPv6 server: want T1 <= T2 and preferred <= valid lifetime")
	}
	hd := filepath.Join(l.Dir, ISP)
	etc := filepath.Join(hd, "etc-dhcp")
	for _, d := range []string{etc, filepath.Join(hd, "dhcp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, fmt.Errorf("lab: %w", err)
		}
	}
	if err := writeFileAtomic(filepath.Join(etc, "dhcpd6.conf"), []byte(pdServerConf(opt))); err != nil {
		return 0, err
	}
	leases := filepath.Join(hd, "dhcp", "dhcpd6.leases")
	if _, err := os.Stat(leases); err != nil {
		// dhcpd refuses to start without a lease file.
		if err := os.WriteFile(leases, nil, 0o644); err != nil {
			return 0, fmt.Errorf("lab: %w", err)
		}
	}
	// /var/lib/dhcp and /run are the host's own already (Command);
	// /etc/dhcp is made so here, if it exists.
	script := `set -e
if [ -d /etc/dhcp ]; then mount --bind "$1" /etc/dhcp; conf=/etc/dhcp/dhcpd6.conf; else conf=$1/dhcpd6.conf; fi
leases=/var/lib/dhcp/dhcpd6.leases
[ -d /var/lib/dhcp ] || leases=$2
exec dhcpd -6 -f -d -cf "$conf" -lf "$leases" -pf /run/dhcpd6.pid ` + ISPWAN
	return l.Start(ISP, PDServer, []string{"sh", "-c", script, "sh", etc, leases}, "")
}

// StopPDServer stops the ISP's DHCPv6 server; its leases stay, for a
// later StartPDServer.
func (l *Lab) StopPDServer() error {
	return l.Stop(PDServer, syscall.SIGTERM)
}

func pdServerConf(opt PDServerOptions) string {
	var b strings.Builder
	s := func(d time.Duration) int64 { return int64(d / time.Second) }
	fmt.Fprintf(&b, "# dhcpd -6 of the lab's ISP (gateway/lab/dhcp6server.go)\n")
	fmt.Fprintf(&b, "default-lease-time %d;\nmax-lease-time %d;\npreferred-lifetime %d;\n", s(opt.Valid), s(opt.Valid), s(opt.Preferred))
	if opt.T1 > 0 || opt.T2 > 0 {
		fmt.Fprintf(&b, "option dhcp-renewal-time %d;\noption dhcp-rebinding-time %d;\n", s(opt.T1), s(opt.T2))
	}
	fmt.Fprintf(&b, "authoritative;\nlog-facility local7;\n")
	pfx := DelegatedPrefix6.Addr()
	fmt.Fprintf(&b, "subnet6 %s {\n\trange6 %s %s;\n\tprefix6 %s %s /%d;\n}\n",
		ISPWANAddr6.Masked(), WANPool6[0], WANPool6[1], pfx, pfx, DelegatedPrefix6.Bits())
	return b.String()
}
