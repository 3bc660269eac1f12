package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"gateway/dhcp"
	"gateway/internal/events"
	"gateway/internal/throughput"
	"gateway/nat44"
)

// Live is what the panel shows as it happens: the event log, the WAN
// throughput and which LAN hosts answer. A Backend without it serves no
// events or throughput (404) and leases without `online`.
type Live interface {
	// Events are the events newer than after, oldest first.
	Events(after uint64) []events.Event
	// Throughput is the WAN's rate samples and their interval.
	Throughput() (time.Duration, []throughput.Sample)
	// Online reports which of addrs answer now (the kernel's neighbour
	// table), without probing.
	Online(addrs []netip.Addr) map[netip.Addr]bool
}

// Throughput is the body of GET /api/v1/throughput.
type Throughput struct {
	Interval Seconds             `json:"interval"`
	Samples  []throughput.Sample `json:"samples"`
}

// Lease is a DHCP lease as the API shows it.
type Lease struct {
	dhcp.Lease
	Online bool `json:"online"`
}

// registerData adds the endpoints of what the panel shows live.
func registerData(mux *http.ServeMux, b Backend) {
	l, ok := b.(Live)
	if !ok {
		return
	}
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		var after uint64
		if v := r.URL.Query().Get("after"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				reply(w, http.StatusBadRequest, fieldErrorBody{fmt.Sprintf("after %q is not an event ID", v), "after"})
				return
			}
			after = n
		}
		es := l.Events(after)
		if es == nil {
			es = []events.Event{}
		}
		reply(w, http.StatusOK, es)
	})
	mux.HandleFunc("GET /api/v1/throughput", func(w http.ResponseWriter, r *http.Request) {
		iv, ss := l.Throughput()
		if ss == nil {
			ss = []throughput.Sample{}
		}
		reply(w, http.StatusOK, Throughput{Seconds(iv), ss})
	})
}

// leases are d's leases, each with whether its host answers now.
func leases(b Backend, ls []dhcp.Lease) []Lease {
	out := make([]Lease, len(ls))
	addrs := make([]netip.Addr, len(ls))
	for i, x := range ls {
		out[i].Lease = x
		addrs[i] = x.Addr
	}
	if l, ok := b.(Live); ok {
		on := l.Online(addrs)
		for i := range out {
			out[i].Online = on[out[i].Addr]
		}
	}
	return out
}

// sessionsOf keeps the sessions of the LAN host the query's `host`
// names, or all without one.
func sessionsOf(r *http.Request, ss []nat44.Session) ([]nat44.Session, error) {
	v := r.URL.Query().Get("host")
	if v == "" {
		return ss, nil
	}
	h, err := netip.ParseAddr(v)
	if err != nil {
		return nil, &FieldError{"host", fmt.Errorf("host %q is not an IP address", v)}
	}
	out := []nat44.Session{}
	for _, s := range ss {
		if s.Internal.Addr() == h {
			out = append(out, s)
		}
	}
	return out, nil
}
