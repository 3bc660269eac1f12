package web

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gateway/dhcp"
	"gateway/nat44"
)

// fakeNAT keeps mappings in a real nat44.Table, so conflicts and
// validation are nat44's own.
type fakeNAT struct{ t *nat44.Table }

func (f *fakeNAT) List() []nat44.Mapping { return f.t.List() }
func (f *fakeNAT) Add(ms ...nat44.Mapping) error {
	for _, m := range ms {
		if err := f.t.Put(m, time.Unix(0, 0)); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeNAT) Remove(ks ...nat44.Key) error {
	for _, k := range ks {
		if _, err := f.t.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeNAT) Sessions() ([]nat44.Session, error) { return nil, nil }

type fakeDHCP struct{ res []dhcp.Reservation }

func (f *fakeDHCP) Leases() []dhcp.Lease             { return nil }
func (f *fakeDHCP) Reservations() []dhcp.Reservation { return f.res }
func (f *fakeDHCP) AddReservation(r dhcp.Reservation) error {
	f.res = append(f.res, r)
	return nil
}
func (f *fakeDHCP) RemoveReservation(mac net.HardwareAddr) error { return nil }

type fakeBackend struct {
	nat  *fakeNAT
	dhcp DHCP
}

func (b fakeBackend) Status() any { return map[string]string{"ok": "yes"} }
func (b fakeBackend) NAT() NAT    { return b.nat }
func (b fakeBackend) DHCP() DHCP  { return b.dhcp }

func TestAPI(t *testing.T) {
	now := func() time.Time { return time.Unix(1000, 0) }
	withDHCP := fakeBackend{nat: &fakeNAT{nat44.NewTable()}, dhcp: &fakeDHCP{}}
	h := NewAPI(withDHCP, now, nil)
	noDHCP := NewAPI(fakeBackend{nat: &fakeNAT{nat44.NewTable()}}, now, nil)
	cases := []struct {
		name         string
		h            http.Handler
		method, path string
		body         string
		code         int
		contains     string
	}{
		{"status", h, "GET", "/api/v1/status", "", 200, `"ok": "yes"`},
		{"add", h, "POST", "/api/v1/mappings", `[{"proto":"tcp","external_port":8080,"internal":"192.168.1.10:80","lifetime":60}]`, 201, `"expires": "1970-01-01T00:17:40Z"`},
		{"list", h, "GET", "/api/v1/mappings", "", 200, `"internal": "192.168.1.10:80"`},
		{"conflict", h, "POST", "/api/v1/mappings", `[{"proto":"tcp","external_port":8080,"internal":"192.168.1.11:80"}]`, 409, "already mapped"},
		{"invalid", h, "POST", "/api/v1/mappings", `[{"proto":"tcp","external_port":0,"internal":"192.168.1.11:80"}]`, 400, "external port 0"},
		{"bad proto", h, "POST", "/api/v1/mappings", `[{"proto":"sctp","external_port":1,"internal":"192.168.1.11:80"}]`, 400, "unknown protocol"},
		{"unknown field", h, "POST", "/api/v1/mappings", `[{"proto":"tcp","port":1}]`, 400, "unknown field"},
		{"not an array", h, "POST", "/api/v1/mappings", `{}`, 400, "JSON array"},
		{"bad lifetime", h, "POST", "/api/v1/mappings", `[{"proto":"tcp","external_port":1,"internal":"192.168.1.11:80","lifetime":-1}]`, 400, "lifetime"},
		{"delete", h, "DELETE", "/api/v1/mappings/tcp/8080", "", 204, ""},
		{"delete again", h, "DELETE", "/api/v1/mappings/tcp/8080", "", 404, "no such mapping"},
		{"delete bad port", h, "DELETE", "/api/v1/mappings/tcp/99999", "", 400, "port"},
		{"reservation", h, "POST", "/api/v1/reservations", `{"mac":"02:00:5e:00:00:01","addr":"192.168.1.50"}`, 201, `"mac": "02:00:5e:00:00:01"`},
		{"reservations", h, "GET", "/api/v1/reservations", "", 200, `"addr": "192.168.1.50"`},
		{"reservation bad mac", h, "POST", "/api/v1/reservations", `{"mac":"zz","addr":"192.168.1.50"}`, 400, "not an Ethernet address"},
		{"dhcp off", noDHCP, "GET", "/api/v1/leases", "", 404, "DHCP server is off"},
		{"wrong method", h, "PUT", "/api/v1/mappings", "", 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.contains) {
				t.Fatalf("%s %s = %d %s; want %d containing %q", tc.method, tc.path, rec.Code, rec.Body, tc.code, tc.contains)
			}
			if tc.code >= 400 && tc.code != 405 {
				var e Error
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Fatalf("error body %q is not {\"error\": ...}", rec.Body)
				}
			}
		})
	}
	if got := withDHCP.nat.t.Len(); got != 0 {
		t.Fatalf("a refused request changed the table: %d mappings left", got)
	}
}
