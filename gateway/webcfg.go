package gateway

import (
	"strings"

	"gateway/gateway/uci"
	"gateway/web"
)

// WebConfig is the "web" section: the admin panel on the LAN addresses.
// A router's panel is on: with no section it runs with the defaults.
type WebConfig struct {
	Line int // of the section; 0 when absent
	// Port is the HTTP port; default 80. With HTTPS it only redirects.
	Port uint16
	// HTTPS serves the panel over TLS on HTTPSPort (default 443) with a
	// self-signed certificate made on first start and kept in the state
	// directory; default off.
	HTTPS     bool
	HTTPSPort uint16
	// PasswordHash (an argon2id PHC string) or Password (plain text,
	// hashed at load) set the panel's password; a new value resets it.
	// Neither: the first visitor sets it.
	PasswordHash string
	Password     string
	// Hostnames are DNS names the panel answers to besides its
	// addresses ("list hostname"); any other name in the Host header is
	// refused (DNS rebinding).
	Hostnames []string
}

// defaultWeb is what a file with no "web" section gets.
func defaultWeb() *WebConfig { return &WebConfig{Port: 80, HTTPSPort: 443} }

func (p *parser) webSection(s *uci.Section, c *Config) {
	if p.webSeen {
		p.errf(s.Line, "a second 'web' section")
	}
	p.webSeen = true
	w := defaultWeb()
	w.Line = s.Line
	enabled := true
	p.options(s, map[string]func(*uci.Option, string){
		"enabled":    func(o *uci.Option, v string) { enabled = p.bool(o, v) },
		"port":       func(o *uci.Option, v string) { w.Port = p.port(o, v) },
		"https":      func(o *uci.Option, v string) { w.HTTPS = p.bool(o, v) },
		"https_port": func(o *uci.Option, v string) { w.HTTPSPort = p.port(o, v) },
		"password": func(o *uci.Option, v string) {
			if len(v) < web.MinPasswordLen || len(v) > web.MaxPasswordLen {
				p.errf(o.Line, "password: want %d to %d characters", web.MinPasswordLen, web.MaxPasswordLen)
			}
			w.Password = v
		},
		"password_hash": func(o *uci.Option, v string) {
			if err := web.CheckHash(v); err != nil {
				p.errf(o.Line, "password_hash: %v", strings.TrimPrefix(err.Error(), "web: "))
			}
			w.PasswordHash = v
		},
		"hostname": func(o *uci.Option, _ string) {
			for _, v := range o.Values {
				for _, n := range strings.Fields(v) {
					if !hostname(n) {
						p.errf(o.Line, "hostname %q is not a DNS name", n)
						continue
					}
					w.Hostnames = append(w.Hostnames, n)
				}
			}
		},
	})
	if w.Password != "" && w.PasswordHash != "" {
		p.errf(s.Line, "web: give password or password_hash, not both")
	}
	if w.HTTPS && !httpsBuilt {
		p.errf(s.Line, "web: https: this build has no HTTPS (built with tag nohttps)")
	}
	if w.HTTPS && w.Port == w.HTTPSPort {
		p.errf(s.Line, "web: port and https_port are both %d", w.Port)
	}
	c.Web = nil
	if enabled {
		c.Web = w
	}
}

// checkWeb finds a web port that another service of the config takes.
func (p *parser) checkWeb(c *Config) {
	if c.Web == nil || c.UPnP == nil {
		return
	}
	if c.Web.Port == c.UPnP.Port || c.Web.HTTPS && c.Web.HTTPSPort == c.UPnP.Port {
		p.errf(c.Web.Line, "web: port %d is UPnP's", c.UPnP.Port)
	}
}

// hostname reports whether n is a DNS name (letters, digits, hyphens,
// dots; 253 bytes at most).
func hostname(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(n, "."), ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
