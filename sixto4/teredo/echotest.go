package teredo

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"net/netip"
	"time"

	"gateway/sixto4/teredo/wire"
)

// The echo test's ICMPv6 messages (RFC 4443 section 4): type, code,
// checksum, then what we match the reply on: identifier, sequence number
// and eight bytes of data, all random.
const (
	typeEchoRequest = 128
	typeEchoReply   = 129
	echoLen         = 12
)

// outboundNative decides on a packet from the TUN device to the native
// IPv6 host dst (RFC 4380 section 5.2.4): straight to the relay that
// carries dst once the echo test found it, else queued while the test
// runs.
func (p *peers) outboundNative(now time.Time, pkt []byte, dst netip.Addr, out []datagram) (to netip.AddrPort, r Reason, _ []datagram) {
	q := p.m[dst]
	if q == nil {
		if !dst.IsGlobalUnicast() {
			return to, NoRelay, out
		}
		if len(p.m) >= MaxPeers && !p.evict(now) {
			return to, TooManyPeers, out
		}
		q = &peer{Peer: Peer{Addr: dst, Native: true}}
		p.m[dst] = q
	}
	if q.Trusted && now.Sub(q.LastRecv) < PeerTimeout {
		return q.Mapped, 0, out
	}
	r, out = p.enqueue(now, q, pkt, out)
	return to, r, out
}

// echoTest appends an ICMPv6 echo request from our address to the native
// peer q, sent to our server (RFC 4380 section 5.2.9): the server sends
// it on natively, and the answer comes back through the relay nearest
// to q, whose address and port then become q's mapped address. A new
// test (q.bubbles zero) draws a new nonce; its repeats reuse it.
func (p *peers) echoTest(now time.Time, q *peer, out []datagram) []datagram {
	if q.bubbles == 0 {
		r := p.rand
		if r == nil {
			r = rand.Reader
		}
		io.ReadFull(r, q.nonce[:]) // a short read leaves zeros: still a test
	}
	q.bubbles++
	q.lastBubble = now
	msg := make([]byte, 4+echoLen)
	msg[0] = typeEchoRequest
	copy(msg[4:], q.nonce[:])
	ip, err := wire.ICMPv6(p.addr, q.Addr, 64, msg)
	if err != nil {
		return out
	}
	b, err := ip.Append(nil)
	if err != nil {
		return out
	}
	return append(out, datagram{To: netip.AddrPortFrom(p.server, p.port), Payload: b})
}

// isEchoReply reports whether ip answers q's running echo test.
func (q *peer) isEchoReply(ip []byte) bool {
	return q.bubbles > 0 && ip[6] == wire.ProtoICMPv6 && binary.BigEndian.Uint16(ip[4:6]) >= 4+echoLen &&
		ip[40] == typeEchoReply && ip[41] == 0 && [echoLen]byte(ip[44:44+echoLen]) == q.nonce
}

// inboundNative checks a packet from the UDP source from whose IPv6
// source is not a Teredo address: a native host's, through a relay (RFC
// 4380 section 5.2.3). It is taken only from the relay the echo test
// found for that host; the answer to the test names the relay; anything
// else from an unknown relay waits while a test runs.
func (p *peers) inboundNative(now time.Time, from netip.AddrPort, ip []byte, bubble bool, out []datagram) (verdict, Reason, []datagram) {
	src, dst := ipv6Src(ip), ipv6Dst(ip)
	if dst != p.addr {
		return drop, DstNotOurs, out
	}
	q := p.m[src]
	if q != nil && !q.Native {
		return drop, UnknownRelay, out // a Teredo peer's entry cannot hold a native source
	}
	if q != nil && q.isEchoReply(ip) {
		q.Mapped = from
		return consumed, 0, p.trust(now, q, out)
	}
	if q != nil && q.Mapped.IsValid() {
		if q.Mapped != from {
			return drop, UnknownRelay, out
		}
		out = p.trust(now, q, out)
		if bubble {
			return consumed, 0, out
		}
		return deliver, 0, out
	}
	// No relay known for src yet: the packet waits for the direct IPv6
	// connectivity test (section 5.2.3, a relay's packet whose source
	// is no known peer); a bubble has nothing to wait.
	if bubble || !src.IsGlobalUnicast() {
		return drop, UnknownRelay, out
	}
	if !p.queueRate.Allow(now) {
		return drop, RateLimited, out
	}
	if q == nil {
		if len(p.m) >= MaxPeers && !p.evict(now) {
			return drop, TooManyPeers, out
		}
		q = &peer{Peer: Peer{Addr: src, Native: true}}
		p.m[src] = q
	}
	n := 40 + int(binary.BigEndian.Uint16(ip[4:6]))
	if q.waiting() >= QueuePeerPackets || q.queuedBytes+n > QueuePeerBytes || p.queuedBytes+n > QueueTotalBytes {
		return drop, QueueFull, out
	}
	b := make([]byte, tunOffset+n)
	copy(b[tunOffset:], ip[:n])
	q.inQueue = append(q.inQueue, b)
	q.queuedBytes += n
	p.queuedBytes += n
	q.Queued = q.waiting()
	if q.bubbles == 0 || (q.bubbles < BubbleAttempts && now.Sub(q.lastBubble) >= BubbleInterval) {
		out = p.echoTest(now, q, out)
	}
	return consumed, 0, out
}
