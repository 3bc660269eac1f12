// Package teredo is the Teredo client (RFC 4380, RFC 5991, RFC 6081):
// qualification with a Teredo server and the refresh that keeps its NAT
// mapping (Qualifier), and Client, the tunnel: a TUN device with the
// Teredo address, bubbles and direct connectivity with Teredo peers
// (peers.go, a pure state machine), the RFC's checks on what arrives;
// and Relay (section 5.4), which carries native IPv6 hosts' packets to
// Teredo peers and back over the same state machine in relay mode.
// The client reaches native IPv6 hosts through the relay its echo test
// finds (section 5.2.9, echotest.go), fails over between its servers
// by their health (servers.go), and authenticates its qualification
// when given a secret (section 5.1.1). Not yet: RFC 6081's extensions
// (trailers are kept but not used). Wire formats are in the wire
// package.
//
// Not wired into the daemon yet. When it is: the UDP socket must be the
// one the tunnel then uses (the NAT mapping is per socket), the nat44
// input policy must let the server's answers in (they are replies, so
// conntrack does), and Refresh runs every RefreshInterval; an error from
// it means qualifying again.
package teredo
