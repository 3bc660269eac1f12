package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/gateway/uci"
	"gateway/nat44"
	"gateway/web"
)

// baseConfig has what the editor must keep: comments, a section it does
// not manage, a hand-written forward.
const baseConfig = `# /etc/config/gateway, by hand
package gateway

config gateway 'main'
	option wan 'eth0'
	option lan 'br-lan'
	option state_dir '/tmp/gw-settings-test'

# the pool
config dhcp
	option start '100'
	option limit '50'
	option leasetime '12h'

config ipv6
	option pd_hint '60'

config redirect 'nas'
	option name 'NAS'
	option proto 'tcp udp'
	option src_dport '8443'
	option dest_ip '192.168.1.5'
	option dest_port '443'

config upnp
`

// editorBackend is the API's backend with a real config editor over a
// temp file; the "running daemon" is the config its apply was last given.
type editorBackend struct {
	conf *configEditor

	mu      sync.Mutex // guards run, applies, refuse
	run     *Config
	applies int
	refuse  error // apply refuses with it
}

func (b *editorBackend) Status() any            { return nil }
func (b *editorBackend) NAT() web.NAT           { return nil }
func (b *editorBackend) Firewall() web.Firewall { return nil }
func (b *editorBackend) DHCP() web.DHCP         { return nil }
func (b *editorBackend) Config() web.Config     { return b.conf }

func (b *editorBackend) running() *Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.run
}

func newEditorAPI(t *testing.T, text string) (*editorBackend, http.Handler, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	b := &editorBackend{run: cfg}
	b.conf = &configEditor{
		path:    path,
		running: b.running,
		lan: func(iface string) (netip.Prefix, bool) {
			return netip.MustParsePrefix("192.168.1.1/24"), iface == "br-lan"
		},
		apply: func(c *Config) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.refuse != nil {
				return b.refuse
			}
			b.run = c
			b.applies++
			return nil
		},
	}
	return b, web.NewAPI(b, nil), path
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// fileConfig reads the file back and parses it as the daemon would.
func fileConfig(t *testing.T, path string) (*Config, *uci.File, []byte) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(path, text)
	if err != nil {
		t.Fatalf("the written file does not parse: %v\n%s", err, text)
	}
	f, _ := uci.Parse(path, text)
	return cfg, f, text
}

func TestSettingsGet(t *testing.T) {
	_, h, _ := newEditorAPI(t, baseConfig)
	code, body := do(t, h, "GET", "/api/v1/settings", "")
	if code != 200 {
		t.Fatalf("GET settings: %d %s", code, body)
	}
	want := `{"dhcp":{"start":100,"limit":50,"lease_time":43200},"upnp":true,"natpmp":false,"pcp":false,"secure_mode":true,"filtering":"address-and-port-dependent","host_limit":128}`
	var got bytes.Buffer
	json.Compact(&got, []byte(body))
	if diff := cmp.Diff(want, got.String()); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestSettingsPut(t *testing.T) {
	b, h, path := newEditorAPI(t, baseConfig)
	code, body := do(t, h, "PUT", "/api/v1/settings", `{"dhcp":{"start":20,"limit":30,"lease_time":3600},"upnp":false,"natpmp":true,"secure_mode":false,"filtering":"endpoint-independent","host_limit":7}`)
	if code != 200 {
		t.Fatalf("PUT settings: %d %s", code, body)
	}
	cfg, f, text := fileConfig(t, path)
	if cfg.DHCP.Start != 20 || cfg.DHCP.Limit != 30 || cfg.DHCP.LeaseTime != time.Hour {
		t.Errorf("file dhcp = %+v", cfg.DHCP)
	}
	if cfg.UPnP != nil || cfg.PMP == nil || !cfg.PMP.NATPMP || cfg.PMP.PCP {
		t.Errorf("file upnp %v pmp %+v; want upnp off, natpmp on, pcp off", cfg.UPnP, cfg.PMP)
	}
	if !cfg.NAT.Policy.AllowThirdParty || cfg.NAT.Filtering != nat44.EndpointIndependent || cfg.NAT.Policy.HostLimit != 7 {
		t.Errorf("file nat = %+v", cfg.NAT)
	}
	if v, _ := f.SectionsOfType("dhcp")[0].Get("leasetime"); v != "1h" {
		t.Errorf("leasetime written as %q, want 1h", v)
	}
	// What the editor does not manage is kept: comments, other sections,
	// the named forward.
	for _, s := range []string{"# /etc/config/gateway, by hand", "# the pool", "config ipv6", "option pd_hint '60'", "config redirect 'nas'"} {
		if !strings.Contains(string(text), s) {
			t.Errorf("the file lost %q:\n%s", s, text)
		}
	}
	// The running daemon got the same config.
	if diff := cmp.Diff(b.conf.settingsOf(cfg), b.conf.Settings()); diff != "" {
		t.Errorf("running settings differ from the file's (-file +running):\n%s", diff)
	}
	// The answer is the settings now.
	var got web.Settings
	if err := json.Unmarshal([]byte(body), &got); err != nil || *got.HostLimit != 7 || *got.UPnP {
		t.Errorf("answer %s (%v)", body, err)
	}
	// A part changes only that part.
	if code, body := do(t, h, "PUT", "/api/v1/settings", `{"pcp":true}`); code != 200 {
		t.Fatalf("PUT pcp: %d %s", code, body)
	}
	cfg, _, _ = fileConfig(t, path)
	if !cfg.PMP.NATPMP || !cfg.PMP.PCP || cfg.NAT.Policy.HostLimit != 7 {
		t.Errorf("after pcp on: pmp %+v host_limit %d", cfg.PMP, cfg.NAT.Policy.HostLimit)
	}
	// UPnP on again, in the section that is there.
	if code, body := do(t, h, "PUT", "/api/v1/settings", `{"upnp":true}`); code != 200 {
		t.Fatalf("PUT upnp: %d %s", code, body)
	}
	if cfg, f, _ = fileConfig(t, path); cfg.UPnP == nil || len(f.SectionsOfType("upnp")) != 1 {
		t.Errorf("upnp not back on in one section: %v", cfg.UPnP)
	}
}

func TestSettingsRefused(t *testing.T) {
	tests := []struct {
		name, body, field string
	}{
		{"limit zero", `{"dhcp":{"limit":0}}`, "dhcp.limit"},
		{"start too big", `{"dhcp":{"start":70000}}`, "dhcp.start"},
		{"pool past the LAN", `{"dhcp":{"start":200,"limit":100}}`, "dhcp.start"},
		{"lease too short", `{"dhcp":{"lease_time":9}}`, "dhcp.lease_time"},
		{"filtering", `{"filtering":"full-cone"}`, "filtering"},
		{"host limit", `{"upnp":true,"host_limit":0}`, "host_limit"},
		{"unknown field", `{"upnp":true,"bogus":1}`, ""},
		{"wrong type", `{"upnp":"yes"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, h, path := newEditorAPI(t, baseConfig)
			before := b.running()
			code, body := do(t, h, "PUT", "/api/v1/settings", tt.body)
			if code != 400 {
				t.Fatalf("PUT %s: %d %s; want 400", tt.body, code, body)
			}
			var e struct{ Error, Field string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" || e.Field != tt.field {
				t.Errorf("error body %s; want field %q", body, tt.field)
			}
			if text, _ := os.ReadFile(path); string(text) != baseConfig {
				t.Errorf("a refused change wrote the file:\n%s", text)
			}
			if b.running() != before || b.applies != 0 {
				t.Error("a refused change reached the running daemon")
			}
		})
	}
}

func TestSettingsDHCPOff(t *testing.T) {
	_, h, _ := newEditorAPI(t, strings.Replace(baseConfig, "config dhcp\n", "config dhcp\n\toption enabled '0'\n", 1))
	code, body := do(t, h, "PUT", "/api/v1/settings", `{"dhcp":{"limit":20}}`)
	if code != 400 || !strings.Contains(body, `"field": "dhcp"`) {
		t.Errorf("dhcp change with the server off: %d %s", code, body)
	}
}

// TestApplyRefused: the running daemon refuses what the file check let
// through: the file goes back as it was.
func TestApplyRefused(t *testing.T) {
	b, h, path := newEditorAPI(t, baseConfig)
	b.refuse = errors.New("nat44: no")
	code, body := do(t, h, "PUT", "/api/v1/settings", `{"host_limit":5}`)
	if code != 400 || !strings.Contains(body, "host_limit") {
		t.Errorf("refused apply: %d %s", code, body)
	}
	if text, _ := os.ReadFile(path); string(text) != baseConfig {
		t.Errorf("the file stayed changed after the daemon refused:\n%s", text)
	}
}

func TestForwards(t *testing.T) {
	b, h, path := newEditorAPI(t, baseConfig)
	code, body := do(t, h, "POST", "/api/v1/forwards", `{"name":"game","proto":"tcpudp","external_port":3074,"internal":"192.168.1.20:3074"}`)
	if code != 201 {
		t.Fatalf("POST forward: %d %s", code, body)
	}
	cfg, f, _ := fileConfig(t, path)
	keys := func(c *Config) []string {
		var out []string
		for _, m := range c.Forwards {
			out = append(out, fmt.Sprintf("%v>%v", m.Key(), m.Internal))
		}
		return out
	}
	want := []string{"tcp/8443>192.168.1.5:443", "udp/8443>192.168.1.5:443", "tcp/3074>192.168.1.20:3074", "udp/3074>192.168.1.20:3074"}
	if diff := cmp.Diff(want, keys(cfg)); diff != "" {
		t.Errorf("file forwards (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, keys(b.running())); diff != "" {
		t.Errorf("running forwards (-want +got):\n%s", diff)
	}
	// Written as fw4 writes a redirect, next to the other one.
	r := f.SectionsOfType("redirect")[1]
	for opt, v := range map[string]string{"target": "DNAT", "src": "wan", "dest": "lan", "proto": "tcp udp", "src_dport": "3074", "dest_ip": "192.168.1.20", "dest_port": "3074", "name": "game"} {
		if got, _ := r.Get(opt); got != v {
			t.Errorf("redirect option %s = %q, want %q", opt, got, v)
		}
	}
	if code, body := do(t, h, "GET", "/api/v1/forwards", ""); code != 200 || strings.Count(body, `"external_port"`) != 4 {
		t.Errorf("GET forwards: %d %s", code, body)
	}

	refused := []struct{ body, field string }{
		{`{"proto":"tcp","external_port":8443,"internal":"192.168.1.9:80"}`, "external_port"}, // taken
		{`{"proto":"icmp","external_port":1,"internal":"192.168.1.9:80"}`, "proto"},
		{`{"proto":"tcp","external_port":0,"internal":"192.168.1.9:80"}`, "external_port"},
		{`{"proto":"tcp","external_port":81,"internal":"[2001:db8::1]:80"}`, "internal"},
		{`{"proto":"tcp","external_port":81,"internal":"192.168.1.9:80","name":"a\nb"}`, "external_port"},
	}
	_, _, before := fileConfig(t, path)
	for _, tt := range refused {
		code, body := do(t, h, "POST", "/api/v1/forwards", tt.body)
		if code != 400 || !strings.Contains(body, fmt.Sprintf(`"field": %q`, tt.field)) {
			t.Errorf("POST %s: %d %s; want 400 on %s", tt.body, code, body, tt.field)
		}
	}
	if _, _, after := fileConfig(t, path); !bytes.Equal(before, after) {
		t.Errorf("refused forwards changed the file")
	}

	// Removing one protocol of a tcp+udp forward keeps the other.
	if code, body := do(t, h, "DELETE", "/api/v1/forwards/tcp/8443", ""); code != 204 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	cfg, f, _ = fileConfig(t, path)
	if v, _ := f.Section("nas").Get("proto"); v != "udp" {
		t.Errorf("nas proto = %q after removing tcp", v)
	}
	if code, _ := do(t, h, "DELETE", "/api/v1/forwards/udp/8443", ""); code != 204 {
		t.Fatalf("DELETE udp: %d", code)
	}
	if code, _ := do(t, h, "DELETE", "/api/v1/forwards/udp/8443", ""); code != 404 {
		t.Errorf("DELETE of a forward that is gone: %d, want 404", code)
	}
	if code, _ := do(t, h, "DELETE", "/api/v1/forwards/sctp/1", ""); code != 400 {
		t.Errorf("DELETE with a bad proto: %d, want 400", code)
	}
	cfg, f, _ = fileConfig(t, path)
	if f.Section("nas") != nil || len(cfg.Forwards) != 2 || len(b.running().Forwards) != 2 {
		t.Errorf("after removing the NAS forward: file %v running %v", cfg.Forwards, b.running().Forwards)
	}
}

func TestReservations(t *testing.T) {
	b, h, path := newEditorAPI(t, baseConfig)
	code, body := do(t, h, "POST", "/api/v1/reservations", `{"mac":"02:00:00:00:00:01","addr":"192.168.1.50","hostname":"laptop"}`)
	if code != 201 {
		t.Fatalf("POST reservation: %d %s", code, body)
	}
	cfg, f, _ := fileConfig(t, path)
	if len(cfg.DHCP.Reservations) != 1 || cfg.DHCP.Reservations[0].Hostname != "laptop" || len(f.SectionsOfType("host")) != 1 {
		t.Fatalf("file reservations %v", cfg.DHCP.Reservations)
	}
	if len(b.running().DHCP.Reservations) != 1 {
		t.Error("the running DHCP config did not get the reservation")
	}
	if code, body := do(t, h, "GET", "/api/v1/reservations", ""); code != 200 || !strings.Contains(body, `"02:00:00:00:00:01"`) {
		t.Errorf("GET reservations: %d %s", code, body)
	}
	for _, tt := range []struct{ body, field string }{
		{`{"mac":"02:00:00:00:00:01","addr":"192.168.1.51"}`, "mac"},  // MAC reserved
		{`{"mac":"02:00:00:00:00:02","addr":"192.168.1.50"}`, "addr"}, // address reserved
		{`{"mac":"02:00:00:00:00:02","addr":"10.9.9.9"}`, "addr"},     // not on the LAN
		{`{"mac":"02:00:00:00:00:02"}`, "addr"},
	} {
		code, body := do(t, h, "POST", "/api/v1/reservations", tt.body)
		if code != 400 || !strings.Contains(body, fmt.Sprintf(`"field": %q`, tt.field)) {
			t.Errorf("POST %s: %d %s; want 400 on %s", tt.body, code, body, tt.field)
		}
	}
	if code, _ := do(t, h, "POST", "/api/v1/reservations", `{"mac":"zz"}`); code != 400 {
		t.Errorf("bad MAC: %d", code)
	}
	if code, body := do(t, h, "DELETE", "/api/v1/reservations/02-00-00-00-00-01", ""); code != 204 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if code, _ := do(t, h, "DELETE", "/api/v1/reservations/02:00:00:00:00:01", ""); code != 404 {
		t.Errorf("DELETE again: %d, want 404", code)
	}
	if cfg, _, _ := fileConfig(t, path); len(cfg.DHCP.Reservations) != 0 || len(b.running().DHCP.Reservations) != 0 {
		t.Error("the reservation is still there")
	}
}

// TestHandEditKept: a change made after the file was edited by hand (and
// not reloaded) keeps the hand edit.
func TestHandEditKept(t *testing.T) {
	_, h, path := newEditorAPI(t, baseConfig)
	hand := baseConfig + "\n# added by hand\nconfig host\n\toption mac '02:00:00:00:00:09'\n\toption ip '192.168.1.9'\n"
	if err := os.WriteFile(path, []byte(hand), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, h, "PUT", "/api/v1/settings", `{"host_limit":9}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	cfg, _, text := fileConfig(t, path)
	if len(cfg.DHCP.Reservations) != 1 || !strings.Contains(string(text), "# added by hand") || cfg.NAT.Policy.HostLimit != 9 {
		t.Errorf("hand edit lost or change missing:\n%s", text)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v; want the 0600 it had", st.Mode().Perm())
	}
	// A file broken by hand is not edited further.
	if err := os.WriteFile(path, []byte(hand+"bogus\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, h, "PUT", "/api/v1/settings", `{"host_limit":10}`); code != 409 || !strings.Contains(body, "fix it") {
		t.Errorf("change over a broken file: %d %s", code, body)
	}
}

// TestConcurrentChanges: changes made at once all land, one at a time.
func TestConcurrentChanges(t *testing.T) {
	b, h, path := newEditorAPI(t, baseConfig)
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, body := do(t, h, "POST", "/api/v1/forwards", fmt.Sprintf(`{"proto":"tcp","external_port":%d,"internal":"192.168.1.20:80"}`, 10000+i))
			if code != 201 {
				t.Errorf("POST %d: %d %s", i, code, body)
			}
		})
		wg.Go(func() {
			if code, body := do(t, h, "PUT", "/api/v1/settings", fmt.Sprintf(`{"host_limit":%d}`, i+1)); code != 200 {
				t.Errorf("PUT %d: %d %s", i, code, body)
			}
		})
	}
	wg.Wait()
	cfg, _, _ := fileConfig(t, path)
	if len(cfg.Forwards) != 2+n || len(b.running().Forwards) != 2+n {
		t.Errorf("%d forwards in the file, %d running; want %d", len(cfg.Forwards), len(b.running().Forwards), 2+n)
	}
	if cfg.NAT.Policy.HostLimit != b.running().NAT.Policy.HostLimit {
		t.Errorf("file host_limit %d, running %d", cfg.NAT.Policy.HostLimit, b.running().NAT.Policy.HostLimit)
	}
}
