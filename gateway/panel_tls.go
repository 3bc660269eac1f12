//go:build !nohttps

package gateway

import (
	"crypto/tls"
	"net"
	"net/netip"
	"time"

	"gateway/web"
)

// httpsBuilt says whether this build serves the panel over HTTPS (the
// nohttps tag leaves crypto/tls's server and x509's certificate maker
// out: about 600 KiB on mipsle).
const httpsBuilt = true

// panelTLS returns what turns a listener into the panel's TLS listener,
// with the certificate kept in the state directory (made on first start).
func panelTLS(cfg *Config, addrs []netip.Addr) (func(net.Listener) net.Listener, error) {
	cert, err := web.LoadOrMakeCert(cfg.StateDir, addrs, cfg.Web.Hostnames, time.Now())
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return func(ln net.Listener) net.Listener { return tls.NewListener(ln, tc) }, nil
}
