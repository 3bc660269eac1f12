package sixto4

import (
	"encoding/binary"
	"net/netip"
)

// Mode says which side of 6to4 a Tunnel is.
type Mode int

const (
	// Router is a 6to4 site's router (RFC 3056 section 5): it tunnels its
	// 2002:WWXX:YYZZ::/48 to other 6to4 sites directly and to native IPv6
	// through a relay.
	Router Mode = iota
	// Relay is a 6to4 relay router (RFC 3056 section 5.2): it forwards
	// between 6to4 sites and native IPv6.
	Relay
)

func (m Mode) String() string {
	switch m {
	case Router:
		return "router"
	case Relay:
		return "relay"
	}
	return "mode?"
}

// Reason names why a packet was dropped. The decapsulation checks are
// those of RFC 3964 section 5.2 (and RFC 3056 section 9).
type Reason uint8

const (
	_ Reason = iota
	// Received over IPv4 (decapsulation).
	Malformed      // short, not IPv4 protocol 41, not IPv6 inside, lengths inconsistent
	OuterDst       // outer destination is not our IPv4 address
	OuterSrc       // outer source is not a public unicast IPv4 address
	InnerAddr      // inner source or destination unspecified, loopback, link-local, IPv4-mapped or -compatible, or a multicast source or destination
	SrcEmbedded    // inner 6to4 source embeds a private, shared, loopback, link-local, multicast, broadcast, 0/8 or reserved IPv4
	SrcNotOuter    // inner 6to4 source does not embed the outer IPv4 source
	SrcOwnPrefix   // inner source in our own 2002:WWXX:YYZZ::/48, from outside
	NativeNotRelay // router: a native (non-6to4) inner source not from the configured relay
	DstEmbedded    // inner 6to4 destination embeds a non-public IPv4
	DstNotOurs     // router: inner destination outside our /48
	RelaySrcNative // relay: inner source is not 6to4
	RelayDst6to4   // relay: inner destination is 6to4 (sites reach each other directly)
	// Read from the TUN device (encapsulation).
	TunMalformed   // not a well-formed IPv6 packet
	LinkScope      // multicast or link-local destination (the kernel's ND and MLD on the device)
	OutSrc         // router: source outside our /48; relay: a 6to4 source other than ours
	OutDst         // 6to4 destination that embeds a non-public IPv4, or in our own /48
	NoRelay        // router: native destination and no relay configured (unreachable sent back)
	RelayOutNative // relay: native destination (it belongs on the native side)
	TooBig         // larger than the tunnel MTU (Packet Too Big sent back)
	// Failures.
	ICMPLimited    // an ICMPv6 error not sent: rate limit (RFC 4443 section 2.4 (f))
	SendFailed     // the raw socket refused the packet
	TunWriteFailed // the TUN device refused the packet
	numReasons
)

var reasonNames = [numReasons]string{"", "malformed", "outer-dst", "outer-src", "inner-addr", "src-embedded", "src-not-outer", "src-own-prefix", "native-not-relay", "dst-embedded", "dst-not-ours", "relay-src-native", "relay-dst-6to4", "tun-malformed", "link-scope", "out-src", "out-dst", "no-relay", "relay-out-native", "too-big", "icmp-limited", "send-failed", "tun-write-failed"}

// MarshalText makes a Reason a readable key of Stats.Drops in JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r Reason) String() string {
	if r > 0 && r < numReasons {
		return reasonNames[r]
	}
	return "reason?"
}

const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	protoIPv6     = 41 // IPPROTO_IPV6: IPv6 in IPv4 (RFC 2473, RFC 4213)
	protoICMPv6   = 58
	minIPv6MTU    = 1280
)

// policy holds what the checks need to know; it decides, it does no I/O.
type policy struct {
	mode     Mode
	local    netip.Addr // our IPv4 address
	relay    netip.Addr // router: the relay's IPv4 address; invalid if none
	site     [6]byte    // 2002:WWXX:YYZZ, our /48
	mtu      int
	allowDoc bool // RFC 5737 ranges count as public (the lab)
}

func newPolicy(mode Mode, local, relay netip.Addr, mtu int, allowDoc bool) policy {
	p := policy{mode: mode, local: local, relay: relay, mtu: mtu, allowDoc: allowDoc}
	b := local.As4()
	p.site = [6]byte{0x20, 0x02, b[0], b[1], b[2], b[3]}
	return p
}

func (p *policy) ours(a []byte) bool { return string(a[:6]) == string(p.site[:]) }

func (p *policy) usable(v4 netip.Addr) bool { return Usable(v4, p.allowDoc) }

// Decapsulate checks a protocol-41 packet received over IPv4 (pkt starts
// with the outer IPv4 header, as a raw socket delivers it) and returns
// the offset of the inner IPv6 packet, or why it must be dropped.
func (p *policy) decapsulate(pkt []byte) (off int, r Reason) {
	if len(pkt) < ipv4HeaderLen || pkt[0]>>4 != 4 {
		return 0, Malformed
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || len(pkt) < ihl || int(binary.BigEndian.Uint16(pkt[2:4])) != len(pkt) || pkt[9] != protoIPv6 {
		return 0, Malformed
	}
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
		return 0, Malformed // a fragment: the kernel reassembles before a raw socket sees it
	}
	src := netip.AddrFrom4([4]byte(pkt[12:16]))
	dst := netip.AddrFrom4([4]byte(pkt[16:20]))
	if dst != p.local {
		return 0, OuterDst
	}
	if !p.usable(src) {
		return 0, OuterSrc
	}
	in := pkt[ihl:]
	if r := checkIPv6(in); r != 0 {
		return 0, Malformed
	}
	isrc, idst := in[8:24], in[24:40]
	if badInner(isrc) || badInner(idst) {
		return 0, InnerAddr
	}
	if e, ok := embedded4(isrc); ok {
		if !p.usable(e) {
			return 0, SrcEmbedded
		}
		if p.ours(isrc) && src != p.local {
			return 0, SrcOwnPrefix
		}
		if e != src {
			return 0, SrcNotOuter
		}
	} else if p.mode == Relay {
		return 0, RelaySrcNative
	} else if !p.relay.IsValid() || src != p.relay {
		return 0, NativeNotRelay
	}
	if e, ok := embedded4(idst); ok {
		if !p.usable(e) {
			return 0, DstEmbedded
		}
		if p.mode == Relay {
			return 0, RelayDst6to4
		}
	}
	if p.mode == Router && !p.ours(idst) {
		return 0, DstNotOurs
	}
	return ihl, 0
}

// checkIPv6 checks the fixed header of an IPv6 packet: version 6, and a
// payload length that is what follows the header (no jumbograms: a 6to4
// packet is at most 65515 bytes).
func checkIPv6(b []byte) Reason {
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 || ipv6HeaderLen+int(binary.BigEndian.Uint16(b[4:6])) != len(b) {
		return Malformed
	}
	return 0
}

// badInner reports an address that has no business inside a tunnel
// (RFC 3964 section 5.2 and RFC 4213 section 3.6): unspecified, loopback,
// IPv4-mapped or -compatible, link-local, multicast.
func badInner(b []byte) bool {
	a := netip.AddrFrom16([16]byte(b))
	if a.IsUnspecified() || a.IsLoopback() || a.Is4In6() || a.IsLinkLocalUnicast() || a.IsMulticast() {
		return true
	}
	// IPv4-compatible ::a.b.c.d (RFC 4291 section 2.5.5.1, deprecated).
	return binary.BigEndian.Uint64(b[:8]) == 0 && binary.BigEndian.Uint32(b[8:12]) == 0
}

// action is what to do with a packet read from the TUN device.
type action uint8

const (
	drop action = iota
	send
	replyTooBig  // ICMPv6 Packet Too Big to the source
	replyNoRoute // ICMPv6 Destination Unreachable, no route
)

// Encapsulate decides what becomes of an IPv6 packet read from the TUN
// device: sent in protocol 41 to the IPv4 address outer, answered with
// an ICMPv6 error, or dropped; r says why when it is not sent.
func (p *policy) encapsulate(pkt []byte) (outer netip.Addr, a action, r Reason) {
	if checkIPv6(pkt) != 0 {
		return outer, drop, TunMalformed
	}
	src, dst := pkt[8:24], pkt[24:40]
	if dst[0] == 0xff || dst[0] == 0xfe && dst[1]&0xc0 == 0x80 {
		return outer, drop, LinkScope
	}
	if badInner(src) || badInner(dst) {
		return outer, drop, OutSrc
	}
	_, src6to4 := embedded4(src)
	switch {
	case p.mode == Router && !p.ours(src):
		return outer, drop, OutSrc
	case p.mode == Relay && src6to4 && !p.ours(src):
		return outer, drop, OutSrc
	}
	if e, ok := embedded4(dst); ok {
		if !p.usable(e) || p.ours(dst) {
			return outer, drop, OutDst
		}
		outer = e
	} else if p.mode == Relay {
		return outer, drop, RelayOutNative
	} else if !p.relay.IsValid() {
		return outer, replyNoRoute, NoRelay
	} else {
		outer = p.relay
	}
	if len(pkt) > p.mtu {
		return netip.Addr{}, replyTooBig, TooBig
	}
	return outer, send, 0
}
