// Package netconf changes interface addresses over rtnetlink, for the
// services that own an address: the router's address in the LAN's IPv6
// prefix, which follows the uplink.
package netconf

import "errors"

// ErrUnsupported is returned where there is no rtnetlink.
var ErrUnsupported = errors.New("netconf: not supported on this system")
