//go:build ignore

// fakeapi serves the panel with an in-memory API that follows
// docs/api.md, for working on the pages without a lab:
//
//	go run web/ui/e2e/fakeapi.go -listen 127.0.0.1:8099
//
// It is a development aid, not a test: the browser test of record runs
// against the daemon in the lab (gateway/panel_browser_test.go).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"gateway/web/ui"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8099", "address")
	flag.Parse()
	var mu sync.Mutex
	password, session := "", ""
	now := time.Now()
	started := now.Add(-26*time.Hour - 13*time.Minute)
	settings := map[string]any{
		"dhcp": map[string]any{"start": 100, "limit": 150, "lease_time": 43200},
		"upnp": true, "natpmp": true, "pcp": false, "secure_mode": true,
		"filtering": "endpoint-independent", "host_limit": 64,
	}
	leases := []map[string]any{
		{"mac": "02:00:00:00:01:01", "addr": "192.168.1.101", "hostname": "laptop", "expires": now.Add(11 * time.Hour), "online": true},
		{"mac": "02:00:00:00:01:02", "addr": "192.168.1.102", "hostname": "playstation", "expires": now.Add(7 * time.Hour), "online": true},
		{"mac": "02:00:00:00:01:03", "addr": "192.168.1.103", "hostname": "<b>phone</b>", "expires": now.Add(2 * time.Hour), "online": false},
	}
	reservations := []map[string]any{}
	forwards := []map[string]any{{"name": "web", "proto": "tcp", "external_port": 8080, "internal": "192.168.1.101:80"}}
	mappings := []map[string]any{
		{"proto": "udp", "external_port": 3074, "internal": "192.168.1.102:3074", "owner": "upnp", "description": "Call of Duty", "expires": now.Add(50 * time.Minute)},
		{"proto": "tcp", "external_port": 51413, "internal": "192.168.1.101:51413", "owner": "natpmp", "description": "Transmission", "expires": now.Add(55 * time.Minute)},
	}
	events := []map[string]any{
		{"id": 1, "time": now.Add(-time.Hour), "kind": "service", "host": "", "message": "gateway started"},
		{"id": 2, "time": now.Add(-50 * time.Minute), "kind": "lease", "host": "laptop", "message": "192.168.1.101 leased to 02:00:00:00:01:01"},
		{"id": 3, "time": now.Add(-10 * time.Minute), "kind": "mapping", "host": "playstation", "message": "UPnP opened UDP 3074 for Call of Duty"},
		{"id": 4, "time": now.Add(-2 * time.Minute), "kind": "refused", "host": "phone", "message": "UPnP refused TCP 22: secure mode, the internal host is not the client"},
	}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, code int, msg, field string) {
		e := map[string]string{"error": msg}
		if field != "" {
			e["field"] = field
		}
		reply(w, code, e)
	}
	signedIn := func(r *http.Request) bool {
		c, err := r.Cookie("s")
		return err == nil && session != "" && c.Value == session
	}
	login := func(w http.ResponseWriter) {
		session = fmt.Sprint(time.Now().UnixNano())
		http.SetCookie(w, &http.Cookie{Name: "s", Value: session, HttpOnly: true, SameSite: http.SameSiteStrictMode, Path: "/"})
		reply(w, 200, map[string]string{"csrf": "t" + session})
	}
	pw := func(r *http.Request) string {
		var b struct{ Password string }
		json.NewDecoder(r.Body).Decode(&b)
		return b.Password
	}
	mux.HandleFunc("GET /api/v1/auth", func(w http.ResponseWriter, r *http.Request) {
		m := map[string]any{"password_set": password != "", "signed_in": signedIn(r)}
		if signedIn(r) {
			m["csrf"] = "t" + session
		}
		reply(w, 200, m)
	})
	mux.HandleFunc("POST /api/v1/auth/setup", func(w http.ResponseWriter, r *http.Request) {
		if password != "" {
			fail(w, 409, "a password is set", "")
			return
		}
		password = pw(r)
		login(w)
	})
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		if pw(r) != password {
			fail(w, 401, "wrong password", "")
			return
		}
		login(w)
	})
	api := http.NewServeMux()
	mux.Handle("/api/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !signedIn(r) {
			fail(w, 401, "not signed in", "")
			return
		}
		if r.Method != "GET" && r.Header.Get("X-CSRF-Token") != "t"+session {
			fail(w, 403, "no CSRF token", "")
			return
		}
		api.ServeHTTP(w, r)
	}))
	api.HandleFunc("POST /api/v1/auth/logout", func(w http.ResponseWriter, r *http.Request) { session = ""; w.WriteHeader(204) })
	api.HandleFunc("POST /api/v1/auth/password", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	api.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{
			"version": "dev", "wan_addr": "198.51.100.7", "wan_kind": "public", "double_nat": false, "started": started,
			"ipv6":     map[string]any{"uplink": "pd", "prefix": "2001:db8:1:1::/64", "delegated": "2001:db8:1::/56"},
			"services": []map[string]any{{"name": "nat44", "state": "running"}, {"name": "dhcp", "state": "running"}, {"name": "upnp", "state": "running"}, {"name": "pmp", "state": "running"}, {"name": "ra", "state": "running"}, {"name": "dhcp6", "state": "running"}},
		})
	})
	api.HandleFunc("GET /api/v1/throughput", func(w http.ResponseWriter, r *http.Request) {
		var ss []map[string]any
		t := time.Now().Truncate(2 * time.Second)
		for i := 299; i >= 0; i-- {
			x := float64(t.Unix()/2 - int64(i))
			ss = append(ss, map[string]any{"time": t.Add(-time.Duration(i) * 2 * time.Second), "rx_bps": int(2e7 + 1.5e7*math.Sin(x/17) + 5e6*math.Sin(x/3)), "tx_bps": int(3e6 + 2e6*math.Sin(x/11))})
		}
		reply(w, 200, map[string]any{"interval": 2, "samples": ss})
	})
	api.HandleFunc("GET /api/v1/leases", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, leases) })
	api.HandleFunc("GET /api/v1/reservations", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, reservations) })
	api.HandleFunc("POST /api/v1/reservations", func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		reservations = append(reservations, m)
		for _, l := range leases {
			if l["mac"] == m["mac"] {
				l["reserved"] = true
			}
		}
		reply(w, 201, m)
	})
	api.HandleFunc("DELETE /api/v1/reservations/{mac}", func(w http.ResponseWriter, r *http.Request) {
		for i, m := range reservations {
			if m["mac"] == r.PathValue("mac") {
				reservations = append(reservations[:i], reservations[i+1:]...)
				break
			}
		}
		w.WriteHeader(204)
	})
	api.HandleFunc("GET /api/v1/mappings", func(w http.ResponseWriter, r *http.Request) {
		all := append([]map[string]any{}, mappings...)
		for _, f := range forwards {
			all = append(all, map[string]any{"proto": f["proto"], "external_port": f["external_port"], "internal": f["internal"], "owner": "static", "description": f["name"]})
		}
		reply(w, 200, all)
	})
	api.HandleFunc("DELETE /api/v1/mappings/{proto}/{port}", func(w http.ResponseWriter, r *http.Request) {
		for i, m := range mappings {
			if m["proto"] == r.PathValue("proto") && fmt.Sprint(m["external_port"]) == r.PathValue("port") {
				mappings = append(mappings[:i], mappings[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		fail(w, 404, "no such mapping", "")
	})
	api.HandleFunc("GET /api/v1/forwards", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, forwards) })
	api.HandleFunc("POST /api/v1/forwards", func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		if s, _ := m["internal"].(string); !strings.HasPrefix(s, "192.168.1.") {
			fail(w, 400, "redirect: dest_ip "+s+" is not in the LAN 192.168.1.0/24", "internal")
			return
		}
		forwards = append(forwards, m)
		reply(w, 201, m)
	})
	api.HandleFunc("DELETE /api/v1/forwards/{proto}/{port}", func(w http.ResponseWriter, r *http.Request) {
		for i, m := range forwards {
			if fmt.Sprint(m["external_port"]) == r.PathValue("port") {
				forwards = append(forwards[:i], forwards[i+1:]...)
				break
			}
		}
		w.WriteHeader(204)
	})
	api.HandleFunc("GET /api/v1/pinholes", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, []map[string]any{{"id": 1, "proto": "udp", "internal": "[2001:db8:1:1::65]:3074", "owner": "pcp", "description": "Call of Duty", "expires": now.Add(time.Hour)}})
	})
	api.HandleFunc("GET /api/v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, []map[string]any{
			{"proto": "tcp", "inbound": false, "internal": "192.168.1.101:50432", "external": "198.51.100.7:50432", "remote": "203.0.113.5:443", "state": "ESTABLISHED", "timeout": 431999e9},
			{"proto": "udp", "inbound": false, "internal": "192.168.1.101:5353", "external": "198.51.100.7:5353", "remote": "203.0.113.53:53", "state": "", "timeout": 28e9},
			{"proto": "udp", "inbound": true, "internal": "192.168.1.102:3074", "external": "198.51.100.7:3074", "remote": "203.0.113.77:3074", "state": "", "timeout": 170e9},
		})
	})
	api.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		after := 0
		fmt.Sscan(r.URL.Query().Get("after"), &after)
		out := []map[string]any{}
		for _, e := range events {
			if e["id"].(int) > after {
				out = append(out, e)
			}
		}
		reply(w, 200, out)
	})
	api.HandleFunc("GET /api/v1/settings", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, settings) })
	api.HandleFunc("PUT /api/v1/settings", func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		if d, ok := m["dhcp"].(map[string]any); ok {
			if l, _ := d["limit"].(float64); l > 250 {
				fail(w, 400, "dhcp: start+limit leaves the LAN 192.168.1.0/24", "dhcp.limit")
				return
			}
		}
		for k, v := range m {
			settings[k] = v
		}
		reply(w, 200, settings)
	})
	mux.Handle("/", ui.Handler())
	log.Printf("fake panel on http://%s/", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
