package gateway

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gateway/web"
)

func TestParseConfigWeb(t *testing.T) {
	base := "config gateway\n\toption wan w\n\toption lan l\n"
	hash, err := web.HashPassword("a password")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		text string
		want *WebConfig
	}{
		{"absent: on", base, &WebConfig{Port: 80, HTTPSPort: 443}},
		{"empty", base + "config web 'web'\n", &WebConfig{Line: 4, Port: 80, HTTPSPort: 443}},
		{"disabled", base + "config web\n\toption enabled 0\n", nil},
		{"all", base + "config web\n\toption port 8080\n\toption https 1\n\toption https_port 8443\n\toption password 'demo password'\n\tlist hostname 'router.lan'\n\tlist hostname 'gw.home.arpa gw'\n",
			&WebConfig{Line: 4, Port: 8080, HTTPS: true, HTTPSPort: 8443, Password: "demo password", Hostnames: []string{"router.lan", "gw.home.arpa", "gw"}}},
		{"hash", base + "config web\n\toption password_hash '" + hash + "'\n", &WebConfig{Line: 4, Port: 80, HTTPSPort: 443, PasswordHash: hash}},
	}
	for _, tt := range tests {
		c, err := ParseConfig("f", []byte(tt.text))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if d := cmp.Diff(tt.want, c.Web); d != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, d)
		}
	}
}

func TestParseConfigWebErrors(t *testing.T) {
	base := "config gateway\n\toption wan w\n\toption lan l\n"
	for _, tt := range []struct {
		name, text, want string
	}{
		{"bad port", "config web\n\toption port 0\n", "f:5: port \"0\" is not a port number"},
		{"bad https", "config web\n\toption https maybe\n", "f:5: https \"maybe\" is not a boolean"},
		{"bad https_port", "config web\n\toption https_port 70000\n", "f:5: https_port \"70000\""},
		{"short password", "config web\n\toption password 'short'\n", "f:5: password: want 8 to 1024 characters"},
		{"bad hash", "config web\n\toption password_hash 'plain'\n", "f:5: password_hash: not an argon2id hash"},
		{"huge hash", "config web\n\toption password_hash '$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'\n", "f:5: password_hash: not an argon2id hash ($argon2id$v=19$m=..,t=..,p=..$salt$hash): parameters m=1048576"},
		{"both", "config web\n\toption password 'long enough'\n\toption password_hash '$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'\n", "f:4: web: give password or password_hash, not both"},
		{"bad hostname", "config web\n\tlist hostname 'evil_name'\n", "f:5: hostname \"evil_name\" is not a DNS name"},
		{"same ports", "config web\n\toption https 1\n\toption port 443\n", "f:4: web: port and https_port are both 443"},
		{"UPnP's port", "config upnp\n\toption port 5000\nconfig web\n\toption port 5000\n", "f:6: web: port 5000 is UPnP's"},
		{"unknown option", "config web\n\toption listen 0.0.0.0\n", "f:5: unknown option \"listen\""},
		{"two sections", "config web\nconfig web\n", "f:5: a second 'web' section"},
	} {
		_, err := ParseConfig("f", []byte(base+tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.name, err, tt.want)
		}
	}
}
