// Package teredo is the Teredo client (RFC 4380, RFC 5991, RFC 6081):
// for now its qualification with a Teredo server and the refresh that
// keeps its NAT mapping; the tunnel itself (TUN device, bubbles, relay)
// comes later. Wire formats are in the wire package.
//
// Not wired into the daemon yet. When it is: the UDP socket must be the
// one the tunnel then uses (the NAT mapping is per socket), the nat44
// input policy must let the server's answers in (they are replies, so
// conntrack does), and Refresh runs every RefreshInterval; an error from
// it means qualifying again.
package teredo
