// Package lab builds the virtual internet of `gateway lab` and of the
// integration tests: an ISP router with a public host and a 6to4 relay
// behind it, and two home sites, each a gateway with LAN hosts behind it,
// every host in its own network namespace, wired with veth pairs and
// bridges. It builds the topology and runs processes in it (a DHCP client
// in a LAN host, a daemon under a respawner); the daemons themselves are
// started by whoever uses the lab (gateway/labgw).
//
//	pub (198.51.100.10, .11;              rly (198.51.100.20; 2001:db8:100::20),
//	     2001:db8:100::10, ::11)               forwarding: the 6to4 relay
//	 | eth0 ── pub0                        | eth0 ── rly0
//	isp: br-inet 198.51.100.1 2001:db8:100::1, forwarding,
//	     gw-wan 203.0.113.1 2001:db8:0:1::1, gwb-wan 192.0.2.1,
//	     route 2001:db8:1::/56 via 2001:db8:0:1::2, 2002::/16 via 2001:db8:100::20
//	 | gw-wan ── wan                                  | gwb-wan ── wan
//	gw (site A): wan 203.0.113.2 2001:db8:0:1::2,     gwb (site B): wan 192.0.2.2 (no native
//	    br-lan 192.168.1.1 2001:db8:1:1::1                IPv6: it will use 6to4),
//	    (ports lan1, lan2), forwarding                    br-lan 192.168.2.1 (port lanb), forwarding
//	 | lan1 ── eth0             | lan2 ── eth0         | lanb ── eth0
//	lan1 02:00:00:00:01:10      lan2 02:00:00:00:01:11    lanb 02:00:00:00:02:10
//	  IPv4 by DHCP                IPv4 by DHCP              IPv4 by DHCP (192.168.2.10),
//	  (192.168.1.10)              (192.168.1.11)            IPv6 by SLAAC (accept_ra=1,
//	  2001:db8:1:1::10            2001:db8:1:1::11          autoconf=1), none static
//
// The Teredo world (teredo.go; the daemons run once StartTeredo starts
// them) hangs off br-inet too:
//
//	tsrv (198.51.100.30, .31; 2001:db8:100::30)   miredo-server
//	trly (198.51.100.50; 2001:db8:100::50)        Miredo relay; the ISP routes 2001::/32 here
//	natc (wan 198.51.100.40, lan 192.168.3.1)     site C: nft masquerade, no daemon
//	 | lan ── eth0
//	tpeer (192.168.3.10)                          Miredo client
//
// The ISP also holds 100.64.0.1/24 on gwb-wan and masquerades
// 100.64.0.0/10 out: SetSiteBWAN moves gwb's WAN behind that CGNAT.
//
// The addresses are documentation ranges (RFC 5737, RFC 3849) and private
// LAN ranges; the ISP has no route to 192.168.0.0/16, as on the real
// internet, so LAN hosts reach the public side (and the other site) over
// IPv4 only through their gateway's NAT. Over IPv6 the ISP routes site A's
// delegated /56 to gw, and 6to4 space (2002::/16) to the relay rly, which forwards
// between 6to4 and native IPv6 once its process runs (gateway/labgw starts
// it). Site B has no native IPv6: its LAN gets IPv6 from gwb by 6to4.
//
// The build gives LAN hosts no IPv4 address: they get one from their
// gateway's DHCP server through a real client (StartDHCPClient), and the
// gateways' default configs reserve LAN1Addr, LAN2Addr and LANBAddr for
// their MACs. SetStaticIPv4 gives them those addresses without a DHCP
// server.
//
// Namespaces are named gwl-<lab>-<host>. Every interface is created directly
// in its namespace, so labs with different names never collide.
//
// Everything here needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Host names.
const (
	ISP     = "isp"  // the internet router
	Public  = "pub"  // a host on the internet with two addresses, PublicAddrs
	Gateway = "gw"   // where the gateway runs
	LAN1    = "lan1" // a LAN host
	LAN2    = "lan2" // another LAN host

	Relay    = "rly"  // the 6to4 relay, on the internet with native IPv6
	GatewayB = "gwb"  // site B's gateway, IPv4 only from the ISP
	LANB     = "lanb" // site B's LAN host
)

// Roles of the hosts, as reported by Status.
const (
	RoleISP     = "isp"
	RolePublic  = "public"
	RoleGateway = "gateway"
	RoleLAN     = "lan"
	RoleRelay   = "relay"
)

// Interface names, each inside its host's namespace.
const (
	ISPWAN     = "gw-wan"  // ISP's side of the link to the gateway
	ISPInet    = "br-inet" // ISP's bridge towards the public hosts
	ISPWANB    = "gwb-wan" // ISP's side of the link to site B's gateway
	GatewayWAN = "wan"     // the WAN interface of gw and of gwb
	GatewayLAN = "br-lan"  // the LAN bridge of gw and of gwb
	HostIf     = "eth0"    // the only interface of pub, rly and the LAN hosts

	PublicPort = "pub0" // br-inet's port to pub
	RelayPort  = "rly0" // br-inet's port to rly
	LAN1Port   = "lan1" // gw's br-lan's port to lan1
	LAN2Port   = "lan2" // gw's br-lan's port to lan2
	LANBPort   = "lanb" // gwb's br-lan's port to lanb
)

// IPv4 addresses.
var (
	ISPWANAddr  = netip.MustParsePrefix("203.0.113.1/24")  // on ISPWAN; the gateway's default route
	WANAddr     = netip.MustParsePrefix("203.0.113.2/24")  // on GatewayWAN
	InetAddr    = netip.MustParsePrefix("198.51.100.1/24") // on ISPInet; the public hosts' default route
	PublicAddrs = [2]netip.Prefix{                         // both on pub's HostIf
		netip.MustParsePrefix("198.51.100.10/24"),
		netip.MustParsePrefix("198.51.100.11/24"),
	}
	LANAddr = netip.MustParsePrefix("192.168.1.1/24") // on GatewayLAN; the LAN hosts' default route
	// LAN1Addr and LAN2Addr are what the LAN hosts get by DHCP: the lab's
	// default config reserves them for LAN1MAC and LAN2MAC.
	LAN1Addr = netip.MustParsePrefix("192.168.1.10/24")
	LAN2Addr = netip.MustParsePrefix("192.168.1.11/24")

	RelayAddr = netip.MustParsePrefix("198.51.100.20/24") // on rly's HostIf: the 6to4 sites' relay

	SiteBISPAddr = netip.MustParsePrefix("192.0.2.1/24")   // on ISPWANB; gwb's default route
	SiteBWANAddr = netip.MustParsePrefix("192.0.2.2/24")   // on gwb's GatewayWAN
	SiteBLANAddr = netip.MustParsePrefix("192.168.2.1/24") // on gwb's GatewayLAN; lanb's default route
	// LANBAddr is what lanb gets by DHCP: site B's default config
	// reserves it for LANBMAC.
	LANBAddr = netip.MustParsePrefix("192.168.2.10/24")
)

// MAC addresses of the LAN hosts' HostIf, fixed so that DHCP reservations
// can name them and a lab keeps them across restarts of its gateway.
const (
	LAN1MAC = "02:00:00:00:01:10"
	LAN2MAC = "02:00:00:00:01:11"
	LANBMAC = "02:00:00:00:02:10"
)

// IPv6 addresses (RFC 3849 documentation prefix 2001:db8::/32). The ISP
// routes DelegatedPrefix6, which holds LANPrefix6, to the gateway's WANAddr6.
//
// The LAN hosts take their IPv6 addresses by SLAAC from the gateway's
// router advertisements: with the ISP's delegation (DelegatedPrefix6,
// subnet 1 on the LAN) LAN1Addr6 and LAN2Addr6 are their EUI-64 addresses
// in LANPrefix6, and the gateway puts LANAddr6 on its LAN bridge. Duplicate
// address detection is off in every host, so an address is usable at once.
var (
	InetAddr6    = netip.MustParsePrefix("2001:db8:100::1/64") // on ISPInet; the public hosts' default route
	PublicAddrs6 = [2]netip.Prefix{                            // both on pub's HostIf
		netip.MustParsePrefix("2001:db8:100::10/64"),
		netip.MustParsePrefix("2001:db8:100::11/64"),
	}
	ISPWANAddr6 = netip.MustParsePrefix("2001:db8:0:1::1/64")            // on ISPWAN; the gateway's default route
	WANAddr6    = netip.MustParsePrefix("2001:db8:0:1::2/64")            // on GatewayWAN
	LANPrefix6  = netip.MustParsePrefix("2001:db8:1:1::/64")             // the LAN's prefix, routed by the ISP to WANAddr6
	LANAddr6    = netip.MustParsePrefix("2001:db8:1:1::1/64")            // put on GatewayLAN by the gateway
	LAN1Addr6   = netip.MustParsePrefix("2001:db8:1:1:0:ff:fe00:110/64") // EUI-64 of LAN1MAC
	LAN2Addr6   = netip.MustParsePrefix("2001:db8:1:1:0:ff:fe00:111/64") // EUI-64 of LAN2MAC

	RelayAddr6 = netip.MustParsePrefix("2001:db8:100::20/64") // on rly's HostIf
	// SixToFourPrefix is the 6to4 space (RFC 3056), routed by the ISP to
	// RelayAddr6.
	SixToFourPrefix = netip.MustParsePrefix("2002::/16")
	// LANBAddr6 is lanb's SLAAC address (EUI-64 of LANBMAC) in the /64
	// that gwb advertises by 6to4: subnet 1 of 2002:c000:202::/48, the 6to4
	// prefix of SiteBWANAddr.
	LANBAddr6 = netip.MustParsePrefix("2002:c000:202:1:0:ff:fe00:210/64")
)

// LANHosts are the hosts on the LAN of gw (site A), in order.
var LANHosts = []string{LAN1, LAN2}

// LANBHosts are the hosts on the LAN of gwb (site B), in order.
var LANBHosts = []string{LANB}

// Host is one machine of the lab.
type Host struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Hosts lists the machines of the lab in the order they are built.
func Hosts() []Host {
	t := newTopology()
	hosts := make([]Host, len(t.hosts))
	for i, h := range t.hosts {
		hosts[i] = Host{Name: h.name, Role: h.role}
	}
	return hosts
}

// DefaultName is the lab's name when Options.Name is empty.
const DefaultName = "lab"

// Options name a lab.
type Options struct {
	// Name tells labs apart: 1 to 8 characters from [a-z0-9].
	// "" means DefaultName.
	Name string
	// Dir is the lab's state folder: pid files, per-host /run and
	// resolv.conf, logs. It must be missing, empty or a lab's folder: Down
	// removes it. "" means /run/gateway-lab/<Name>.
	Dir string

	// fail, if set, is called after each build step of Up; an error
	// makes Up fail there. Tests use it to check the cleanup.
	fail func(step string) error
}

// Lab is a lab that exists, at least in part.
type Lab struct {
	Name string // as in Options, never empty
	Dir  string // absolute

	mu sync.Mutex
	// exited holds, for each process this Lab started, a channel closed
	// once the process has exited and been reaped. Guarded by mu.
	exited map[string]chan struct{}
}

const (
	nsPrefix  = "gwl-"
	netnsDir  = "/run/netns"
	stateFile = "lab.json"
)

func newLab(opt Options) (*Lab, error) {
	name := opt.Name
	if name == "" {
		name = DefaultName
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	dir := opt.Dir
	if dir == "" {
		dir = filepath.Join("/run/gateway-lab", name)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lab: state folder: %w", err)
	}
	if dir == "/" {
		return nil, errors.New("lab: state folder must not be /")
	}
	return &Lab{Name: name, Dir: dir, exited: make(map[string]chan struct{})}, nil
}

func validName(name string) error {
	if len(name) < 1 || len(name) > 8 {
		return fmt.Errorf("lab: name %q: want 1 to 8 characters", name)
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("lab: name %q: want only a-z and 0-9", name)
		}
	}
	return nil
}

// NS returns the name of host's network namespace, for `ip netns exec` or
// `ip -n`.
func (l *Lab) NS(host string) string {
	return nsPrefix + l.Name + "-" + host
}

// state is Dir/lab.json. Up writes it first without Plan, which marks Dir
// as a lab's, and again with Plan once the lab is complete.
type state struct {
	Name string `json:"name"`
	// Plan is a digest of the build plan: a lab built by another version
	// of this package is rebuilt.
	Plan string `json:"plan"`
}

// Up makes sure the lab exists and is complete. A complete lab is reused
// as it is, with its processes. Anything less, such as what a crash left,
// is removed (with Down) and built again. If Up fails, it removes all it
// created before returning the error.
func Up(ctx context.Context, opt Options) (*Lab, error) {
	l, err := newLab(opt)
	if err != nil {
		return nil, err
	}
	if err := l.checkDir(); err != nil {
		return nil, err
	}
	t := newTopology()
	if l.exists() {
		if st := l.status(ctx, t); st.Up {
			return l, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		if err := l.Down(); err != nil {
			return nil, fmt.Errorf("lab: removing the incomplete lab %s: %w", l.Name, err)
		}
	}
	if err := l.build(ctx, t, opt.fail); err != nil {
		if derr := l.Down(); derr != nil {
			return nil, errors.Join(err, fmt.Errorf("lab: cleaning up after the failure: %w", derr))
		}
		return nil, err
	}
	return l, nil
}

// Open returns the lab named by opt if any part of it exists: its state
// folder or one of its namespaces. Otherwise the error wraps
// fs.ErrNotExist.
func Open(opt Options) (*Lab, error) {
	l, err := newLab(opt)
	if err != nil {
		return nil, err
	}
	if !l.exists() {
		return nil, fmt.Errorf("lab: no lab %s (state folder %s): %w", l.Name, l.Dir, fs.ErrNotExist)
	}
	return l, nil
}

// exists reports whether the state file or one of the namespaces of l
// exists.
func (l *Lab) exists() bool {
	if _, err := os.Stat(filepath.Join(l.Dir, stateFile)); err == nil {
		return true
	}
	ns, _ := l.namespaces()
	return len(ns) > 0
}

// checkDir refuses a state folder that holds things other than a lab's, so
// that Down never removes a folder it does not own.
func (l *Lab) checkDir() error {
	entries, err := os.ReadDir(l.Dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(entries) == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: state folder: %w", err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, stateFile)); err != nil {
		return fmt.Errorf("lab: state folder %s is not empty and holds no %s: not a lab's, refusing to use it", l.Dir, stateFile)
	}
	return nil
}

// namespaces lists the namespaces that belong to l, including any that the
// current topology no longer has.
func (l *Lab) namespaces() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	prefix := l.NS("")
	var ns []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			ns = append(ns, e.Name())
		}
	}
	return ns, nil
}

func (l *Lab) readState() (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(l.Dir, stateFile))
	if err != nil {
		return st, fmt.Errorf("lab: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("lab: %s: %w", stateFile, err)
	}
	return st, nil
}

func (l *Lab) writeState(st state) error {
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return writeFileAtomic(filepath.Join(l.Dir, stateFile), append(b, '\n'))
}

func writeFileAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// Down stops the processes that Start started (SIGTERM, then SIGKILL
// after 5 s) and any other process left in the lab's namespaces, deletes
// the namespaces, which deletes the interfaces in them, and removes Dir.
// It works on whatever part of the lab exists, and does nothing if none
// does.
func (l *Lab) Down() error {
	var errs []error
	if err := l.stopAll(); err != nil {
		errs = append(errs, err)
	}
	ns, err := l.namespaces()
	if err != nil {
		errs = append(errs, err)
	}
	if err := killStrays(ns); err != nil {
		errs = append(errs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range ns {
		if err := run(ctx, "ip", "netns", "delete", n); err != nil {
			if _, serr := os.Stat(filepath.Join(netnsDir, n)); errors.Is(serr, fs.ErrNotExist) {
				continue // someone else was faster
			}
			errs = append(errs, err)
		}
	}
	if err := l.removeDir(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeDir removes Dir if it is a lab's folder (it holds the state file)
// or empty.
func (l *Lab) removeDir() error {
	if _, err := os.Stat(filepath.Join(l.Dir, stateFile)); err == nil {
		if err := os.RemoveAll(l.Dir); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		return nil
	}
	err := os.Remove(l.Dir)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("lab: state folder %s holds no %s, left in place: %w", l.Dir, stateFile, err)
}
