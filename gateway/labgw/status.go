package labgw

import (
	"fmt"
	"gateway/gateway/client"
	"slices"

	"gateway/dhcp"
	"gateway/gateway"
	"gateway/gateway/lab"
)

// Status is a lab with its gateway: what `gateway lab status` shows.
type Status struct {
	lab.Status
	// Ready is true when the home network works: the topology is Up, the
	// daemon answers on its control socket, and every LAN host holds its
	// lease (its client's hook applied it, and the daemon lists it when
	// it can be asked).
	Ready bool `json:"ready"`
	// NotReady says why Ready is false.
	NotReady []string `json:"not_ready,omitempty"`
	// Config is the daemon's config file; Socket its control socket.
	Config string `json:"config"`
	Socket string `json:"socket"`
	// Gateway is what the daemon says of itself; nil if it does not
	// answer.
	Gateway *gateway.Status `json:"gateway,omitempty"`
	// Leases is the daemon's lease list.
	Leases []dhcp.Lease `json:"leases,omitempty"`
}

// Read reads the state of the lab and of its gateway. It never fails:
// what cannot be read is in Problems or NotReady.
func Read(l *lab.Lab) Status {
	st := Status{Status: l.Status(), Config: ConfigPath(l), Socket: Socket(l)}
	var notReady []string
	bad := func(format string, args ...any) { notReady = append(notReady, fmt.Sprintf(format, args...)) }
	if !st.Up {
		bad("the topology is not complete (see problems)")
	}
	if d, ok := l.Process(Daemon); ok {
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
		bad("the daemon does not answer: %v", err)
	} else {
		st.Gateway = &gs
		if gs.DHCP != nil {
			if err := cl.Do("GET", "/api/v1/leases", nil, &st.Leases); err != nil {
				bad("leases: %v", err)
			}
		}
	}
	macs := map[string]string{lab.LAN1: lab.LAN1MAC, lab.LAN2: lab.LAN2MAC}
	for _, h := range st.Hosts {
		if !slices.Contains(lab.LANHosts, h.Name) {
			continue
		}
		switch {
		case h.Lease == nil:
			bad("%s: no lease", h.Name)
		case !h.Lease.Held:
			bad("%s: lease of %v not held (expired, or not on %s)", h.Name, h.Lease.Addr, lab.HostIf)
		case st.Gateway != nil && st.Gateway.DHCP != nil:
			if ls, ok := Lease(st.Leases, macs[h.Name]); !ok || ls.Addr != h.Lease.Addr.Addr() {
				bad("%s: holds %v, the daemon's lease for %s is %v", h.Name, h.Lease.Addr.Addr(), macs[h.Name], ls.Addr)
			}
		}
	}
	st.Ready = len(notReady) == 0
	st.NotReady = notReady
	return st
}
