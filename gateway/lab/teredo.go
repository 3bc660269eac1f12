package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Hosts of the Teredo world.
const (
	TeredoServer = "tsrv"  // miredo-server on two consecutive addresses
	TeredoRelay  = "trly"  // a Miredo relay with native IPv6
	NATC         = "natc"  // site C: a plain Linux NAT router, no gateway daemon
	TeredoPeer   = "tpeer" // site C's LAN host, a Miredo client
)

// Roles of the Teredo world's hosts (tpeer is RoleLAN).
const (
	RoleTeredoServer = "teredo-server"
	RoleTeredoRelay  = "teredo-relay"
	RoleNAT          = "nat"
)

// Interfaces of the Teredo world.
const (
	TeredoServerPort = "tsrv0" // br-inet's port to tsrv
	TeredoRelayPort  = "trly0" // br-inet's port to trly
	NATCPort         = "natc0" // br-inet's port to natc, whose WAN is GatewayWAN
	NATCLAN          = "lan"   // natc's side of the link to tpeer
	// TeredoIf is the tunnel interface that the Miredo client and relay
	// create in their host.
	TeredoIf = "teredo"
)

// Addresses of the Teredo world.
var (
	// TeredoServerAddr is the Teredo server's primary address, the one
	// clients are configured with; TeredoServerAddr2 is its secondary one
	// (RFC 4380 section 5.2.1: the next address), which Miredo binds
	// too. Both on tsrv's HostIf.
	TeredoServerAddr  = netip.MustParsePrefix("198.51.100.30/24")
	TeredoServerAddr2 = netip.MustParsePrefix("198.51.100.31/24")
	TeredoServerAddr6 = netip.MustParsePrefix("2001:db8:100::30/64")

	TeredoRelayAddr  = netip.MustParsePrefix("198.51.100.50/24")    // on trly's HostIf
	TeredoRelayAddr6 = netip.MustParsePrefix("2001:db8:100::50/64") // on trly's HostIf
	// TeredoPrefix is the Teredo space (RFC 4380), routed by the ISP to
	// TeredoRelayAddr6. It is not the documentation prefix 2001:db8::/32.
	TeredoPrefix = netip.MustParsePrefix("2001::/32")

	NATCWANAddr    = netip.MustParsePrefix("198.51.100.40/24") // on natc's GatewayWAN
	NATCLANAddr    = netip.MustParsePrefix("192.168.3.1/24")   // on natc's NATCLAN; tpeer's default route
	TeredoPeerAddr = netip.MustParsePrefix("192.168.3.10/24")  // on tpeer's HostIf
)

// Process names of the Teredo world's daemons.
const (
	TeredoServerProc = "miredo-server"
	TeredoRelayProc  = "miredo-relay"
	TeredoPeerProc   = "miredo-tpeer"
)

// MiredoClientProc is the process name of the Miredo client that
// StartMiredoClient runs in host.
func MiredoClientProc(host string) string {
	if host == TeredoPeer {
		return TeredoPeerProc
	}
	return "miredo-" + host
}

// StartTeredo runs the Teredo world's daemons, each unless it runs
// already: miredo-server in tsrv, a Miredo relay in trly, and, once the
// server listens, Miredo's client in tpeer. It waits for the server (5 s
// at most), not for the client to qualify (TeredoAddr does).
func (l *Lab) StartTeredo(ctx context.Context) error {
	// Said at once, not as a server that never listens.
	for _, prog := range []string{"miredo-server", "miredo"} {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("lab: the Teredo world needs %s (Debian packages miredo and miredo-server, in the Makefile's DEB_PKGS): %w", prog, err)
		}
	}
	running := func(name string) bool { p, ok := l.Process(name); return ok && p.Alive }
	if !running(TeredoServerProc) {
		if _, err := l.StartTeredoServer(); err != nil {
			return err
		}
	}
	if !running(TeredoRelayProc) {
		if _, err := l.StartTeredoRelay(); err != nil {
			return err
		}
	}
	if running(TeredoPeerProc) {
		return nil
	}
	// Miredo's client sends its second RS only 4 s after the first:
	// started before the server listens, it would qualify late.
	if err := l.WaitTeredoServer(ctx); err != nil {
		return err
	}
	_, err := l.StartMiredoClient(TeredoPeer)
	return err
}

// startMiredo writes conf to Dir/HOST/NAME.conf and runs prog with it in
// host as process name, in the foreground (-f) with its pid file in the
// lab folder.
func (l *Lab) startMiredo(host, name, prog, conf string) (int, error) {
	hd := filepath.Join(l.Dir, host)
	if err := os.MkdirAll(hd, 0o755); err != nil {
		return 0, fmt.Errorf("lab: %w", err)
	}
	path := filepath.Join(hd, name+".conf")
	if err := writeFileAtomic(path, []byte("# "+name+" of the lab (gateway/lab/teredo.go)\n"+conf)); err != nil {
		return 0, err
	}
	return l.Start(host, name, []string{prog, "-f", "-c", path, "-p", filepath.Join(hd, name+".pid")}, "")
}

// StartTeredoServer runs Debian's miredo-server in tsrv on
// TeredoServerAddr (it binds TeredoServerAddr2 as well) as process
// TeredoServerProc.
func (l *Lab) StartTeredoServer() (int, error) {
	return l.startMiredo(TeredoServer, TeredoServerProc, "miredo-server",
		fmt.Sprintf("ServerBindAddress %s\n", TeredoServerAddr.Addr()))
}

// StartTeredoRelay runs Miredo in relay mode (RelayType cone) in trly as
// process TeredoRelayProc: it routes TeredoPrefix into its TeredoIf and
// forwards between Teredo clients and the IPv6 internet.
func (l *Lab) StartTeredoRelay() (int, error) {
	return l.startMiredo(TeredoRelay, TeredoRelayProc, "miredo",
		fmt.Sprintf("RelayType cone\nInterfaceName %s\nBindAddress %s\n", TeredoIf, TeredoRelayAddr.Addr()))
}

// StartMiredoClient runs Miredo's client (RelayType client) in host,
// with the lab's Teredo server, as process MiredoClientProc(host). Its
// hook (/etc/miredo/client-hook) puts the Teredo address on TeredoIf
// once it qualifies (TeredoAddr).
func (l *Lab) StartMiredoClient(host string) (int, error) {
	return l.startMiredo(host, MiredoClientProc(host), "miredo",
		fmt.Sprintf("RelayType client\nServerAddress %s\nInterfaceName %s\n", TeredoServerAddr.Addr(), TeredoIf))
}

// WaitTeredoServer waits (5 s at most) until miredo-server listens on
// UDP port 3544 of both its addresses in tsrv.
func (l *Lab) WaitTeredoServer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	want := []netip.AddrPort{
		netip.AddrPortFrom(TeredoServerAddr.Addr(), 3544),
		netip.AddrPortFrom(TeredoServerAddr2.Addr(), 3544),
	}
	for {
		var bound []netip.AddrPort
		err := l.Do(TeredoServer, func() error {
			var err error
			bound, err = udpBound()
			return err
		})
		if err == nil && containsAll(bound, want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: the Teredo server does not listen on %v (bound: %v, %v); see %s", want, bound, err, l.logOf(TeredoServerProc))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func containsAll(have, want []netip.AddrPort) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// udpBound lists the local IPv4 addresses of the UDP sockets of the
// calling thread's network namespace (/proc/thread-self: /proc/self/net
// would show the namespace of the process's main thread).
func udpBound() ([]netip.AddrPort, error) {
	b, err := os.ReadFile("/proc/thread-self/net/udp")
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if ap, ok := parseProcAddr(f[1]); ok {
			out = append(out, ap)
		}
	}
	return out, nil
}

// parseProcAddr parses an IPv4 "0100007F:0035" of /proc/net/udp: the
// address as the kernel holds it (host byte order), the port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, false
	}
	v, err := strconv.ParseUint(a, 16, 32)
	if err != nil {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(v))
	return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(port)), true
}

// TeredoAddr waits (15 s at most) until the Miredo client in host has
// qualified and returns its Teredo address, read from TeredoIf.
func (l *Lab) TeredoAddr(ctx context.Context, host string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		a, err := l.teredoAddr(ctx, host)
		if err == nil && a.IsValid() {
			return a, nil
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("lab: the Miredo client in %s took no Teredo address in 15 s (last: %v); see %s", host, err, l.logOf(MiredoClientProc(host)))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// teredoAddr returns the global address in TeredoPrefix on TeredoIf in
// host, or the zero Addr.
func (l *Lab) teredoAddr(ctx context.Context, host string) (netip.Addr, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", l.NS(host), "-6", "-o", "addr", "show", "dev", TeredoIf, "scope", "global").CombinedOutput()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("lab: %s: %w: %s", host, err, strings.TrimSpace(string(out)))
	}
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil && TeredoPrefix.Contains(p.Addr()) {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, errors.New("no Teredo address yet")
}

// logOf is the log file of process name.
func (l *Lab) logOf(name string) string {
	if p, ok := l.Process(name); ok && p.Log != "" {
		return p.Log
	}
	return filepath.Join(l.Dir, logsDir, name+".log")
}
