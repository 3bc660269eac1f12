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

// NAT is what the API needs of the NAT service.
type NAT interface {
	List() []nat44.Mapping
	Add(ms ...nat44.Mapping) error
	Remove(keys ...nat44.Key) error
	Sessions() ([]nat44.Session, error)
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
	DHCP() DHCP // nil when the DHCP server is off
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
func NewAPI(b Backend, now func() time.Time, log *slog.Logger) http.Handler {
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
		ms := make([]nat44.Mapping, len(reqs))
		for i, q := range reqs {
			ms[i] = nat44.Mapping{Proto: q.Proto, ExternalPort: q.ExternalPort, Internal: q.Internal, Owner: nat44.OwnerAdmin, Description: q.Description}
			if q.Lifetime > 0 {
				ms[i].Expires = now().Add(time.Duration(q.Lifetime))
			}
		}
		if err := b.NAT().Add(ms...); err != nil {
			fail(w, statusOf(err), err)
			return
		}
		log.Info("mappings added through the API", slog.Int("count", len(ms)))
		reply(w, http.StatusCreated, ms)
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
		if err := b.NAT().Remove(nat44.Key{Proto: p, ExternalPort: uint16(port)}); err != nil {
			fail(w, statusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
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
			reply(w, http.StatusOK, d.Leases())
		}
	})
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
	mux.HandleFunc("GET /api/v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.NAT().Sessions()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		reply(w, http.StatusOK, s)
	})
	return mux
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, nat44.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, nat44.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, nat44.ErrInvalid):
		return http.StatusBadRequest
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
