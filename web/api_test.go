package web

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gateway/dhcp"
	"gateway/nat44"
)

// fakeNAT keeps mappings in a real nat44.Table, so conflicts and
// validation are nat44's own; it keeps the owner rules the API relies on
// (the admin may not touch static forwards) as the mapping service does.
type fakeNAT struct {
	t        *nat44.Table
	now      time.Time
	pinholes []nat44.Pinhole
	noWAN    bool
}

func (f *fakeNAT) List() []nat44.Mapping { return f.t.List() }

func (f *fakeNAT) Map(r nat44.Request) (nat44.Mapping, error) {
	if f.noWAN {
		return nat44.Mapping{}, nat44.ErrNoWAN
	}
	m := nat44.Mapping{Proto: r.Proto, ExternalPort: r.ExternalPort, Internal: r.Internal, Owner: r.Owner, Description: r.Description, Lifetime: r.Lifetime}
	if r.Lifetime > 0 {
		m.Expires = f.now.Add(r.Lifetime)
	}
	if old, ok := f.t.Get(m.Key()); ok && old.Owner == nat44.OwnerStatic {
		return nat44.Mapping{}, fmt.Errorf("%w: %v is a static forward", nat44.ErrNotOwner, m.Key())
	}
	if err := f.t.Put(m, f.now); err != nil {
		return nat44.Mapping{}, err
	}
	return m, nil
}

func (f *fakeNAT) Unmap(rel nat44.Release, ks ...nat44.Key) error {
	for _, k := range ks {
		m, ok := f.t.Get(k)
		if !ok {
			return fmt.Errorf("%w: %v", nat44.ErrNotFound, k)
		}
		if m.Owner == nat44.OwnerStatic {
			return fmt.Errorf("%w: %v is a static forward", nat44.ErrNotOwner, k)
		}
	}
	for _, k := range ks {
		f.t.Delete(k)
	}
	return nil
}

func (f *fakeNAT) Sessions() ([]nat44.Session, error) { return nil, nil }

func (f *fakeNAT) Pinholes() []nat44.Pinhole { return f.pinholes }

func (f *fakeNAT) OpenPinhole(r nat44.PinholeRequest) (nat44.Pinhole, error) {
	p := nat44.Pinhole{PinholeKey: nat44.PinholeKey{Proto: r.Proto, Internal: r.Internal, Remote: r.Remote}, Owner: r.Owner, ID: uint16(len(f.pinholes) + 1), Description: r.Description}
	if err := p.Validate(); err != nil {
		return nat44.Pinhole{}, err
	}
	if r.Lifetime > 0 {
		p.Expires = f.now.Add(r.Lifetime)
	}
	f.pinholes = append(f.pinholes, p)
	return p, nil
}

func (f *fakeNAT) ClosePinhole(rel nat44.Release, k nat44.PinholeKey) error {
	for i, p := range f.pinholes {
		if p.PinholeKey == k {
			f.pinholes = append(f.pinholes[:i], f.pinholes[i+1:]...)
			return nil
		}
	}
	return nat44.ErrNotFound
}

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

func (b fakeBackend) Status() any        { return map[string]string{"ok": "yes"} }
func (b fakeBackend) NAT() NAT           { return b.nat }
func (b fakeBackend) Firewall() Firewall { return b.nat }
func (b fakeBackend) DHCP() DHCP         { return b.dhcp }

func TestAPI(t *testing.T) {
	now := time.Unix(1000, 0)
	withDHCP := fakeBackend{nat: &fakeNAT{t: nat44.NewTable(), now: now}, dhcp: &fakeDHCP{}}
	static := nat44.Mapping{Proto: nat44.TCP, ExternalPort: 2222, Internal: netip.MustParseAddrPort("192.168.1.5:22"), Owner: nat44.OwnerStatic}
	if err := withDHCP.nat.t.Put(static, now); err != nil {
		t.Fatal(err)
	}
	h := NewAPI(withDHCP, nil)
	noDHCP := NewAPI(fakeBackend{nat: &fakeNAT{t: nat44.NewTable(), now: now, noWAN: true}}, nil)
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
		{"batch is all or nothing", h, "POST", "/api/v1/mappings", `[{"proto":"udp","external_port":9000,"internal":"192.168.1.11:9000"},{"proto":"tcp","external_port":8080,"internal":"192.168.1.12:80"}]`, 409, "already mapped"},
		{"static is the config's", h, "POST", "/api/v1/mappings", `[{"proto":"tcp","external_port":2222,"internal":"192.168.1.11:22"}]`, 403, "static forward"},
		{"delete static", h, "DELETE", "/api/v1/mappings/tcp/2222", "", 403, "static forward"},
		{"no WAN", noDHCP, "POST", "/api/v1/mappings", `[{"proto":"tcp","external_port":1,"internal":"192.168.1.11:80"}]`, 503, "WAN"},
		{"delete", h, "DELETE", "/api/v1/mappings/tcp/8080", "", 204, ""},
		{"delete again", h, "DELETE", "/api/v1/mappings/tcp/8080", "", 404, "no such mapping"},
		{"delete bad port", h, "DELETE", "/api/v1/mappings/tcp/99999", "", 400, "port"},
		{"reservation", h, "POST", "/api/v1/reservations", `{"mac":"02:00:5e:00:00:01","addr":"192.168.1.50"}`, 201, `"mac": "02:00:5e:00:00:01"`},
		{"reservations", h, "GET", "/api/v1/reservations", "", 200, `"addr": "192.168.1.50"`},
		{"reservation bad mac", h, "POST", "/api/v1/reservations", `{"mac":"zz","addr":"192.168.1.50"}`, 400, "not an Ethernet address"},
		{"dhcp off", noDHCP, "GET", "/api/v1/leases", "", 404, "DHCP server is off"},
		{"wrong method", h, "PUT", "/api/v1/mappings", "", 405, ""},
		{"open pinhole", h, "POST", "/api/v1/pinholes", `{"proto":"udp","internal":"[2001:db8:1::10]:3478","lifetime":600}`, 201, `"id": 1`},
		{"pinholes", h, "GET", "/api/v1/pinholes", "", 200, `"internal": "[2001:db8:1::10]:3478"`},
		{"bad pinhole", h, "POST", "/api/v1/pinholes", `{"proto":"udp","internal":"192.168.1.10:3478"}`, 400, "not a global IPv6"},
		{"close pinhole", h, "DELETE", "/api/v1/pinholes/1", "", 204, ""},
		{"close pinhole again", h, "DELETE", "/api/v1/pinholes/1", "", 404, "no pinhole 1"},
		{"close bad id", h, "DELETE", "/api/v1/pinholes/x", "", 400, "pinhole id"},
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
	if got := withDHCP.nat.t.List(); len(got) != 1 || got[0].Key() != static.Key() {
		t.Fatalf("a refused request changed the table: %v; want only the static forward", got)
	}
}
