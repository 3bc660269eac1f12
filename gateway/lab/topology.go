package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// iface is an interface that the build configures: a bridge or one end of
// a veth pair.
type iface struct {
	host   string
	name   string
	master string // the bridge it is a port of, in the same host; "" if none
	mac    string // its MAC address; "" for the kernel's random one
	addrs  []netip.Prefix
}

// route is a static route other than the default ones.
type route struct {
	dst netip.Prefix
	via netip.Addr
}

// hostSpec is one namespace.
type hostSpec struct {
	name     string
	role     string
	forward  bool       // net.ipv4.ip_forward=1 and net.ipv6.conf.all.forwarding=1
	gateway  netip.Addr // IPv4 default route; invalid if none
	gateway6 netip.Addr // IPv6 default route; invalid if none
	routes   []route
	// dhcp marks a host whose IPv4 address and default route come from a
	// DHCP client, not from the build.
	dhcp bool
	// slaac marks a host whose IPv6 addresses and default route come
	// from router advertisements on its HostIf (accept_ra and autoconf
	// on), not from the build: gateway6 is then invalid and Status does
	// not check the IPv6 default route.
	slaac   bool
	bridges []iface
	// nft is a ruleset that the build loads with `nft -f -` in the host;
	// "" for none.
	nft string
}

// veth is a veth pair between two hosts.
type veth struct{ a, b iface }

type topology struct {
	hosts []hostSpec
	links []veth
}

func newTopology() *topology {
	t := &topology{}
	t.addHost(hostSpec{name: ISP, role: RoleISP, forward: true,
		routes: []route{
			{dst: DelegatedPrefix6, via: WANAddr6.Addr()},
			{dst: SixToFourPrefix, via: RelayAddr6.Addr()},
			{dst: TeredoPrefix, via: TeredoRelayAddr6.Addr()},
		},
		bridges: []iface{{host: ISP, name: ISPInet, addrs: []netip.Prefix{InetAddr, InetAddr6}}},
		nft:     ispRuleset})
	t.addInetHost(hostSpec{name: Public, role: RolePublic}, PublicPort, PublicAddrs[0], PublicAddrs[1], PublicAddrs6[0], PublicAddrs6[1])
	// The relay forwards between its IPv4 side (6to4 packets in
	// protocol 41) and native IPv6, once its process runs.
	t.addInetHost(hostSpec{name: Relay, role: RoleRelay, forward: true}, RelayPort, RelayAddr, RelayAddr6)
	t.addHost(hostSpec{name: Gateway, role: RoleGateway, forward: true,
		gateway: ISPWANAddr.Addr(), gateway6: ISPWANAddr6.Addr(),
		bridges: []iface{{host: Gateway, name: GatewayLAN, addrs: []netip.Prefix{LANAddr}}}})
	t.links = append(t.links, veth{
		iface{host: ISP, name: ISPWAN, addrs: []netip.Prefix{ISPWANAddr, ISPWANAddr6}},
		iface{host: Gateway, name: GatewayWAN, addrs: []netip.Prefix{WANAddr, WANAddr6}},
	})
	t.addLANHost(LAN1, LAN1Port, LAN1MAC)
	t.addLANHost(LAN2, LAN2Port, LAN2MAC)

	// Site B: IPv4 only from the ISP, IPv6 on its LAN by 6to4 (through
	// Relay) once its gateway advertises it.
	t.addHost(hostSpec{name: GatewayB, role: RoleGateway, forward: true,
		gateway: SiteBISPAddr.Addr(),
		bridges: []iface{{host: GatewayB, name: GatewayLAN, addrs: []netip.Prefix{SiteBLANAddr}}}})
	t.links = append(t.links, veth{
		iface{host: ISP, name: ISPWANB, addrs: []netip.Prefix{SiteBISPAddr, SiteBCGNATISPAddr}},
		iface{host: GatewayB, name: GatewayWAN, addrs: []netip.Prefix{SiteBWANAddr}},
	})
	t.addHost(hostSpec{name: LANB, role: RoleLAN, dhcp: true, slaac: true})
	t.links = append(t.links, veth{
		iface{host: GatewayB, name: LANBPort, master: GatewayLAN},
		iface{host: LANB, name: HostIf, mac: LANBMAC},
	})

	// The Teredo world (RFC 4380): a server with two consecutive
	// addresses, a Miredo client behind a plain Linux NAT (site C), and a
	// Miredo relay to which the ISP routes 2001::/32. The server has
	// native IPv6 too: it passes a client's echo test on to the IPv6
	// internet.
	t.addInetHost(hostSpec{name: TeredoServer, role: RoleTeredoServer}, TeredoServerPort,
		TeredoServerAddr, TeredoServerAddr2, TeredoServerAddr6)
	t.addInetHost(hostSpec{name: TeredoRelay, role: RoleTeredoRelay, forward: true}, TeredoRelayPort,
		TeredoRelayAddr, TeredoRelayAddr6)
	t.addHost(hostSpec{name: NATC, role: RoleNAT, forward: true, gateway: InetAddr.Addr(), nft: natcRuleset})
	t.links = append(t.links, veth{
		iface{host: ISP, name: NATCPort, master: ISPInet},
		iface{host: NATC, name: GatewayWAN, addrs: []netip.Prefix{NATCWANAddr}},
	})
	t.addHost(hostSpec{name: TeredoPeer, role: RoleLAN, gateway: NATCLANAddr.Addr()})
	t.links = append(t.links, veth{
		iface{host: NATC, name: NATCLAN, addrs: []netip.Prefix{NATCLANAddr}},
		iface{host: TeredoPeer, name: HostIf, addrs: []netip.Prefix{TeredoPeerAddr}},
	})
	return t
}

// ispRuleset makes the ISP a carrier-grade NAT for site B while site B's
// WAN is private (SetSiteBWAN): plain masquerade of CGNATPrefix towards
// everywhere but site B.
var ispRuleset = fmt.Sprintf(`table ip lab {
	chain post {
		type nat hook postrouting priority srcnat;
		ip saddr %s oifname != "%s" masquerade
	}
}
`, CGNATPrefix, ISPWANB)

// natcRuleset is site C's home router: plain masquerade (endpoint-
// independent mapping, address-and-port-dependent filtering), and
// unsolicited input from the WAN dropped before conntrack confirms it, as
// a home router does (ANCHORS.md: otherwise Teredo hole punching fails).
var natcRuleset = fmt.Sprintf(`table ip lab {
	chain post {
		type nat hook postrouting priority srcnat;
		oifname "%[1]s" masquerade
	}
	chain in {
		type filter hook input priority filter;
		iifname "%[1]s" ct state new drop
	}
}
`, GatewayWAN)

func (t *topology) addHost(h hostSpec) { t.hosts = append(t.hosts, h) }

// addInetHost adds host h on the internet: its HostIf with addrs is port
// of the ISP's bridge, and its default routes go to the ISP.
func (t *topology) addInetHost(h hostSpec, port string, addrs ...netip.Prefix) {
	h.gateway, h.gateway6 = InetAddr.Addr(), InetAddr6.Addr()
	t.addHost(h)
	t.links = append(t.links, veth{
		iface{host: ISP, name: port, master: ISPInet},
		iface{host: h.name, name: HostIf, addrs: addrs},
	})
}

// addLANHost adds a host on the gateway's LAN bridge. Its IPv4 address and
// default route come from DHCP, its IPv6 address and default route from
// the gateway's router advertisements (SLAAC), as at home.
func (t *topology) addLANHost(name, port, mac string) {
	t.addHost(hostSpec{name: name, role: RoleLAN, dhcp: true, slaac: true})
	t.links = append(t.links, veth{
		iface{host: Gateway, name: port, master: GatewayLAN},
		iface{host: name, name: HostIf, mac: mac},
	})
}

func (t *topology) host(name string) (hostSpec, bool) {
	for _, h := range t.hosts {
		if h.name == name {
			return h, true
		}
	}
	return hostSpec{}, false
}

// ifaces returns the interfaces of host that the build configures.
func (t *topology) ifaces(host string) []iface {
	var out []iface
	for _, h := range t.hosts {
		if h.name == host {
			out = append(out, h.bridges...)
		}
	}
	for _, v := range t.links {
		for _, e := range []iface{v.a, v.b} {
			if e.host == host {
				out = append(out, e)
			}
		}
	}
	return out
}

// batch is a list of ip(8) commands that run in one `ip -batch`.
type batch struct {
	ns   string     // the namespace they run in; "" for the root namespace
	cmds [][]string // arguments of ip, one command each
}

// sysctl is a setting below /proc/sys, written inside a host.
type sysctl struct {
	host  string
	path  string // below /proc/sys
	value string
	// optional marks a sysctl that may not exist (bridge-nf-call-* exist
	// only while br_netfilter is loaded).
	optional bool
}

// nftRuleset is a ruleset loaded with `nft -f -` inside a host.
type nftRuleset struct {
	host string
	text string
}

// phase is a step of the build; Options.fail is called after each.
type phase struct {
	name    string
	batches []batch
	sysctls []sysctl
	nfts    []nftRuleset
}

// plan returns the steps that build the lab from nothing.
func (l *Lab) plan(t *topology) []phase {
	var netns, links batch
	var hosts []batch
	var sysctls, early []sysctl
	var nfts []nftRuleset
	for _, h := range t.hosts {
		if h.nft != "" {
			nfts = append(nfts, nftRuleset{host: h.name, text: h.nft})
		}
		ns := l.NS(h.name)
		netns.cmds = append(netns.cmds, []string{"netns", "add", ns})
		// No duplicate address detection on the interfaces to come,
		// link-local addresses included: until a link-local address
		// has passed it (1-2 s), neighbour discovery holds packets
		// back, and the first ping of a new lab takes 2 s.
		for _, k := range []string{"all", "default"} {
			early = append(early, sysctl{host: h.name, path: "net/ipv6/conf/" + k + "/accept_dad", value: "0"})
		}
		b := batch{ns: ns, cmds: [][]string{{"link", "set", "lo", "up"}}}
		for _, br := range h.bridges {
			b.cmds = append(b.cmds, []string{"link", "add", br.name, "type", "bridge",
				// Snooping without a querier drops SSDP and mDNS
				// between ports once a host has joined a group.
				"mcast_snooping", "0"})
		}
		for _, f := range t.ifaces(h.name) {
			if f.master != "" {
				b.cmds = append(b.cmds, []string{"link", "set", f.name, "master", f.master})
			}
			if f.mac != "" {
				b.cmds = append(b.cmds, []string{"link", "set", f.name, "address", f.mac})
			}
			for _, a := range f.addrs {
				cmd := []string{"addr", "add", a.String(), "dev", f.name}
				if a.Addr().Is6() {
					// No duplicate address detection: nobody else
					// on these links has the address, and a
					// tentative address cannot be used for a
					// second or so.
					cmd = append(cmd, "nodad")
				}
				b.cmds = append(b.cmds, cmd)
			}
			b.cmds = append(b.cmds, []string{"link", "set", f.name, "up"})
		}
		// ip(8) takes the family of a default route from its next hop.
		for _, gw := range []netip.Addr{h.gateway, h.gateway6} {
			if gw.IsValid() {
				b.cmds = append(b.cmds, []string{"route", "add", "default", "via", gw.String()})
			}
		}
		for _, r := range h.routes {
			b.cmds = append(b.cmds, []string{"route", "add", r.dst.String(), "via", r.via.String()})
		}
		hosts = append(hosts, b)
		if h.forward {
			sysctls = append(sysctls,
				sysctl{host: h.name, path: "net/ipv4/ip_forward", value: "1"},
				sysctl{host: h.name, path: "net/ipv6/conf/all/forwarding", value: "1"})
		}
		if h.slaac {
			// What a home device does; the defaults of a new
			// namespace already, written so that the lab says so.
			for _, k := range []string{"forwarding=0", "accept_ra=1", "autoconf=1"} {
				k, v, _ := strings.Cut(k, "=")
				sysctls = append(sysctls, sysctl{host: h.name, path: "net/ipv6/conf/" + HostIf + "/" + k, value: v})
			}
		}
		if len(h.bridges) > 0 {
			// br_netfilter is loaded on this machine and on in every
			// new namespace: bridged frames would go through the
			// gateway's own NAT and break hairpinning.
			for _, k := range []string{"iptables", "ip6tables", "arptables"} {
				sysctls = append(sysctls, sysctl{host: h.name, path: "net/bridge/bridge-nf-call-" + k, value: "0", optional: true})
			}
		}
	}
	for _, v := range t.links {
		links.cmds = append(links.cmds, []string{"link", "add", v.a.name, "netns", l.NS(v.a.host),
			"type", "veth", "peer", "name", v.b.name, "netns", l.NS(v.b.host)})
	}
	return []phase{
		{name: "netns", batches: []batch{netns}},
		{name: "nodad", sysctls: early},
		{name: "links", batches: []batch{links}},
		{name: "hosts", batches: hosts},
		{name: "sysctl", sysctls: sysctls},
		{name: "nft", nfts: nfts},
	}
}

// digest identifies a plan, independent of the lab's name.
func digest(phases []phase, name string) string {
	h := sha256.New()
	line := func(s string) {
		fmt.Fprintf(h, "%s\n", strings.ReplaceAll(s, nsPrefix+name+"-", nsPrefix+"*-"))
	}
	for _, p := range phases {
		line("phase " + p.name)
		for _, b := range p.batches {
			line("batch " + b.ns)
			for _, c := range b.cmds {
				line(strings.Join(c, " "))
			}
		}
		for _, s := range p.sysctls {
			line(fmt.Sprintf("sysctl %s %s=%s %v", s.host, s.path, s.value, s.optional))
		}
		for _, n := range p.nfts {
			line("nft " + n.host + "\n" + n.text)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// build creates the lab from nothing. On error, the caller removes what
// exists.
func (l *Lab) build(ctx context.Context, t *topology, fail func(string) error) error {
	step := func(name string) error {
		if fail == nil {
			return nil
		}
		if err := fail(name); err != nil {
			return fmt.Errorf("lab: step %s: %w", name, err)
		}
		return nil
	}
	if err := l.makeDirs(t); err != nil {
		return err
	}
	if err := step("dirs"); err != nil {
		return err
	}
	phases := l.plan(t)
	for _, p := range phases {
		for _, b := range p.batches {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("lab: %w", err)
			}
			if err := runBatch(ctx, b); err != nil {
				return err
			}
		}
		for _, s := range p.sysctls {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("lab: %w", err)
			}
			if err := l.setSysctl(s); err != nil {
				return err
			}
		}
		for _, n := range p.nfts {
			if err := l.loadNft(ctx, n); err != nil {
				return err
			}
		}
		if err := step(p.name); err != nil {
			return err
		}
	}
	if err := l.writeState(state{Name: l.Name, Plan: digest(phases, l.Name)}); err != nil {
		return err
	}
	return step("state")
}

var failedLine = regexp.MustCompile(`Command failed -:(\d+)`)

// runBatch runs b with `ip -batch -`, which stops at the first command
// that fails; the error names that command.
func runBatch(ctx context.Context, b batch) error {
	if len(b.cmds) == 0 {
		return nil
	}
	args := []string{"-batch", "-"}
	if b.ns != "" {
		args = []string{"-n", b.ns, "-batch", "-"}
	}
	var in strings.Builder
	for _, c := range b.cmds {
		in.WriteString(strings.Join(c, " ") + "\n")
	}
	c := exec.CommandContext(ctx, "ip", args...)
	c.Stdin = strings.NewReader(in.String())
	out, err := c.CombinedOutput()
	if err == nil {
		return nil
	}
	where := "ip " + strings.Join(args, " ")
	if m := failedLine.FindSubmatch(out); m != nil {
		if n, _ := strconv.Atoi(string(m[1])); n >= 1 && n <= len(b.cmds) {
			where = "ip "
			if b.ns != "" {
				where += "-n " + b.ns + " "
			}
			where += strings.Join(b.cmds[n-1], " ")
		}
	}
	msg := strings.ReplaceAll(strings.TrimSpace(failedLine.ReplaceAllString(string(out), "")), "\n", "; ")
	return fmt.Errorf("lab: %s: %w: %s", where, err, msg)
}

func (l *Lab) setSysctl(s sysctl) error {
	return l.Do(s.host, func() error {
		err := os.WriteFile(filepath.Join("/proc/sys", s.path), []byte(s.value), 0o644)
		if s.optional && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lab: sysctl in %s: %w", s.host, err)
		}
		return nil
	})
}

func (l *Lab) loadNft(ctx context.Context, n nftRuleset) error {
	c := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS(n.host), "nft", "-f", "-")
	c.Stdin = strings.NewReader(n.text)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: nft in %s: %w: %s", n.host, err, bytes.TrimSpace(out))
	}
	return nil
}

// makeDirs creates Dir with the state file that marks it as a lab's
// (without a plan: not complete yet), then the per-host folders that
// Command mounts.
func (l *Lab) makeDirs(t *topology) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := l.writeState(state{Name: l.Name}); err != nil {
		return err
	}
	for _, d := range []string{pidsDir, procsDir, logsDir} {
		if err := os.MkdirAll(filepath.Join(l.Dir, d), 0o755); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	if err := l.writeHook(); err != nil {
		return err
	}
	for _, h := range t.hosts {
		hd := filepath.Join(l.Dir, h.name)
		for _, d := range []string{"run", "dhcp", "dhcpcd"} {
			if err := os.MkdirAll(filepath.Join(hd, d), 0o755); err != nil {
				return fmt.Errorf("lab: %w", err)
			}
		}
		rc := fmt.Sprintf("# resolv.conf of lab host %s; DHCP clients in the host rewrite it\n", h.name)
		if err := os.WriteFile(filepath.Join(hd, "resolv.conf"), []byte(rc), 0o644); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	return nil
}

// run runs a command and returns its output in the error if it fails.
func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return out, fmt.Errorf("lab: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
