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
	"slices"
	"strings"
	"time"
)

// Status is what exists of a lab, read live from its namespaces.
type Status struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// Up is true when the topology is complete: built by this version of
	// the package, every namespace present and every interface, MAC,
	// static address and route in place. The LAN hosts' IPv4 addresses
	// are not part of it: they come from a DHCP server that the lab does
	// not run (HostStatus.Lease reports them; gateway/labgw's status
	// counts them).
	Up bool `json:"up"`
	// Problems says why Up is false.
	Problems []string     `json:"problems,omitempty"`
	Hosts    []HostStatus `json:"hosts"`
}

// HostStatus is one host of the lab.
type HostStatus struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Namespace string `json:"namespace"`
	// Present tells whether the namespace exists.
	Present    bool        `json:"present"`
	Interfaces []Interface `json:"interfaces"`
	// Gateway and Gateway6 are the next hops of the IPv4 and IPv6
	// default routes; zero if none.
	Gateway  netip.Addr `json:"gateway,omitzero"`
	Gateway6 netip.Addr `json:"gateway6,omitzero"`
	// Lease is what the host's DHCP client holds, from its hook's log
	// (see Lease); nil if it never logged one.
	Lease *Lease `json:"lease,omitempty"`
	// Processes are those started with Start in this host, running or not.
	Processes []Process `json:"processes"`
}

// Interface is a network interface of a host.
type Interface struct {
	Name   string `json:"name"`
	Up     bool   `json:"up"`    // administratively up
	State  string `json:"state"` // operational state, as ip(8) says it: UP, DOWN, LOWERLAYERDOWN, UNKNOWN…
	Master string `json:"master,omitempty"`
	MAC    string `json:"mac,omitempty"`
	// Addrs holds the IPv4 and IPv6 addresses with their prefix lengths.
	Addrs []netip.Prefix `json:"addrs"`
}

// Process is a process started with Start.
type Process struct {
	Name  string   `json:"name"`
	Host  string   `json:"host"`
	PID   int      `json:"pid"`
	Alive bool     `json:"alive"`
	Args  []string `json:"args"`
	Log   string   `json:"log"`
	// Restarts counts the restarts of a process run by Respawn.
	Restarts int `json:"restarts,omitempty"`
}

// Status reads the state of the lab. It never fails: what cannot be read
// is reported in Problems.
func (l *Lab) Status() Status {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.status(ctx, newTopology())
}

func (l *Lab) status(ctx context.Context, t *topology) Status {
	st := Status{Name: l.Name, Dir: l.Dir}
	var problems []string
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	saved, err := l.readState()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		problem("no %s in %s", stateFile, l.Dir)
	case err != nil:
		problem("%v", err)
	case saved.Plan == "":
		problem("the build did not finish")
	case saved.Plan != digest(l.plan(t), l.Name):
		problem("built by another version of the lab")
	}
	procs, err := l.processes()
	if err != nil {
		problem("%v", err)
	}
	if l.SiteBCGNAT() {
		t = t.withSiteBCGNAT()
	}
	for _, h := range t.hosts {
		hs := HostStatus{Name: h.name, Role: h.role, Namespace: l.NS(h.name), Interfaces: []Interface{}, Processes: []Process{}}
		for _, p := range procs {
			if p.Host == h.name {
				hs.Processes = append(hs.Processes, p)
			}
		}
		st.Hosts = append(st.Hosts, hs)
		if _, err := os.Stat(filepath.Join(netnsDir, hs.Namespace)); err != nil {
			problem("host %s: no namespace %s", h.name, hs.Namespace)
			continue
		}
		st.Hosts[len(st.Hosts)-1].Present = true
		ifs, err := readInterfaces(ctx, hs.Namespace)
		if err != nil {
			problem("host %s: %v", h.name, err)
			continue
		}
		st.Hosts[len(st.Hosts)-1].Interfaces = ifs
		gw, err := readGateway(ctx, hs.Namespace, "-4")
		if err != nil {
			problem("host %s: %v", h.name, err)
		}
		gw6, err := readGateway(ctx, hs.Namespace, "-6")
		if err != nil {
			problem("host %s: %v", h.name, err)
		}
		st.Hosts[len(st.Hosts)-1].Gateway, st.Hosts[len(st.Hosts)-1].Gateway6 = gw, gw6
		if h.gateway != gw && !h.dhcp {
			problem("host %s: default route via %v, want %v", h.name, gw, h.gateway)
		}
		if h.gateway6 != gw6 && !h.slaac {
			problem("host %s: IPv6 default route via %v, want %v", h.name, gw6, h.gateway6)
		}
		for _, r := range h.routes {
			if via, err := readRoute(ctx, hs.Namespace, r.dst); err != nil {
				problem("host %s: %v", h.name, err)
			} else if via != r.via {
				problem("host %s: route to %v via %v, want %v", h.name, r.dst, via, r.via)
			}
		}
		if h.dhcp {
			if ls, ok := l.Lease(h.name); ok {
				st.Hosts[len(st.Hosts)-1].Lease = &ls
			}
		}
		want := append([]iface{{host: h.name, name: "lo"}}, t.ifaces(h.name)...)
		for _, w := range want {
			i := slices.IndexFunc(ifs, func(f Interface) bool { return f.Name == w.name })
			if i < 0 {
				problem("host %s: no interface %s", h.name, w.name)
				continue
			}
			f := ifs[i]
			if !f.Up {
				problem("host %s: %s is down", h.name, f.Name)
			}
			if f.Master != w.master {
				problem("host %s: %s has master %q, want %q", h.name, f.Name, f.Master, w.master)
			}
			if w.mac != "" && f.MAC != w.mac {
				problem("host %s: %s has MAC %s, want %s", h.name, f.Name, f.MAC, w.mac)
			}
			for _, a := range w.addrs {
				if !slices.Contains(f.Addrs, a) {
					problem("host %s: %s lacks %v", h.name, f.Name, a)
				}
			}
		}
	}
	st.Up = len(problems) == 0
	st.Problems = problems
	return st
}

// readInterfaces reads the interfaces of namespace ns with `ip -j addr`.
func readInterfaces(ctx context.Context, ns string) ([]Interface, error) {
	out, err := output(ctx, "ip", "-n", ns, "-j", "addr", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		IfName    string   `json:"ifname"`
		Flags     []string `json:"flags"`
		OperState string   `json:"operstate"`
		Master    string   `json:"master"`
		LinkType  string   `json:"link_type"`
		Address   string   `json:"address"`
		AddrInfo  []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("lab: ip -j addr in %s: %w", ns, err)
	}
	ifs := make([]Interface, 0, len(links))
	for _, k := range links {
		f := Interface{
			Name:   k.IfName,
			Up:     slices.Contains(k.Flags, "UP"),
			State:  k.OperState,
			Master: k.Master,
			Addrs:  []netip.Prefix{},
		}
		if k.LinkType == "ether" {
			f.MAC = k.Address
		}
		for _, a := range k.AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				return nil, fmt.Errorf("lab: ip -j addr in %s: %w", ns, err)
			}
			p := netip.PrefixFrom(addr.WithZone(""), a.PrefixLen) // keeps the host part
			if !p.IsValid() {
				return nil, fmt.Errorf("lab: ip -j addr in %s: bad prefix length %d for %v", ns, a.PrefixLen, addr)
			}
			f.Addrs = append(f.Addrs, p)
		}
		ifs = append(ifs, f)
	}
	return ifs, nil
}

// readGateway returns the next hop of the default route of family ("-4"
// or "-6") in ns, or the zero Addr.
func readGateway(ctx context.Context, ns, family string) (netip.Addr, error) {
	return readNextHop(ctx, ns, family, "default")
}

// readRoute returns the next hop of the route to dst in ns, or the zero
// Addr.
func readRoute(ctx context.Context, ns string, dst netip.Prefix) (netip.Addr, error) {
	family := "-4"
	if dst.Addr().Is6() {
		family = "-6"
	}
	return readNextHop(ctx, ns, family, dst.String())
}

func readNextHop(ctx context.Context, ns, family, dst string) (netip.Addr, error) {
	out, err := output(ctx, "ip", "-n", ns, family, "-j", "route", "show", dst)
	if err != nil {
		return netip.Addr{}, err
	}
	var routes []struct {
		Gateway string `json:"gateway"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return netip.Addr{}, fmt.Errorf("lab: ip -j route in %s: %w", ns, err)
	}
	for _, r := range routes {
		if a, err := netip.ParseAddr(strings.TrimSpace(r.Gateway)); err == nil {
			return a, nil
		}
	}
	return netip.Addr{}, nil
}
