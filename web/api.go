// Package web serves the admin JSON API (and, later, the panel). The CLI
// speaks the same API over the daemon's control socket.
package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"gateway/dhcp"
	"gateway/nat44"
)

// NAT is what the API needs of the mapping service (nat44.NAT).
type NAT interface {
	List() []nat44.Mapping
	Map(r nat44.Request) (nat44.Mapping, error)
	Unmap(rel nat44.Release, keys ...nat44.Key) error
	Sessions() ([]nat44.Session, error)
}

// Firewall is what the API needs of the IPv6 pinholes (nat44.NAT).
type Firewall interface {
	Pinholes() []nat44.Pinhole
	OpenPinhole(r nat44.PinholeRequest) (nat44.Pinhole, error)
	ClosePinhole(rel nat44.Release, k nat44.PinholeKey) error
}

// DHCP is what the API needs of the DHCP server.
type DHCP interface {
	Leases() []dhcp.Lease
	Reservations() []dhcp.Reservation
	AddReservation(r dhcp.Reservation) error
	RemoveReservation(mac net.HardwareAddr) error
}

// Backend is the daemon as the API sees it.
type Backend interface {
	Status() any
	NAT() NAT
	Firewall() Firewall
	DHCP() DHCP // nil when the DHCP server is off (or not running)
}

// MappingRequest is the body of POST /api/v1/mappings. Lifetime 0 makes a
// permanent mapping.
type MappingRequest struct {
	Proto        nat44.Proto    `json:"proto"`
	ExternalPort uint16         `json:"external_port"`
	Internal     netip.AddrPort `json:"internal"`
	Lifetime     Seconds        `json:"lifetime,omitempty"`
	Description  string         `json:"description,omitempty"`
}

// PinholeRequest is the body of POST /api/v1/pinholes. Lifetime 0 makes
// a permanent pinhole; an invalid Remote lets any host in.
type PinholeRequest struct {
	Proto       nat44.Proto    `json:"proto"`
	Internal    netip.AddrPort `json:"internal"`
	Remote      netip.Addr     `json:"remote,omitzero"`
	Lifetime    Seconds        `json:"lifetime,omitempty"`
	Description string         `json:"description,omitempty"`
}

// admin is who every request of the API acts for: the administrator, who
// is not bound by the request policy but may not touch static forwards
// (they belong to the config).
var admin = nat44.Release{Owner: nat44.OwnerAdmin}

// Seconds is a duration written as whole seconds in JSON.
type Seconds time.Duration

// MarshalJSON writes whole seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(time.Duration(s)/time.Second), 10), nil
}

// UnmarshalJSON reads whole seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("lifetime %s is not a number of seconds", b)
	}
	*s = Seconds(time.Duration(n) * time.Second)
	return nil
}

// NewAPI returns the handler of /api/v1/.
func NewAPI(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, b.Status())
	})
	mux.HandleFunc("GET /api/v1/mappings", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, b.NAT().List())
	})
	mux.HandleFunc("POST /api/v1/mappings", func(w http.ResponseWriter, r *http.Request) {
		var reqs []MappingRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&reqs); err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("body must be a JSON array of mappings: %w", err))
			return
		}
		// All or nothing, as the body is one request: what this request
		// made is taken back if a later mapping is refused.
		before := map[nat44.Key]bool{}
		for _, m := range b.NAT().List() {
			before[m.Key()] = true
		}
		var made []nat44.Mapping
		for _, q := range reqs {
			if q.ExternalPort == 0 {
				// The admin names the port; 0 would be "any" to Map.
				fail(w, http.StatusBadRequest, fmt.Errorf("%w: external port 0", nat44.ErrInvalid))
				undo(b.NAT(), made, before)
				return
			}
			m, err := b.NAT().Map(nat44.Request{
				Owner:        nat44.OwnerAdmin,
				Client:       q.Internal.Addr(),
				Proto:        q.Proto,
				ExternalPort: q.ExternalPort,
				Exact:        true,
				Internal:     q.Internal,
				Lifetime:     time.Duration(q.Lifetime),
				Description:  q.Description,
			})
			if err != nil {
				fail(w, statusOf(err), err)
				undo(b.NAT(), made, before)
				return
			}
			made = append(made, m)
		}
		log.Info("mappings added through the API", slog.Int("count", len(made)))
		reply(w, http.StatusCreated, made)
	})
	mux.HandleFunc("DELETE /api/v1/mappings/{proto}/{port}", func(w http.ResponseWriter, r *http.Request) {
		p, err := nat44.ParseProto(r.PathValue("proto"))
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		port, err := strconv.ParseUint(r.PathValue("port"), 10, 16)
		if err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("port %q: %w", r.PathValue("port"), err))
			return
		}
		if err := b.NAT().Unmap(admin, nat44.Key{Proto: p, ExternalPort: uint16(port)}); err != nil {
			fail(w, statusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/v1/pinholes", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, b.Firewall().Pinholes())
	})
	mux.HandleFunc("POST /api/v1/pinholes", func(w http.ResponseWriter, r *http.Request) {
		var q PinholeRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("body must be a pinhole {proto, internal, remote, lifetime, description}: %w", err))
			return
		}
		p, err := b.Firewall().OpenPinhole(nat44.PinholeRequest{
			Owner:       nat44.OwnerAdmin,
			Client:      q.Internal.Addr(),
			Proto:       q.Proto,
			Internal:    q.Internal,
			Remote:      q.Remote,
			Lifetime:    time.Duration(q.Lifetime),
			Description: q.Description,
		})
		if err != nil {
			fail(w, statusOf(err), err)
			return
		}
		log.Info("pinhole opened through the API", slog.String("pinhole", p.PinholeKey.String()))
		reply(w, http.StatusCreated, p)
	})
	mux.HandleFunc("DELETE /api/v1/pinholes/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 16)
		if err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("pinhole id %q: %w", r.PathValue("id"), err))
			return
		}
		for _, p := range b.Firewall().Pinholes() {
			if p.ID == uint16(id) {
				if err := b.Firewall().ClosePinhole(admin, p.PinholeKey); err != nil {
					fail(w, statusOf(err), err)
					return
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		fail(w, http.StatusNotFound, fmt.Errorf("%w: no pinhole %d", nat44.ErrNotFound, id))
	})
	dhcpOr404 := func(w http.ResponseWriter) DHCP {
		d := b.DHCP()
		if d == nil {
			fail(w, http.StatusNotFound, errors.New("the DHCP server is off"))
		}
		return d
	}
	mux.HandleFunc("GET /api/v1/leases", func(w http.ResponseWriter, r *http.Request) {
		if d := dhcpOr404(w); d != nil {
			reply(w, http.StatusOK, leases(b, d.Leases()))
		}
	})
	registerConfig(mux, b)
	registerData(mux, b)
	if _, ok := b.(Configurable); !ok {
		// Without a config file to persist them in, reservations live
		// in the running DHCP server only.
		mux.HandleFunc("GET /api/v1/reservations", func(w http.ResponseWriter, r *http.Request) {
			if d := dhcpOr404(w); d != nil {
				reply(w, http.StatusOK, d.Reservations())
			}
		})
		mux.HandleFunc("POST /api/v1/reservations", func(w http.ResponseWriter, r *http.Request) {
			d := dhcpOr404(w)
			if d == nil {
				return
			}
			var req dhcp.Reservation
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				fail(w, http.StatusBadRequest, fmt.Errorf("body must be {mac, addr, hostname}: %w", err))
				return
			}
			if err := d.AddReservation(req); err != nil {
				fail(w, http.StatusConflict, err)
				return
			}
			reply(w, http.StatusCreated, req)
		})
		mux.HandleFunc("DELETE /api/v1/reservations/{mac}", func(w http.ResponseWriter, r *http.Request) {
			d := dhcpOr404(w)
			if d == nil {
				return
			}
			mac, err := net.ParseMAC(r.PathValue("mac"))
			if err != nil {
				fail(w, http.StatusBadRequest, err)
				return
			}
			if err := d.RemoveReservation(mac); err != nil {
				fail(w, http.StatusNotFound, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
	mux.HandleFunc("GET /api/v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.NAT().Sessions()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		if s, err = sessionsOf(r, s); err != nil {
			failConfig(w, err)
			return
		}
		reply(w, http.StatusOK, s)
	})
	return mux
}

// undo takes back the mappings of a refused request that it made anew.
func undo(n NAT, made []nat44.Mapping, before map[nat44.Key]bool) {
	for _, m := range made {
		if !before[m.Key()] {
			n.Unmap(admin, m.Key())
		}
	}
}

// statuses maps the mapping service's errors to HTTP statuses.
var statuses = []struct {
	err  error
	code int
}{
	{nat44.ErrInvalid, http.StatusBadRequest},
	{nat44.ErrNotFound, http.StatusNotFound},
	{nat44.ErrNotAllowed, http.StatusForbidden}, // the rules refuse it
	{nat44.ErrNotOwner, http.StatusForbidden},   // a static forward, or someone else's
	{nat44.ErrConflict, http.StatusConflict},
	{nat44.ErrNoPort, http.StatusConflict},
	{nat44.ErrHostLimit, http.StatusTooManyRequests},
	{nat44.ErrTableFull, http.StatusInsufficientStorage},
	{nat44.ErrNoWAN, http.StatusServiceUnavailable},
	{errors.ErrUnsupported, http.StatusNotImplemented},
}

func statusOf(err error) int {
	for _, s := range statuses {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return http.StatusInternalServerError
}

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
}

func fail(w http.ResponseWriter, code int, err error) { reply(w, code, Error{err.Error()}) }

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
