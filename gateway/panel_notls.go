//go:build nohttps

package gateway

import (
	"net"
	"net/netip"

	"gateway/web"
)

// httpsBuilt says whether this build serves the panel over HTTPS: not
// with the nohttps tag.
const httpsBuilt = false

func panelTLS(cfg *Config, addrs []netip.Addr) (func(net.Listener) net.Listener, error) {
	return nil, web.ErrNoHTTPS
}
