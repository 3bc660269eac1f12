package lab

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dhcpHook is the hook script of the lab's DHCP clients; the build writes
// it to Dir/dhcp-hook.sh (DHCPHook).
//
//go:embed dhcp-hook.sh
var dhcpHook []byte

const (
	hookFile    = "dhcp-hook.sh"
	hookLogFile = "dhcp-hook.log" // in each host's /run
)

// DHCPHook is the path of the lab's hook script for DHCP clients (udhcpc
// -s, dhclient -sf, dhcpcd -c): it applies the address and the default
// route and logs each event to the host's /run/dhcp-hook.log, which
// Lease reads. Nothing else of the host is touched.
func (l *Lab) DHCPHook() string { return filepath.Join(l.Dir, hookFile) }

// HookLog is the path, seen from outside the lab, of the log that the
// hook writes in host.
func (l *Lab) HookLog(host string) string {
	return filepath.Join(l.Dir, host, "run", hookLogFile)
}

// DHCPClient is the process name (for Stop and Status) of the DHCP client
// that StartDHCPClient starts in host.
func DHCPClient(host string) string { return "dhcp-" + host }

// StartDHCPClient runs busybox udhcpc in the background in LAN host, on
// HostIf, with the lab's hook, as a home device would: it asks for a lease,
// renews it and retries for ever if no server answers. It is process
// DHCPClient(host), logging to Dir/logs/dhcp-HOST.log.
func (l *Lab) StartDHCPClient(host string) (pid int, err error) {
	h, ok := newTopology().host(host)
	if !ok || !h.dhcp {
		return 0, fmt.Errorf("lab: %q is not a LAN host", host)
	}
	if err := l.writeHook(); err != nil {
		return 0, err
	}
	return l.Start(host, DHCPClient(host), []string{"udhcpc", "-f", "-i", HostIf, "-s", l.DHCPHook(),
		"-x", "hostname:" + host,
		// 3 DISCOVERs 1 s apart, then 2 s of rest, and again: a
		// gateway that comes up late is found within seconds.
		"-t", "3", "-T", "1", "-A", "2"}, "")
}

func (l *Lab) writeHook() error {
	if b, err := os.ReadFile(l.DHCPHook()); err == nil && slices.Equal(b, dhcpHook) {
		return nil
	}
	if err := writeFileAtomic(l.DHCPHook(), dhcpHook); err != nil {
		return err
	}
	if err := os.Chmod(l.DHCPHook(), 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// Lease is what a host's DHCP client holds, as its hook logged it.
type Lease struct {
	Event  string       `json:"event"` // the client's word: bound, renew, BOUND, REBOOT…
	Addr   netip.Prefix `json:"addr"`
	Router netip.Addr   `json:"router,omitzero"`
	// Time is when the hook ran; Expires is Time plus the lease time.
	Time    time.Time `json:"time"`
	Expires time.Time `json:"expires"`
	// Held is true when the lease has not expired and its address is on
	// the host's interface.
	Held bool `json:"held"`
}

// Lease returns the lease that host's DHCP client last logged through the
// lab's hook, if its last event gave one (a later release, expiry, NAK or
// failure takes it back).
func (l *Lab) Lease(host string) (Lease, bool) {
	ls, ok := readLease(l.HookLog(host))
	if !ok {
		return ls, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ifs, err := readInterfaces(ctx, l.NS(host))
	if err != nil {
		return ls, true
	}
	for _, f := range ifs {
		if f.Name == HostIf && slices.Contains(f.Addrs, ls.Addr) {
			ls.Held = time.Now().Before(ls.Expires)
		}
	}
	return ls, true
}

// readLease reads the last lease of a hook log.
func readLease(path string) (Lease, bool) {
	f, err := os.Open(path)
	if err != nil {
		return Lease{}, false
	}
	defer f.Close()
	var last Lease
	ok := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ev := map[string]string{}
		for _, kv := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(kv, "=")
			ev[k] = v
		}
		switch ev["event"] {
		case "bound", "renew", "BOUND", "RENEW", "REBIND", "REBOOT":
			ls, err := parseLease(ev)
			last, ok = ls, err == nil
		case "deconfig", "leasefail", "nak", "RELEASE", "EXPIRE", "STOP", "FAIL", "NAK":
			ok = false
		}
	}
	return last, ok
}

func parseLease(ev map[string]string) (Lease, error) {
	addr, err := netip.ParseAddr(ev["addr"])
	if err != nil {
		return Lease{}, err
	}
	bits, err := maskBits(ev["mask"])
	if err != nil {
		return Lease{}, err
	}
	secs, err := strconv.ParseInt(ev["time"], 10, 64)
	if err != nil {
		return Lease{}, err
	}
	lease, err := strconv.ParseInt(ev["lease"], 10, 64)
	if err != nil {
		return Lease{}, err
	}
	ls := Lease{Event: ev["event"], Addr: netip.PrefixFrom(addr, bits), Time: time.Unix(secs, 0)}
	ls.Expires = ls.Time.Add(time.Duration(lease) * time.Second)
	if r, err := netip.ParseAddr(strings.Split(ev["router"], " ")[0]); err == nil {
		ls.Router = r
	}
	return ls, nil
}

// maskBits reads a mask as a prefix length ("24") or dotted ("255.255.255.0").
func maskBits(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 32 {
		return n, nil
	}
	m, err := netip.ParseAddr(s)
	if err != nil || !m.Is4() {
		return 0, fmt.Errorf("lab: bad mask %q", s)
	}
	ones, bits := net.IPMask(m.AsSlice()).Size()
	if bits == 0 {
		return 0, fmt.Errorf("lab: mask %q is not contiguous", s)
	}
	return ones, nil
}

// lanAddr is the IPv4 address that host gets by DHCP in the lab, and its
// gateway's LAN address.
func lanAddr(host string) (addr, router netip.Prefix, ok bool) {
	switch host {
	case LAN1:
		return LAN1Addr, LANAddr, true
	case LAN2:
		return LAN2Addr, LANAddr, true
	case LANB:
		return LANBAddr, SiteBLANAddr, true
	}
	return netip.Prefix{}, netip.Prefix{}, false
}

// SetStaticIPv4 gives LAN hosts the IPv4 addresses that their gateway's
// DHCP server reserves for them (LAN1Addr, LAN2Addr, LANBAddr) and a
// default route via their gateway (LANAddr, SiteBLANAddr), without a DHCP
// client: for tests and benchmarks that run no DHCP server.
func (l *Lab) SetStaticIPv4(hosts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, h := range hosts {
		a, router, ok := lanAddr(h)
		if !ok {
			errs = append(errs, fmt.Errorf("lab: %q is not a LAN host", h))
			continue
		}
		errs = append(errs, runBatch(ctx, batch{ns: l.NS(h), cmds: [][]string{
			{"addr", "replace", a.String(), "dev", HostIf},
			{"route", "replace", "default", "via", router.Addr().String()},
		}}))
	}
	return errors.Join(errs...)
}
