package ra

import (
	"net"
	"net/netip"
)

// allNodes is where multicast RAs go (RFC 4861 6.2.4).
var allNodes = netip.MustParseAddr("ff02::1")

// conn is the ICMPv6 socket of the LAN interface: it receives Router
// Solicitations (to ff02::2 or to our link-local address) and sends RAs
// from our link-local address with hop limit 255.
type conn interface {
	// ReadRS reads one ICMPv6 message into b; hopLimit is the IPv6 hop
	// limit it arrived with, src its source (without zone).
	ReadRS(b []byte) (n, hopLimit int, src netip.Addr, err error)
	// WriteRA sends the ICMPv6 message b (an RA, checksum left to the
	// kernel) to dst on the interface.
	WriteRA(b []byte, dst netip.Addr) error
	// HardwareAddr is the interface's link-layer address, for the
	// source link-layer address option; nil if it has none.
	HardwareAddr() net.HardwareAddr
	Close() error
}
