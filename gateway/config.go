// Package gateway is the daemon: it reads the config, opens the real
// devices, starts and stops the services, and holds the CLI and the lab.
package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gateway/dhcp"
	"gateway/gateway/uci"
	"gateway/nat44"
)

// DefaultConfigPath is where OpenWrt keeps UCI files.
const DefaultConfigPath = "/etc/config/gateway"

// Config is the whole daemon configuration, read from one UCI file.
type Config struct {
	File string // where it was read from

	WAN      string   // WAN interface; required
	LANs     []string // LAN interfaces; required
	StateDir string   // default /etc/gateway
	// ControlSocket is the unix socket of the JSON API that the CLI uses;
	// default /run/gateway.sock.
	ControlSocket string
	LogLevel      slog.Level
	// AllowDocumentationWAN counts the RFC 5737 documentation ranges as
	// public WAN addresses (the lab uses them); default off.
	AllowDocumentationWAN bool

	NAT NATConfig
	// Forwards are the static port forwards ("redirect" sections).
	Forwards []nat44.Mapping
	// DHCP is the "dhcp" section; nil when the section is absent or
	// disabled.
	DHCP *DHCPConfig
	// UPnP is the "upnp" section; nil when absent or disabled.
	UPnP *UPnPConfig
	// PMP is the "pmp" section (NAT-PMP and PCP); nil when the section is
	// absent or turns both off.
	PMP *PMPConfig
	// IPv6 is the "ipv6" section (the defaults when absent); nil when it
	// turns IPv6 for the LAN off.
	IPv6 *IPv6Config
	// Web is the "web" section (the defaults when absent); nil when it
	// turns the panel off.
	Web *WebConfig
}

// DHCPConfig is the "dhcp" section and the "host" reservations. The pool
// and the server address come from the LAN interface's address when the
// daemon starts, unless given.
type DHCPConfig struct {
	Line                int    // of the section, for errors found against the interface
	Interface           string // default: the first LAN interface
	Start, Limit        int    // pool: host numbers Start to Start+Limit-1 (OpenWrt's convention); 0 = default
	LeaseTime           time.Duration
	DNS                 []netip.Addr
	Domain              string
	MTU                 uint16
	Routes              []dhcp.Route
	NoConflictDetection bool
	Authoritative       bool
	Reservations        []dhcp.Reservation
}

// NATConfig is the "nat" section.
type NATConfig struct {
	Filtering nat44.Filtering
	// UDPHold is how long a filter entry outlives its last flow.
	UDPHold time.Duration
	// UDPTimeout and TCPEstablished are the kernel's conntrack timeouts,
	// raised to these values if lower (RFC 4787 REQ-5, RFC 5382 REQ-5).
	UDPTimeout     time.Duration
	TCPEstablished time.Duration
	// Policy rules the port-mapping protocols' requests (secure mode,
	// permission rules, limits, lifetimes); its zero fields are nat44's
	// defaults.
	Policy nat44.Policy
	// Reserved are external ports that no protocol request gets.
	Reserved []nat44.Key
}

// maxReserved bounds the ports that "reserved_port" ranges expand to.
const maxReserved = 4096

// Defaults for what a minimal file leaves out.
const (
	defaultStateDir       = "/etc/gateway"
	DefaultControlSocket  = "/run/gateway.sock"
	defaultUDPHold        = 5 * time.Minute
	defaultUDPTimeout     = 2 * time.Minute
	defaultTCPEstablished = 2*time.Hour + 4*time.Minute
)

// LoadConfig reads and checks a config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig checks a config file's text; every problem is reported with
// the file, line and reason, all at once.
func ParseConfig(name string, data []byte) (*Config, error) {
	f, err := uci.Parse(name, data)
	if err != nil {
		return nil, err
	}
	c := &Config{
		File:          name,
		StateDir:      defaultStateDir,
		ControlSocket: DefaultControlSocket,
		LogLevel:      slog.LevelInfo,
		IPv6:          defaultIPv6(),
		Web:           defaultWeb(),
		NAT: NATConfig{
			UDPHold:        defaultUDPHold,
			UDPTimeout:     defaultUDPTimeout,
			TCPEstablished: defaultTCPEstablished,
		},
	}
	p := &parser{f: f}
	seenMain := false
	var hosts []dhcp.Reservation
	for _, s := range f.Sections {
		switch s.Type {
		case "gateway":
			if seenMain {
				p.errf(s.Line, "a second 'gateway' section")
			}
			seenMain = true
			p.mainSection(s, c)
		case "nat":
			p.natSection(s, &c.NAT)
		case "dhcp":
			p.dhcpSection(s, c)
		case "pmp":
			p.pmpSection(s, c)
		case "host":
			if r, ok := p.host(s); ok {
				hosts = append(hosts, r)
			}
		case "upnp":
			c.UPnP = p.upnpSection(s)
		case "ipv6":
			p.ipv6Section(s, c)
		case "web":
			p.webSection(s, c)
		case "redirect":
			if m, ok := p.redirect(s); ok {
				c.Forwards = append(c.Forwards, m...)
			}
		default:
			p.errf(s.Line, "unknown section type %q (want gateway, nat, redirect, dhcp, host, upnp, pmp, ipv6 or web)", s.Type)
		}
	}
	if !seenMain {
		p.errf(1, "no 'config gateway' section: it names the WAN and LAN interfaces")
	} else {
		if c.WAN == "" {
			p.errf(p.mainLine, "option wan is required (the WAN interface name)")
		}
		if len(c.LANs) == 0 {
			p.errf(p.mainLine, "option lan is required (the LAN interface name)")
		}
	}
	if c.DHCP != nil {
		if c.DHCP.Interface == "" && len(c.LANs) > 0 {
			c.DHCP.Interface = c.LANs[0]
		}
		c.DHCP.Reservations = hosts
		if c.DHCP.Start+c.DHCP.Limit-1 > 65534 {
			p.errf(c.DHCP.Line, "dhcp pool start %d limit %d reaches past host number 65534", c.DHCP.Start, c.DHCP.Limit)
		}
		p.checkReservations(hosts)
	} else if len(hosts) > 0 {
		p.errf(p.hostLine, "'host' reservations need a 'dhcp' section")
	}
	p.checkWeb(c)
	if c.UPnP != nil && c.UPnP.PermanentV1 {
		c.NAT.Policy.PermanentUPnP = true
	}
	seen := map[nat44.Key]int{}
	for i, m := range c.Forwards {
		if prev, ok := seen[m.Key()]; ok {
			p.errf(p.fwdLines[i], "redirect %v is already forwarded on line %d", m.Key(), p.fwdLines[prev])
		}
		seen[m.Key()] = i
	}
	// Report in file order, however the checks ran.
	slices.SortStableFunc(p.errs, func(a, b error) int { return lineOf(a) - lineOf(b) })
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return c, nil
}

type parser struct {
	f         *uci.File
	errs      []error
	mainLine  int
	hostLine  int
	hostLines []int // line of each accepted host, for duplicate reports
	fwdLines  []int // line of each forward, for duplicate reports
	ipv6Seen  bool
	webSeen   bool
}

func lineOf(err error) int {
	var e *uci.Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

func (p *parser) errf(line int, format string, args ...any) {
	p.errs = append(p.errs, p.f.Errf(line, format, args...))
}

// options calls fn for each option, and reports the ones fn does not know.
func (p *parser) options(s *uci.Section, known map[string]func(o *uci.Option, v string)) {
	for _, o := range s.Options {
		fn, ok := known[o.Name]
		if !ok {
			p.errf(o.Line, "unknown option %q in a %q section", o.Name, s.Type)
			continue
		}
		fn(o, o.Values[len(o.Values)-1])
	}
}

func (p *parser) mainSection(s *uci.Section, c *Config) {
	p.mainLine = s.Line
	p.options(s, map[string]func(*uci.Option, string){
		"wan": func(o *uci.Option, v string) { c.WAN = p.ifname(o, v) },
		"lan": func(o *uci.Option, _ string) {
			for _, v := range o.Values {
				// "option lan 'br-lan eth1'" and "list lan" both work.
				for _, name := range strings.Fields(v) {
					c.LANs = append(c.LANs, p.ifname(o, name))
				}
			}
		},
		"state_dir": func(o *uci.Option, v string) {
			if !strings.HasPrefix(v, "/") {
				p.errf(o.Line, "state_dir %q is not an absolute path", v)
			}
			c.StateDir = v
		},
		"control_socket": func(o *uci.Option, v string) {
			if !strings.HasPrefix(v, "/") {
				p.errf(o.Line, "control_socket %q is not an absolute path", v)
			}
			c.ControlSocket = v
		},
		"log_level": func(o *uci.Option, v string) {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				p.errf(o.Line, "log_level %q: want debug, info, warn or error", v)
			}
		},
		"allow_documentation_wan": func(o *uci.Option, v string) { c.AllowDocumentationWAN = p.bool(o, v) },
	})
	for _, l := range c.LANs {
		if l == c.WAN && l != "" {
			p.errf(s.Line, "interface %q is both WAN and LAN", l)
		}
	}
}

func (p *parser) natSection(s *uci.Section, n *NATConfig) {
	p.options(s, map[string]func(*uci.Option, string){
		"filtering": func(o *uci.Option, v string) {
			f, err := nat44.ParseFiltering(v)
			if err != nil {
				p.errf(o.Line, "filtering %q: want endpoint-independent, address-dependent or address-and-port-dependent", v)
			}
			n.Filtering = f
		},
		"udp_hold":                func(o *uci.Option, v string) { n.UDPHold = p.seconds(o, v, 2*time.Minute) },
		"udp_timeout":             func(o *uci.Option, v string) { n.UDPTimeout = p.seconds(o, v, 2*time.Minute) },
		"tcp_established_timeout": func(o *uci.Option, v string) { n.TCPEstablished = p.seconds(o, v, 2*time.Hour+4*time.Minute) },
		"host_limit":              func(o *uci.Option, v string) { n.Policy.HostLimit = p.intRange(o, v, 1, 65535) },
		"table_limit":             func(o *uci.Option, v string) { n.Policy.TableLimit = p.intRange(o, v, 1, 1<<20) },
		"secure_mode":             func(o *uci.Option, v string) { n.Policy.AllowThirdParty = !p.bool(o, v) },
		"min_lifetime":            func(o *uci.Option, v string) { n.Policy.MinLifetime = p.seconds(o, v, time.Second) },
		"max_lifetime":            func(o *uci.Option, v string) { n.Policy.MaxLifetime = p.seconds(o, v, time.Second) },
		"rule": func(o *uci.Option, _ string) {
			if n.Policy.Rules == nil {
				n.Policy.Rules = []nat44.Rule{} // given: no defaults, even if every rule is bad
			}
			for _, v := range o.Values {
				r, err := nat44.ParseRule(v)
				if err != nil {
					p.errf(o.Line, "%v", err)
					continue
				}
				n.Policy.Rules = append(n.Policy.Rules, r)
			}
		},
		"reserved_port": func(o *uci.Option, _ string) {
			for _, v := range o.Values {
				n.Reserved = append(n.Reserved, p.reservedPorts(o, v)...)
			}
			if len(n.Reserved) > maxReserved {
				p.errf(o.Line, "reserved_port: %d ports; at most %d", len(n.Reserved), maxReserved)
			}
		},
	})
	if err := n.Policy.Validate(); err != nil {
		p.errf(s.Line, "%v", err)
	} else if n.Policy.MaxLifetime == 0 && n.Policy.MinLifetime > nat44.DefaultMaxLifetime {
		p.errf(s.Line, "min_lifetime %v is over the default max_lifetime %v", n.Policy.MinLifetime, nat44.DefaultMaxLifetime)
	}
}

// reservedPorts reads "PROTO PORT[-PORT]", PROTO tcp, udp or tcpudp.
func (p *parser) reservedPorts(o *uci.Option, v string) []nat44.Key {
	f := strings.Fields(v)
	bad := func() []nat44.Key {
		p.errf(o.Line, "reserved_port %q: want 'tcp|udp|tcpudp PORT[-PORT]'", v)
		return nil
	}
	if len(f) != 2 {
		return bad()
	}
	var protos []nat44.Proto
	switch f[0] {
	case "tcp":
		protos = []nat44.Proto{nat44.TCP}
	case "udp":
		protos = []nat44.Proto{nat44.UDP}
	case "tcpudp":
		protos = []nat44.Proto{nat44.TCP, nat44.UDP}
	default:
		return bad()
	}
	lo, hi, ranged := strings.Cut(f[1], "-")
	if !ranged {
		hi = lo
	}
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || a == 0 || a > b || b-a >= maxReserved {
		return bad()
	}
	var out []nat44.Key
	for _, pr := range protos {
		for port := a; port <= b; port++ {
			out = append(out, nat44.Key{Proto: pr, ExternalPort: uint16(port)})
		}
	}
	return out
}

// redirect reads an fw4-style port forward. proto "tcp udp" (or "tcpudp")
// makes one mapping per protocol.
func (p *parser) redirect(s *uci.Section) ([]nat44.Mapping, bool) {
	var (
		name, destIP    string
		protos          = []nat44.Proto{nat44.TCP}
		srcPort, dstPrt uint16
		enabled         = true
		errs            = len(p.errs)
	)
	p.options(s, map[string]func(*uci.Option, string){
		"name": func(_ *uci.Option, v string) { name = v },
		"proto": func(o *uci.Option, _ string) {
			protos = nil
			for _, v := range o.Values {
				for _, w := range strings.Fields(strings.ReplaceAll(v, "tcpudp", "tcp udp")) {
					pr, err := nat44.ParseProto(w)
					if err != nil {
						p.errf(o.Line, "proto %q: want tcp, udp or 'tcp udp'", w)
						continue
					}
					protos = append(protos, pr)
				}
			}
		},
		"src_dport": func(o *uci.Option, v string) { srcPort = p.port(o, v) },
		"dest_port": func(o *uci.Option, v string) { dstPrt = p.port(o, v) },
		"dest_ip":   func(_ *uci.Option, v string) { destIP = v },
		"enabled":   func(o *uci.Option, v string) { enabled = p.bool(o, v) },
		"target":    func(o *uci.Option, v string) { p.only(o, v, "DNAT") },
		"src":       func(o *uci.Option, v string) { p.only(o, v, "wan") },
		"dest":      func(o *uci.Option, v string) { p.only(o, v, "lan") },
	})
	addr, err := netip.ParseAddr(destIP)
	switch {
	case destIP == "":
		p.errf(s.Line, "redirect needs option dest_ip")
	case err != nil || !addr.Is4():
		p.errf(s.Line, "redirect dest_ip %q is not an IPv4 address", destIP)
	}
	if srcPort == 0 && len(p.errs) == errs {
		p.errf(s.Line, "redirect needs option src_dport")
	}
	if len(p.errs) > errs || !enabled {
		return nil, false
	}
	if dstPrt == 0 {
		dstPrt = srcPort
	}
	var out []nat44.Mapping
	for _, pr := range protos {
		m := nat44.Mapping{Proto: pr, ExternalPort: srcPort, Internal: netip.AddrPortFrom(addr, dstPrt), Owner: nat44.OwnerStatic, Description: name}
		if err := m.Validate(); err != nil {
			p.errf(s.Line, "redirect: %v", err)
			continue
		}
		out = append(out, m)
		p.fwdLines = append(p.fwdLines, s.Line)
	}
	return out, true
}

func (p *parser) dhcpSection(s *uci.Section, c *Config) {
	if c.DHCP != nil {
		p.errf(s.Line, "a second 'dhcp' section")
	}
	d := &DHCPConfig{Line: s.Line, Authoritative: true}
	enabled := true
	p.options(s, map[string]func(*uci.Option, string){
		"enabled":   func(o *uci.Option, v string) { enabled = p.bool(o, v) },
		"interface": func(o *uci.Option, v string) { d.Interface = p.ifname(o, v) },
		"start":     func(o *uci.Option, v string) { d.Start = p.intRange(o, v, 1, 65534) },
		"limit":     func(o *uci.Option, v string) { d.Limit = p.intRange(o, v, 1, 65534) },
		"leasetime": func(o *uci.Option, v string) { d.LeaseTime = p.duration(o, v, dhcp.MinLeaseTime) },
		"dns": func(o *uci.Option, _ string) {
			for _, v := range o.Values {
				for _, w := range strings.Fields(v) {
					a, err := netip.ParseAddr(w)
					if err != nil || !a.Is4() {
						p.errf(o.Line, "dns %q is not an IPv4 address", w)
						continue
					}
					d.DNS = append(d.DNS, a)
				}
			}
		},
		"domain": func(o *uci.Option, v string) { d.Domain = v },
		"mtu":    func(o *uci.Option, v string) { d.MTU = uint16(p.intRange(o, v, 576, 65535)) },
		"route": func(o *uci.Option, _ string) {
			// "DEST/LEN GATEWAY", as in 'list route 10.0.0.0/8 192.168.1.2'
			for _, v := range o.Values {
				f := strings.Fields(strings.ReplaceAll(v, ",", " "))
				if len(f) != 2 {
					p.errf(o.Line, "route %q: want 'DEST/LEN GATEWAY'", v)
					continue
				}
				dst, err1 := netip.ParsePrefix(f[0])
				gw, err2 := netip.ParseAddr(f[1])
				if err1 != nil || err2 != nil || !dst.Addr().Is4() || !gw.Is4() {
					p.errf(o.Line, "route %q: want 'DEST/LEN GATEWAY' in IPv4", v)
					continue
				}
				d.Routes = append(d.Routes, dhcp.Route{Dest: dst.Masked(), Gateway: gw})
			}
		},
		"conflict_detection": func(o *uci.Option, v string) { d.NoConflictDetection = !p.bool(o, v) },
		"authoritative":      func(o *uci.Option, v string) { d.Authoritative = p.bool(o, v) },
	})
	if enabled {
		c.DHCP = d
	}
}

// checkReservations finds what is wrong with the reservations whatever
// the LAN's address: a MAC or an address reserved twice.
func (p *parser) checkReservations(hosts []dhcp.Reservation) {
	macs := map[string]int{}
	addrs := map[netip.Addr]int{}
	for i, r := range hosts {
		line := p.hostLines[i]
		if prev, ok := macs[r.MAC.String()]; ok {
			p.errf(line, "host %s is already reserved on line %d", r.MAC, p.hostLines[prev])
		} else {
			macs[r.MAC.String()] = i
		}
		if prev, ok := addrs[r.Addr]; ok {
			p.errf(line, "ip %v is already reserved on line %d", r.Addr, p.hostLines[prev])
		} else {
			addrs[r.Addr] = i
		}
	}
}

// host reads a static lease, as OpenWrt's /etc/config/dhcp writes it.
func (p *parser) host(s *uci.Section) (dhcp.Reservation, bool) {
	if p.hostLine == 0 {
		p.hostLine = s.Line
	}
	var r dhcp.Reservation
	errs := len(p.errs)
	p.options(s, map[string]func(*uci.Option, string){
		"mac": func(o *uci.Option, v string) {
			m, err := net.ParseMAC(v)
			if err != nil || len(m) != 6 {
				p.errf(o.Line, "mac %q is not an Ethernet address", v)
			}
			r.MAC = m
		},
		"ip": func(o *uci.Option, v string) {
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is4() {
				p.errf(o.Line, "ip %q is not an IPv4 address", v)
			}
			r.Addr = a
		},
		"name": func(o *uci.Option, v string) { r.Hostname = v },
	})
	if len(p.errs) == errs && (r.MAC == nil || !r.Addr.IsValid()) {
		p.errf(s.Line, "host needs options mac and ip")
	}
	if len(p.errs) != errs {
		return r, false
	}
	p.hostLines = append(p.hostLines, s.Line)
	return r, true
}

func (p *parser) intRange(o *uci.Option, v string, lo, hi int) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.errf(o.Line, "%s %q: want a number from %d to %d", o.Name, v, lo, hi)
	}
	return n
}

// duration reads OpenWrt's lease times: seconds, or a number with s, m, h,
// d or w ("12h").
func (p *parser) duration(o *uci.Option, v string, least time.Duration) time.Duration {
	mult := time.Second
	num := v
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 's':
			num = v[:n-1]
		case 'm':
			mult, num = time.Minute, v[:n-1]
		case 'h':
			mult, num = time.Hour, v[:n-1]
		case 'd':
			mult, num = 24*time.Hour, v[:n-1]
		case 'w':
			mult, num = 7*24*time.Hour, v[:n-1]
		}
	}
	n, err := strconv.ParseUint(num, 10, 32)
	d := time.Duration(n) * mult
	if err != nil {
		p.errf(o.Line, "%s %q: want seconds or a number with s, m, h, d or w", o.Name, v)
	} else if d < least {
		p.errf(o.Line, "%s %v is under the least of %v", o.Name, d, least)
	}
	return d
}

func (p *parser) only(o *uci.Option, v, want string) {
	if v != want {
		p.errf(o.Line, "%s %q is not supported (only %q)", o.Name, v, want)
	}
}

func (p *parser) ifname(o *uci.Option, v string) string {
	if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ \t") {
		p.errf(o.Line, "%s %q is not an interface name", o.Name, v)
	}
	return v
}

func (p *parser) bool(o *uci.Option, v string) bool {
	switch v {
	case "1", "yes", "on", "true", "enabled":
		return true
	case "0", "no", "off", "false", "disabled":
		return false
	}
	p.errf(o.Line, "%s %q is not a boolean (want 1 or 0)", o.Name, v)
	return false
}

func (p *parser) port(o *uci.Option, v string) uint16 {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		p.errf(o.Line, "%s %q is not a port number (1-65535)", o.Name, v)
		return 0
	}
	return uint16(n)
}

func (p *parser) seconds(o *uci.Option, v string, least time.Duration) time.Duration {
	n, err := strconv.ParseUint(v, 10, 32)
	d := time.Duration(n) * time.Second
	if err != nil {
		p.errf(o.Line, "%s %q is not a number of seconds", o.Name, v)
	} else if d < least {
		p.errf(o.Line, "%s %v is under the %v the RFCs require", o.Name, d, least)
	}
	return d
}
