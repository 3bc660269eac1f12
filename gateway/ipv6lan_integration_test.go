//go:build linux && !nolab

package gateway_test

import (
	"context"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway"
	"gateway/gateway/client"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
	"gateway/nat44"
	"gateway/web"
)

// sixto4Config is site A's IPv6 section without prefix delegation: its
// LAN takes the 6to4 prefix of its WAN address, through the lab's relay.
var sixto4Config = fmt.Sprintf(`
config ipv6 'ipv6'
	option pd '0'
	option relay '%s'
	list dns '%s'
	list domain 'lab.example'
`, lab.RelayAddr.Addr(), labgw.LabDNS6)

// siteAConfig is site A's default config with ipv6 in place of the lab's
// IPv6 section.
func siteAConfig(ipv6 string) func(*lab.Lab, string) string {
	return func(l *lab.Lab, extra string) string {
		return labgw.BaseConfig(l, labgw.DHCPConfig+labgw.PMPConfig+ipv6+extra)
	}
}

// eui64 is the SLAAC address of the lab host with mac in prefix (a /64).
func eui64(prefix netip.Prefix, mac string) netip.Addr {
	var m [6]byte
	for i, h := range strings.Split(mac, ":") {
		v, _ := strconv.ParseUint(h, 16, 8)
		m[i] = byte(v)
	}
	b := prefix.Addr().As16()
	copy(b[8:], []byte{m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]})
	return netip.AddrFrom16(b)
}

// startSiteB runs site B's daemon with its default config (6to4) and its
// LAN host's DHCP client, and waits for lanb's SLAAC address.
func startSiteB(t *testing.T, l *lab.Lab) *client.Client {
	t.Helper()
	cfg := labgw.SiteB.ConfigPath(l)
	if err := os.WriteFile(cfg, []byte(labgw.SiteB.Config(l, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(labgw.SiteB.Log(l))
			t.Logf("site B's gateway log:\n%s", labgw.Tail(b, 30))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := labgw.SiteB.Up(ctx, l, binary, cfg); err != nil {
		t.Fatal(err)
	}
	if err := labgw.SiteB.WaitIPv6(ctx, l); err != nil {
		t.Fatal(err)
	}
	return client.New(labgw.SiteB.Socket(l))
}

// rdisc6 solicits a router advertisement from host and returns rdisc6's
// report.
func rdisc6(t *testing.T, l *lab.Lab, host string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.Command(ctx, host, "rdisc6", "-1", "-w", "2000", lab.HostIf).CombinedOutput()
	if err != nil {
		t.Fatalf("rdisc6 in %s: %v\n%s", host, err, out)
	}
	return string(out)
}

// raPrefix is what rdisc6 reports of one prefix: its lifetimes in
// seconds; ok false when the RA does not carry it.
func raPrefix(report string, p netip.Prefix) (valid, preferred int, ok bool) {
	re := regexp.MustCompile(`(?s)Prefix\s*:\s*` + regexp.QuoteMeta(p.String()) + `.*?Valid time\s*:\s*(\d+).*?Pref\. time\s*:\s*(\d+)`)
	m := re.FindStringSubmatch(report)
	if m == nil {
		return 0, 0, false
	}
	valid, _ = strconv.Atoi(m[1])
	preferred, _ = strconv.Atoi(m[2])
	return valid, preferred, true
}

// addrLifetime is the preferred lifetime that host's kernel gives its
// address a, and whether it is deprecated; ok false when it has no such
// address.
func addrLifetime(t *testing.T, l *lab.Lab, host string, a netip.Addr) (preferred string, deprecated, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := l.Command(ctx, host, "ip", "-6", "-json", "addr", "show", "dev", lab.HostIf).Output()
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		AddrInfo []struct {
			Local       string          `json:"local"`
			Deprecated  bool            `json:"deprecated"`
			PreferredLf json.RawMessage `json:"preferred_life_time"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("ip -json: %v\n%s", err, out)
	}
	for _, li := range links {
		for _, ai := range li.AddrInfo {
			if ai.Local == a.String() {
				return string(ai.PreferredLf), ai.Deprecated, true
			}
		}
	}
	return "", false, false
}

// sixto4Status is the 6to4 part of a daemon's status.
type sixto4Status struct {
	OutPackets, InPackets uint64
	Drops                 map[string]uint64
}

// ipv6Status is a daemon's IPv6 status, and its tunnel's (zero, with ok
// false, while no tunnel runs).
func ipv6Status(t *testing.T, c *client.Client) (gateway.IPv6Status, sixto4Status) {
	st, s6, _ := ipv6StatusOK(t, c)
	return st, s6
}

func ipv6StatusOK(t *testing.T, c *client.Client) (gateway.IPv6Status, sixto4Status, bool) {
	t.Helper()
	var st struct {
		IPv6 *struct {
			gateway.IPv6Status
			Sixto4 *sixto4Status `json:"sixto4"`
		} `json:"ipv6"`
	}
	if err := c.Do("GET", "/api/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.IPv6 == nil {
		t.Fatal("status has no ipv6")
	}
	if st.IPv6.Sixto4 == nil {
		return st.IPv6.IPv6Status, sixto4Status{}, false
	}
	return st.IPv6.IPv6Status, *st.IPv6.Sixto4, true
}

// sendProto41 sends one 6to4 packet (an ICMPv6 echo request from inner
// src to inner dst) from host with outer IPv4 source osrc to odst, over a
// raw socket that writes its own IPv4 header: what a spoofer sends.
func sendProto41(t *testing.T, l *lab.Lab, host string, osrc, odst, src, dst netip.Addr) {
	t.Helper()
	pkt := make([]byte, 20+40+8)
	pkt[0], pkt[8], pkt[9] = 0x45, 64, 41
	s4, d4 := osrc.As4(), odst.As4()
	copy(pkt[12:16], s4[:])
	copy(pkt[16:20], d4[:])
	in := pkt[20:]
	in[0] = 0x60
	bin.BigEndian.PutUint16(in[4:6], 8)
	in[6], in[7] = 58, 64
	s6, d6 := src.As16(), dst.As16()
	copy(in[8:24], s6[:])
	copy(in[24:40], d6[:])
	in[40] = 128 // echo request
	if err := l.Do(host, func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		return syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: d4})
	}); err != nil {
		t.Fatal(err)
	}
}

// TestIPv6SixToFour: two sites with 6to4 (site A with prefix delegation
// off, site B with no native IPv6 at all) and the lab's relay. Each LAN
// host gets a 2002:: address by the kernel's SLAAC, and rdisc6 sees the
// RA with its RDNSS and the tunnel's MTU; site A's LAN host reaches site
// B's over IPv6 (ping, and TCP once gwb has a pinhole) and the native
// public host through the relay; spoofed protocol-41 packets are dropped
// and counted by reason.
func TestIPv6SixToFour(t *testing.T) {
	testenv.Tool(t, "rdisc6", "ndisc6")
	testenv.Tool(t, "busybox", "busybox")
	g := startWith(t, siteAConfig(sixto4Config), "", lab.LANHosts...)
	b := startSiteB(t, g.l)
	prefixA := netip.MustParsePrefix("2002:cb00:7102:1::/64") // 6to4 of 203.0.113.2, subnet 1
	lan16 := eui64(prefixA, lab.LAN1MAC)
	lanb6 := lab.LANBAddr6.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := labgw.WaitAddr6(ctx, g.l, lab.LAN1, lan16); err != nil {
		t.Fatal(err)
	}

	st, _ := ipv6Status(t, g.api())
	if st.Uplink != gateway.UplinkSixto4 || st.Prefix != prefixA {
		t.Fatalf("site A's IPv6 status: %+v; want 6to4 with %v", st, prefixA)
	}
	stB, _ := ipv6Status(t, b)
	if stB.Uplink != gateway.UplinkSixto4 || !stB.Prefix.Contains(lanb6) {
		t.Fatalf("site B's IPv6 status: %+v; want 6to4 holding %v", stB, lanb6)
	}

	t.Run("rdisc6 sees the RA with RDNSS, DNSSL and MTU", func(t *testing.T) {
		r := rdisc6(t, g.l, lab.LAN1)
		if _, pref, ok := raPrefix(r, prefixA); !ok || pref == 0 {
			t.Errorf("RA lacks %v as a preferred prefix:\n%s", prefixA, r)
		}
		for _, want := range []string{"Recursive DNS server     : " + labgw.LabDNS6.String(), "DNS search list          : lab.example", "MTU                      :         1480"} {
			if !strings.Contains(r, want) {
				t.Errorf("RA lacks %q:\n%s", want, r)
			}
		}
		if m := regexp.MustCompile(`Router lifetime\s*:\s*(\d+)`).FindStringSubmatch(r); m == nil || m[1] == "0" {
			t.Errorf("RA offers no default route:\n%s", r)
		}
	})

	t.Run("site A reaches site B over 6to4", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := g.l.Command(ctx, lab.LAN1, "busybox", "ping", "-6", "-c", "2", "-W", "2", lanb6.String()).CombinedOutput(); err != nil {
			t.Fatalf("lan1 → lanb %v: %v\n%s", lanb6, err, out)
		}
		// TCP in to lanb: dropped by gwb's filter until lanb has a pinhole.
		tcpServer(t, g.l, lab.LANB, hostPort(lanb6, 8022))
		wantNoTCP(t, g.l, lab.LAN1, hostPort(lanb6, 8022))
		if err := b.Do("POST", "/api/v1/pinholes", web.PinholeRequest{Proto: nat44.TCP, Internal: netip.AddrPortFrom(lanb6, 8022), Description: "test"}, nil); err != nil {
			t.Fatal(err)
		}
		wantTCP(t, g.l, lab.LAN1, hostPort(lanb6, 8022), "lanb saw ["+lan16.String()+"]")
	})

	t.Run("site A reaches the native host through the relay", func(t *testing.T) {
		_, before := ipv6Status(t, g.api())
		pub6 := lab.PublicAddrs6[0].Addr()
		tcpServer(t, g.l, lab.Public, hostPort(pub6, 8081))
		// The answer comes back only through the relay: the ISP routes
		// 2002::/16 there, and nowhere else.
		wantTCP(t, g.l, lab.LAN1, hostPort(pub6, 8081), "pub saw ["+lan16.String()+"]")
		_, after := ipv6Status(t, g.api())
		if after.OutPackets <= before.OutPackets || after.InPackets <= before.InPackets {
			t.Errorf("the tunnel's counters did not move: %+v → %+v", before, after)
		}
	})

	t.Run("spoofed protocol 41 is dropped and counted", func(t *testing.T) {
		_, before := ipv6Status(t, g.api())
		wan := lab.WANAddr.Addr()
		pub := lab.PublicAddrs[0].Addr()
		// A 6to4 source that is not the outer source.
		sendProto41(t, g.l, lab.Public, pub, wan, netip.MustParseAddr("2002:c000:202::5"), lan16)
		// A native source not from the relay.
		sendProto41(t, g.l, lab.Public, pub, wan, lab.PublicAddrs6[0].Addr(), lan16)
		eventually(t, "drop counters", func() error {
			_, after := ipv6Status(t, g.api())
			for _, r := range []string{"src-not-outer", "native-not-relay"} {
				if after.Drops[r] != before.Drops[r]+1 {
					return fmt.Errorf("drops %v, before %v; want one more %s", after.Drops, before.Drops, r)
				}
			}
			return nil
		})
	})
}

// TestIPv6Delegation: with the lab's default config the ISP delegates
// 2001:db8:1::/56; the LAN gets subnet 1 of it by SLAAC and reaches the
// native host directly, with no tunnel.
func TestIPv6Delegation(t *testing.T) {
	g := startGateway(t, "")
	st, s6, tunnel := ipv6StatusOK(t, g.api())
	if st.Uplink != gateway.UplinkPD || st.Prefix != lab.LANPrefix6 || st.Delegated != lab.DelegatedPrefix6 || st.Valid == nil {
		t.Fatalf("IPv6 status %+v; want the delegation %v, LAN %v", st, lab.DelegatedPrefix6, lab.LANPrefix6)
	}
	if tunnel {
		t.Fatalf("a 6to4 tunnel runs beside the delegation: %+v", s6)
	}
	pub6 := lab.PublicAddrs6[0].Addr()
	tcpServer(t, g.l, lab.Public, hostPort(pub6, 8082))
	wantTCP(t, g.l, lab.LAN1, hostPort(pub6, 8082), "pub saw ["+lab.LAN1Addr6.Addr().String()+"]")
	// The RA's lifetimes never outlast the delegation's (30 min
	// preferred, 1 h valid from the lab's server).
	r := rdisc6(t, g.l, lab.LAN2)
	valid, pref, ok := raPrefix(r, lab.LANPrefix6)
	if !ok || valid > 3600 || pref > 1800 || pref == 0 {
		t.Errorf("RA for %v: valid %d preferred %d (%v):\n%s", lab.LANPrefix6, valid, pref, ok, r)
	}
}

// setWAN4 gives the gateway's WAN a as its only IPv4 address, with the
// default route back.
func setWAN4(t *testing.T, l *lab.Lab, a netip.Prefix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"-4", "addr", "flush", "dev", lab.GatewayWAN},
		{"addr", "add", a.String(), "dev", lab.GatewayWAN},
		{"route", "replace", "default", "via", lab.ISPWANAddr.Addr().String()},
	} {
		if out, err := l.Command(ctx, lab.Gateway, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
}

// TestIPv6Renumbering: a new WAN address gives a new 6to4 prefix; the LAN
// renumbers and the old prefix is advertised deprecated (rdisc6 sees
// preferred lifetime 0, the host's kernel marks its old address
// deprecated). After kill -9 and a restart with yet another address, the
// prefix advertised before the kill is still deprecated, from the state
// directory.
func TestIPv6Renumbering(t *testing.T) {
	testenv.Tool(t, "rdisc6", "ndisc6")
	g := startWith(t, siteAConfig(sixto4Config), "", lab.LAN1)
	p1 := netip.MustParsePrefix("2002:cb00:7102:1::/64")
	p2 := netip.MustParsePrefix("2002:cb00:7109:1::/64")
	p3 := netip.MustParsePrefix("2002:cb00:710a:1::/64")
	wait := func(p netip.Prefix) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := labgw.WaitAddr6(ctx, g.l, lab.LAN1, eui64(p, lab.LAN1MAC)); err != nil {
			t.Fatal(err)
		}
	}
	deprecated := func(old, cur netip.Prefix) {
		t.Helper()
		r := rdisc6(t, g.l, lab.LAN1)
		if valid, pref, ok := raPrefix(r, old); !ok || pref != 0 || valid == 0 || valid > 7200 {
			t.Errorf("old prefix %v in the RA: valid %d preferred %d (%v); want preferred 0 and a short valid lifetime:\n%s", old, valid, pref, ok, r)
		}
		if _, pref, ok := raPrefix(r, cur); !ok || pref == 0 {
			t.Errorf("the RA lacks the new prefix %v:\n%s", cur, r)
		}
		eventually(t, "the old address deprecated", func() error {
			lft, dep, ok := addrLifetime(t, g.l, lab.LAN1, eui64(old, lab.LAN1MAC))
			if !ok || !dep || lft != "0" {
				return fmt.Errorf("lan1's address in %v: preferred %s deprecated %v (present %v)", old, lft, dep, ok)
			}
			return nil
		})
	}
	wait(p1)

	start := time.Now()
	setWAN4(t, g.l, netip.MustParsePrefix("203.0.113.9/24"))
	wait(p2)
	t.Logf("renumbered in %v", time.Since(start).Round(time.Millisecond))
	deprecated(p1, p2)
	st, _ := ipv6Status(t, g.api())
	if st.Prefix != p2 {
		t.Fatalf("status prefix %v, want %v", st.Prefix, p2)
	}

	// kill -9, a new address while the daemon is down, and a restart.
	if err := g.l.Stop(labgw.Daemon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	setWAN4(t, g.l, netip.MustParsePrefix("203.0.113.10/24"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := labgw.Start(ctx, g.l, binary, g.cfg); err != nil {
		t.Fatal(err)
	}
	wait(p3)
	deprecated(p2, p3)
}

// TestIPv6UplinkSwitch: when the ISP stops delegating, the prefix is
// withdrawn at the end of its valid lifetime and the LAN falls back to
// 6to4 (the WAN address is public), the delegated prefix deprecated.
func TestIPv6UplinkSwitch(t *testing.T) {
	testenv.Tool(t, "rdisc6", "ndisc6")
	l := labtest.New(t)
	if _, err := l.StartPDServer(lab.PDServerOptions{Preferred: 4 * time.Second, Valid: 8 * time.Second, T1: 2 * time.Second, T2: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	g := startIn(t, l, labgw.Config, "", lab.LAN1)
	if st, _ := ipv6Status(t, g.api()); st.Uplink != gateway.UplinkPD {
		t.Fatalf("uplink %+v, want the delegation", st)
	}
	if err := l.StopPDServer(); err != nil {
		t.Fatal(err)
	}
	sixto4 := netip.MustParsePrefix("2002:cb00:7102:1::/64")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := labgw.WaitAddr6(ctx, l, lab.LAN1, eui64(sixto4, lab.LAN1MAC)); err != nil {
		t.Fatal(err)
	}
	if st, _ := ipv6Status(t, g.api()); st.Uplink != gateway.UplinkSixto4 || st.Prefix != sixto4 {
		t.Fatalf("after the withdrawal: %+v, want 6to4 %v", st, sixto4)
	}
	r := rdisc6(t, l, lab.LAN1)
	if _, pref, ok := raPrefix(r, lab.LANPrefix6); ok && pref != 0 {
		t.Errorf("the withdrawn prefix is still preferred:\n%s", r)
	}
	if _, pref, ok := raPrefix(r, sixto4); !ok || pref == 0 {
		t.Errorf("the RA lacks the 6to4 prefix:\n%s", r)
	}
}

// TestIPv6NoUplink: with neither delegation nor 6to4, the LAN gets a
// stable ULA for local traffic and no default route (router lifetime 0);
// the ULA is the same after kill -9 and a restart.
func TestIPv6NoUplink(t *testing.T) {
	testenv.Tool(t, "rdisc6", "ndisc6")
	g := startWith(t, siteAConfig("\nconfig ipv6\n\toption pd '0'\n\toption sixto4 '0'\n"), "", lab.LAN1)
	var st gateway.IPv6Status
	eventually(t, "the ULA", func() error {
		if st, _ = ipv6Status(t, g.api()); st.Uplink != gateway.UplinkNone || !st.Prefix.Addr().IsPrivate() {
			return fmt.Errorf("uplink %+v, want none with a ULA", st)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := labgw.WaitAddr6(ctx, g.l, lab.LAN1, eui64(st.Prefix, lab.LAN1MAC)); err != nil {
		t.Fatal(err)
	}
	r := rdisc6(t, g.l, lab.LAN1)
	if m := regexp.MustCompile(`Router lifetime\s*:\s*(\d+)`).FindStringSubmatch(r); m == nil || m[1] != "0" {
		t.Errorf("RA with no uplink offers a default route:\n%s", r)
	}
	if err := g.l.Stop(labgw.Daemon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := labgw.Start(ctx, g.l, binary, g.cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the same ULA after a restart", func() error {
		if again, _ := ipv6Status(t, g.api()); again.Prefix != st.Prefix {
			return fmt.Errorf("ULA %v after a restart, was %v", again.Prefix, st.Prefix)
		}
		return nil
	})
}

// TestIPv6SpoofedLANSource: a packet from the internet that claims a LAN
// source is not forwarded, even one the filter would otherwise let in (an
// echo request).
func TestIPv6SpoofedLANSource(t *testing.T) {
	testenv.Tool(t, "busybox", "busybox")
	g := startGateway(t, "")
	spoof := netip.MustParseAddr("2001:db8:1:1::99")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := g.l.Command(ctx, lab.Public, "ip", "addr", "add", spoof.String()+"/128", "dev", lab.HostIf, "nodad").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lan16 := lab.LAN1Addr6.Addr().String()
	// The source named: by longest match the kernel would pick the
	// spoofed address for a LAN destination.
	if out, err := g.l.Command(ctx, lab.Public, "busybox", "ping", "-6", "-c", "1", "-W", "2", "-I", lab.PublicAddrs6[0].Addr().String(), lan16).CombinedOutput(); err != nil {
		t.Fatalf("pub → lan1 from its own address: %v\n%s", err, out)
	}
	// What reaches lan1 is counted there: an answer could not come back
	// anyway (lan1 looks for the spoofed address on its own link).
	before := inEchos(t, g.l, lab.LAN1)
	g.l.Command(ctx, lab.Public, "busybox", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", "-I", spoof.String(), lan16).Run()
	if after := inEchos(t, g.l, lab.LAN1); after != before {
		t.Fatalf("lan1 received %d echo requests from a spoofed LAN source", after-before)
	}
}

// inEchos is the ICMPv6 echo requests host's kernel has received.
func inEchos(t *testing.T, l *lab.Lab, host string) int {
	t.Helper()
	var n int
	if err := l.Do(host, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp6") // this thread's namespace, not the process's
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Icmp6InEchos" {
				n, err = strconv.Atoi(f[1])
				return err
			}
		}
		return fmt.Errorf("no Icmp6InEchos in snmp6")
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIPv6Reload: SIGHUP with a new DNS server for the RA restarts the RA
// alone (the delegation is kept, the LAN not renumbered); with the IPv6
// section turned off, the router's final RA (router lifetime 0) takes it
// out of the LAN hosts' default routes.
func TestIPv6Reload(t *testing.T) {
	testenv.Tool(t, "rdisc6", "ndisc6")
	g := startGateway(t, "")
	before, _ := ipv6Status(t, g.api())
	newDNS := "2001:db8:100::53"
	text := labgw.Config(g.l, "")
	changed := strings.Replace(text, "list dns '"+labgw.LabDNS6.String()+"'", "list dns '"+newDNS+"'", 1)
	if changed == text {
		t.Fatal("the lab config has no dns line to change")
	}
	g.writeConfig(changed)
	g.signal(syscall.SIGHUP)
	eventuallyWithin(t, 10*time.Second, "the new RDNSS", func() error {
		if r := rdisc6(t, g.l, lab.LAN1); !strings.Contains(r, "Recursive DNS server     : "+newDNS) {
			return fmt.Errorf("RA without %s:\n%s", newDNS, r)
		}
		return nil
	})
	after, _ := ipv6Status(t, g.api())
	if after.Prefix != before.Prefix || after.Delegated != before.Delegated || after.Valid == nil || before.Valid == nil || !after.Valid.Equal(*before.Valid) {
		t.Fatalf("an RA-only change touched the uplink: %+v → %+v", before, after)
	}

	// IPv6 off: the router withdraws itself as a default router.
	g.writeConfig(strings.Replace(changed, "config ipv6 'ipv6'", "config ipv6 'ipv6'\n\toption enabled '0'", 1))
	g.signal(syscall.SIGHUP)
	eventuallyWithin(t, 10*time.Second, "no IPv6 status", func() error {
		var st struct {
			IPv6 *gateway.IPv6Status `json:"ipv6"`
		}
		if err := g.api().Do("GET", "/api/v1/status", nil, &st); err != nil || st.IPv6 != nil {
			return fmt.Errorf("status ipv6 %+v, %v", st.IPv6, err)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eventually(t, "lan1 without a default IPv6 route", func() error {
		out, _ := g.l.Command(ctx, lab.LAN1, "ip", "-6", "route", "show", "default").Output()
		if len(strings.TrimSpace(string(out))) != 0 {
			return fmt.Errorf("lan1 still routes by %s", out)
		}
		return nil
	})
}
