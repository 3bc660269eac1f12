package labgw

import (
	"fmt"
	"os"
	"slices"

	"gateway/dhcp"
	"gateway/gateway"
	"gateway/gateway/client"
	"gateway/gateway/lab"
)

// Status is a lab with its gateways: what `gateway lab status` shows.
type Status struct {
	lab.Status
	// Ready is true when the home networks work: the topology is Up, and
	// for each site that runs (site A always; site B once its config is
	// written or its daemon started) the daemon answers on its control
	// socket and every LAN host holds its lease (its client's hook
	// applied it, and the daemon lists it when it can be asked).
	Ready bool `json:"ready"`
	// NotReady says why Ready is false.
	NotReady []string `json:"not_ready,omitempty"`
	// SiteStatus is site A's gateway, inline as before site B came.
	SiteStatus
	// SiteB is site B's gateway; nil if the lab runs none.
	SiteB *SiteStatus `json:"site_b,omitempty"`
}

// SiteStatus is the gateway of one site.
type SiteStatus struct {
	// Site and Host are Site.Name and Site.Host.
	Site string `json:"site"`
	Host string `json:"gateway_host"`
	// Config is the daemon's config file; Socket its control socket.
	Config string `json:"config"`
	Socket string `json:"socket"`
	// Gateway is what the daemon says of itself; nil if it does not
	// answer.
	Gateway *gateway.Status `json:"gateway,omitempty"`
	// Leases is the daemon's lease list.
	Leases []dhcp.Lease `json:"leases,omitempty"`
}

// Read reads the state of the lab and of its gateways. It never fails:
// what cannot be read is in Problems or NotReady.
func Read(l *lab.Lab) Status {
	st := Status{Status: l.Status()}
	var notReady []string
	bad := func(format string, args ...any) { notReady = append(notReady, fmt.Sprintf(format, args...)) }
	if !st.Up {
		bad("the topology is not complete (see problems)")
	}
	st.SiteStatus = SiteA.read(l, st.Hosts, bad)
	if SiteB.runs(l) {
		b := SiteB.read(l, st.Hosts, bad)
		st.SiteB = &b
	}
	st.Ready = len(notReady) == 0
	st.NotReady = notReady
	return st
}

// runs tells whether the lab runs the site: its config file is where
// `gateway lab up` writes it, or a process of it is recorded.
func (s *Site) runs(l *lab.Lab) bool {
	if _, err := os.Stat(s.ConfigPath(l)); err == nil {
		return true
	}
	_, d := l.Process(s.Daemon)
	_, r := l.Process(s.Respawner)
	return d || r
}

// read reads the site's daemon and checks its LAN hosts' leases among
// hosts; bad gets what is not ready, prefixed by the site for site B.
func (s *Site) read(l *lab.Lab, hosts []lab.HostStatus, bad func(string, ...any)) SiteStatus {
	st := SiteStatus{Site: s.Name, Host: s.Host, Config: s.ConfigPath(l), Socket: s.Socket(l)}
	prefix := ""
	if s != SiteA {
		prefix = "site " + s.Name + ": "
	}
	if d, ok := l.Process(s.Daemon); ok {
		if i := slices.Index(d.Args, "-c"); i >= 0 && i+1 < len(d.Args) {
			st.Config = d.Args[i+1]
		}
	}
	if c, err := gateway.LoadConfig(st.Config); err == nil {
		st.Socket = c.ControlSocket
	}
	cl := client.New(st.Socket)
	var gs gateway.Status
	if err := cl.Do("GET", "/api/v1/status", nil, &gs); err != nil {
		bad("%sthe daemon does not answer: %v", prefix, err)
	} else {
		st.Gateway = &gs
		if gs.DHCP != nil {
			if err := cl.Do("GET", "/api/v1/leases", nil, &st.Leases); err != nil {
				bad("%sleases: %v", prefix, err)
			}
		}
	}
	for _, h := range hosts {
		if !slices.Contains(s.LANHosts, h.Name) {
			continue
		}
		switch {
		case h.Lease == nil:
			bad("%s: no lease", h.Name)
		case !h.Lease.Held:
			bad("%s: lease of %v not held (expired, or not on %s)", h.Name, h.Lease.Addr, lab.HostIf)
		case st.Gateway != nil && st.Gateway.DHCP != nil:
			if ls, ok := Lease(st.Leases, s.MAC(h.Name)); !ok || ls.Addr != h.Lease.Addr.Addr() {
				bad("%s: holds %v, the daemon's lease for %s is %v", h.Name, h.Lease.Addr.Addr(), s.MAC(h.Name), ls.Addr)
			}
		}
	}
	return st
}
