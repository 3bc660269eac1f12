package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"

	"gateway/dhcp"
	"gateway/nat44"
)

// Config is the daemon's config file as the API changes it: each change
// is checked as the daemon checks its file, written to the file and
// applied to the running daemon, or refused with nothing changed.
type Config interface {
	Settings() Settings
	// SetSettings changes the fields of s that are set and returns the
	// settings now.
	SetSettings(s Settings) (Settings, error)
	Forwards() []Forward
	AddForward(f Forward) error
	RemoveForward(k nat44.Key) error
	Reservations() []dhcp.Reservation
	AddReservation(r dhcp.Reservation) error
	RemoveReservation(mac net.HardwareAddr) error
}

// Configurable is a Backend whose config the API changes; without it the
// settings, forwards and reservations are not served (404).
type Configurable interface {
	Config() Config
}

// Settings are what the panel's settings page changes. In a PUT, a field
// left out (nil) stays as it is; a GET fills every field.
type Settings struct {
	DHCP       *DHCPSettings `json:"dhcp,omitempty"` // nil in a GET when the DHCP server is off
	UPnP       *bool         `json:"upnp,omitempty"`
	NATPMP     *bool         `json:"natpmp,omitempty"`
	PCP        *bool         `json:"pcp,omitempty"`
	SecureMode *bool         `json:"secure_mode,omitempty"`
	Filtering  *string       `json:"filtering,omitempty"`
	HostLimit  *int          `json:"host_limit,omitempty"`
}

// DHCPSettings are the DHCP server's pool and lease time; the pool is host
// numbers Start to Start+Limit-1 of the LAN (OpenWrt's convention).
type DHCPSettings struct {
	Start     *int     `json:"start,omitempty"`
	Limit     *int     `json:"limit,omitempty"`
	LeaseTime *Seconds `json:"lease_time,omitempty"`
}

// Forward is a static port forward (a `redirect` section of the config).
type Forward struct {
	Name         string         `json:"name,omitempty"`
	Proto        string         `json:"proto"` // tcp, udp or tcpudp
	ExternalPort uint16         `json:"external_port"`
	Internal     netip.AddrPort `json:"internal"`
}

// FieldError is a change refused by validation; Field names what was
// wrong as the API spells it ("dhcp.limit", "host_limit", "internal").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ErrConfigBroken is a config file that does not parse as it is (a hand
// edit to fix first): the API changes nothing in it (409).
var ErrConfigBroken = errors.New("the config file has an error; fix it (gateway check-config) before changing it here")

// fieldErrorBody is the body of a 400 that names a field.
type fieldErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// failConfig answers a refused change: 400 with the field when
// validation refused it, else the mapping service's status for err.
func failConfig(w http.ResponseWriter, err error) {
	var fe *FieldError
	if errors.As(err, &fe) {
		reply(w, http.StatusBadRequest, fieldErrorBody{fe.Error(), fe.Field})
		return
	}
	if errors.Is(err, ErrConfigBroken) {
		fail(w, http.StatusConflict, err)
		return
	}
	fail(w, statusOf(err), err)
}

// decode reads a JSON body of at most 64 KiB that has no unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any, shape string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, http.StatusBadRequest, fieldErrorBody{Error: fmt.Sprintf("body must be %s: %v", shape, err)})
		return false
	}
	return true
}

// registerConfig adds the endpoints that change the config file: the
// settings, the static forwards and the DHCP reservations.
func registerConfig(mux *http.ServeMux, b Backend) {
	cb, ok := b.(Configurable)
	if !ok {
		return
	}
	c := cb.Config()
	mux.HandleFunc("GET /api/v1/settings", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, c.Settings())
	})
	mux.HandleFunc("PUT /api/v1/settings", func(w http.ResponseWriter, r *http.Request) {
		var s Settings
		if !decode(w, r, &s, "settings {dhcp: {start, limit, lease_time}, upnp, natpmp, pcp, secure_mode, filtering, host_limit}") {
			return
		}
		now, err := c.SetSettings(s)
		if err != nil {
			failConfig(w, err)
			return
		}
		reply(w, http.StatusOK, now)
	})
	mux.HandleFunc("GET /api/v1/forwards", func(w http.ResponseWriter, r *http.Request) {
		fs := c.Forwards()
		if fs == nil {
			fs = []Forward{}
		}
		reply(w, http.StatusOK, fs)
	})
	mux.HandleFunc("POST /api/v1/forwards", func(w http.ResponseWriter, r *http.Request) {
		var f Forward
		if !decode(w, r, &f, "a forward {name, proto, external_port, internal}") {
			return
		}
		if err := c.AddForward(f); err != nil {
			failConfig(w, err)
			return
		}
		reply(w, http.StatusCreated, f)
	})
	mux.HandleFunc("DELETE /api/v1/forwards/{proto}/{port}", func(w http.ResponseWriter, r *http.Request) {
		p, err := nat44.ParseProto(r.PathValue("proto"))
		if err != nil {
			failConfig(w, &FieldError{"proto", err})
			return
		}
		port, err := strconv.ParseUint(r.PathValue("port"), 10, 16)
		if err != nil {
			failConfig(w, &FieldError{"external_port", fmt.Errorf("port %q: %w", r.PathValue("port"), err)})
			return
		}
		if err := c.RemoveForward(nat44.Key{Proto: p, ExternalPort: uint16(port)}); err != nil {
			failConfig(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/v1/reservations", func(w http.ResponseWriter, r *http.Request) {
		rs := c.Reservations()
		if rs == nil {
			rs = []dhcp.Reservation{}
		}
		reply(w, http.StatusOK, rs)
	})
	mux.HandleFunc("POST /api/v1/reservations", func(w http.ResponseWriter, r *http.Request) {
		var res dhcp.Reservation
		if !decode(w, r, &res, "a reservation {mac, addr, hostname}") {
			return
		}
		if err := c.AddReservation(res); err != nil {
			failConfig(w, err)
			return
		}
		reply(w, http.StatusCreated, res)
	})
	mux.HandleFunc("DELETE /api/v1/reservations/{mac}", func(w http.ResponseWriter, r *http.Request) {
		mac, err := net.ParseMAC(r.PathValue("mac"))
		if err != nil {
			failConfig(w, &FieldError{"mac", err})
			return
		}
		if err := c.RemoveReservation(mac); err != nil {
			failConfig(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
