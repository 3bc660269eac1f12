// Package sixto4 is 6to4 (RFC 3056, RFC 3068) in user space: a TUN device
// whose IPv6 packets go out in IPv4 protocol 41 over a raw socket, and
// protocol-41 packets that pass the RFC 3964 checks come back in. The
// kernel here has no sit driver. A Tunnel runs as a site's router
// (2002:WWXX:YYZZ::/48 from the WAN address) or as a relay between 6to4
// sites and native IPv6 (ServeRelay, `gateway relay6to4`).
//
// The decisions (what to send where, what to drop and why) are pure
// functions over packet bytes in policy.go, fuzzed and table-tested; the
// Tunnel only moves bytes, in batches both ways.
//
// Wiring it into the daemon:
//   - Only when the WAN address is Usable (public: not private, shared,
//     loopback, bogon; documentation ranges only with AllowDocumentation,
//     the daemon's AllowDocumentationWAN). Local must be on an interface:
//     the raw socket binds to it. A new WAN address means a new Tunnel.
//   - Raw sockets see packets after the netfilter input hook: the nat44
//     input policy must accept IPv4 protocol 41 to the WAN address from
//     the WAN (and only that), or nothing arrives.
//   - The TUN device belongs in the outside-interfaces set (RFC 6092
//     filter). IPv6 forwarding must be on for the LAN to use the tunnel.
//   - LAN /64s come from Prefix() (2002:WWXX:YYZZ:N::/64, N > 0: the
//     router's own 2002:WWXX:YYZZ::1 is on the device). SetDefault(true)
//     when 6to4 is the IPv6 uplink: a default route only for sources in
//     our /48, so a native default route, if any, stays for the rest.
//   - Stats counts drops by Reason (JSON keys are the reason names).
package sixto4
