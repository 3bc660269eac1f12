package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// conntrackTimeouts raises the conntrack timeouts to what RFC 4787 REQ-5
// and RFC 5382 REQ-5 ask. The sysctls exist once conntrack is loaded, which
// installing our table does: call it after that.
func conntrackTimeouts(cfg *Config, log *slog.Logger) {
	for _, s := range []struct {
		name string
		d    time.Duration
	}{
		{"net/netfilter/nf_conntrack_udp_timeout", cfg.NAT.UDPTimeout},
		{"net/netfilter/nf_conntrack_udp_timeout_stream", max(cfg.NAT.UDPTimeout, 180*time.Second)},
		{"net/netfilter/nf_conntrack_tcp_timeout_established", cfg.NAT.TCPEstablished},
	} {
		if err := writeSysctl(s.name, int(s.d/time.Second), true); err != nil {
			log.Warn("cannot raise a conntrack timeout", slog.String("sysctl", s.name), slog.Any("err", err))
		}
	}
}

// prepareKernel sets what forwarding needs of this network namespace:
// IPv4 and IPv6 forwarding, and no bridge netfilter on a LAN bridge.
func prepareKernel(cfg *Config, log *slog.Logger) error {
	if err := writeSysctl("net/ipv4/ip_forward", 1, false); err != nil {
		return err
	}
	// A router forwards IPv6 too (the IPv6 filter in our table keeps the
	// LAN closed, RFC 6092). Forwarding makes the kernel ignore router
	// advertisements, so the WAN is told to take them anyway (accept_ra
	// 2): an ISP's RA still gives it its address and default route.
	if err := writeSysctl("net/ipv6/conf/all/forwarding", 1, false); err != nil {
		log.Warn("cannot turn on IPv6 forwarding", slog.Any("err", err))
	} else if cur, err := readSysctl("net/ipv6/conf/" + cfg.WAN + "/accept_ra"); err == nil && cur == 1 {
		writeSysctl("net/ipv6/conf/"+cfg.WAN+"/accept_ra", 2, false)
	}
	// Bridged LAN traffic must not pass the IP hooks: with it, traffic
	// between two LAN hosts is seen by NAT and hairpinning breaks. OpenWrt
	// keeps this off; a Debian box with br_netfilter loaded has it on.
	for _, lan := range cfg.LANs {
		if _, err := os.Stat("/sys/class/net/" + lan + "/bridge"); err != nil {
			continue
		}
		for _, n := range []string{"iptables", "ip6tables", "arptables"} {
			name := "net/bridge/bridge-nf-call-" + n
			if cur, err := readSysctl(name); err == nil && cur != 0 {
				if err := writeSysctl(name, 0, false); err != nil {
					log.Warn("bridge netfilter is on and cannot be turned off: NAT loopback may fail", slog.Any("err", err))
				} else {
					log.Info("turned off bridge netfilter for the LAN bridge", slog.String("sysctl", name))
				}
			}
		}
	}
	return nil
}

func readSysctl(name string) (int, error) {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// writeSysctl sets name to v; with atLeast, only if it is lower now.
func writeSysctl(name string, v int, atLeast bool) error {
	if atLeast {
		cur, err := readSysctl(name)
		if err != nil {
			return err
		}
		if cur >= v {
			return nil
		}
	}
	if err := os.WriteFile("/proc/sys/"+name, []byte(strconv.Itoa(v)), 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("gateway: sysctl %s does not exist", name)
		}
		return fmt.Errorf("gateway: sysctl %s: %w", name, err)
	}
	return nil
}
