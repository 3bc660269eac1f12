//go:build nohttps

package web

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"time"
)

// The panel's certificate and key in the state directory.
const (
	CertFile = "panel-cert.pem"
	KeyFile  = "panel-key.pem"
)

// ErrNoHTTPS says the binary was built without HTTPS (tag nohttps).
var ErrNoHTTPS = errors.New("web: this build has no HTTPS (built with tag nohttps)")

// LoadOrMakeCert fails: the binary was built without HTTPS.
func LoadOrMakeCert(dir string, addrs []netip.Addr, names []string, now time.Time) (tls.Certificate, error) {
	return tls.Certificate{}, ErrNoHTTPS
}
