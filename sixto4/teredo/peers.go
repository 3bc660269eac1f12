package teredo

import (
	"encoding/binary"
	"io"
	"net/netip"
	"time"

	"gateway/internal/ratelimit"
	"gateway/sixto4/teredo/wire"
)

// RFC 4380 section 5.2.6 and Miredo's practice: bubbles to a peer go at
// most every BubbleInterval, BubbleAttempts times, and a peer stays
// trusted for PeerTimeout after we last heard from it.
const (
	BubbleInterval = 2 * time.Second
	BubbleAttempts = 4
	PeerTimeout    = 30 * time.Second
)

// Bounds on what waits for a peer's bubble (issue 12: a hard size limit
// on what is queued).
const (
	QueuePeerPackets = 16
	QueuePeerBytes   = 16 << 10
	QueueTotalBytes  = 256 << 10
	MaxPeers         = 1024
	// QueueRate packets a second (QueueBurst at once) may start waiting,
	// whatever the peer: each may cost a bubble or an echo test to an
	// address a LAN host or a remote relay chose, so a flood of new
	// destinations or of packets from unknown relays is cut here.
	QueueRate  = 256
	QueueBurst = 128
)

// Reason is why a packet was dropped.
type Reason uint8

const (
	_               Reason = iota
	NoRelay                // to an address no peer or relay can have (not global unicast)
	NotOurs                // from the TUN with a source that is not our address
	NotQualified           // no Teredo address yet
	Malformed              // not a Teredo packet or IPv6 packet
	SrcMismatch            // a peer's IPv6 source does not name its UDP source
	DstNotOurs             // to another address than ours
	UnknownRelay           // a non-Teredo source from a relay we did not pick
	QueueFull              // the peer's or the total queue is full
	PeerUnreachable        // the peer never answered its bubbles
	TooManyPeers           // the peer table is full
	SendFailed             // the socket refused it
	TunWriteFailed         // the TUN device refused it
	SrcNotTeredo           // relay: from the socket with a non-Teredo source
	DstTeredo              // relay: from the socket to a Teredo destination
	DstNotTeredo           // relay: from the TUN to a non-Teredo destination
	RateLimited            // more than QueueRate packets a second would wait
	numReasons
)

var reasonNames = [numReasons]string{"", "no-relay", "not-ours", "not-qualified", "malformed", "src-mismatch",
	"dst-not-ours", "unknown-relay", "queue-full", "peer-unreachable", "too-many-peers", "send-failed", "tun-write-failed",
	"src-not-teredo", "dst-teredo", "dst-not-teredo", "rate-limited"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Peer is what the client knows of one Teredo peer.
type Peer struct {
	Addr     netip.Addr     // its Teredo address
	Mapped   netip.AddrPort // decoded from Addr
	Trusted  bool           // we heard from Mapped: packets go there directly
	LastRecv time.Time      // zero: never
	Queued   int            // packets waiting for its bubble (or echo test)
	// Native: Addr is a native IPv6 host, reached through the Teredo
	// relay at Mapped, found by the echo test (RFC 4380 section 5.2.9);
	// Mapped is invalid until the test is answered.
	Native bool
}

type peer struct {
	Peer
	server      netip.Addr // its Teredo server, for indirect bubbles
	bubbleSrc   netip.Addr // the source of our bubbles to it
	cone        bool
	bubbles     int
	lastBubble  time.Time
	queue       [][]byte
	queuedBytes int // of queue and inQueue
	// A native peer's echo test: its identifier, sequence number and
	// data (bubbles and lastBubble count its attempts), and the packets
	// from an unknown relay that wait for it, each after tunOffset bytes
	// of headroom for the TUN device.
	nonce   [echoLen]byte
	inQueue [][]byte
}

// waiting is how many packets wait for the peer's answer.
func (q *peer) waiting() int { return len(q.queue) + len(q.inQueue) }

// datagram is one UDP payload to send to To, or, with To invalid, an
// IPv6 packet after tunOffset bytes of headroom to write to the TUN
// device.
type datagram struct {
	To      netip.AddrPort
	Payload []byte
}

// peers is the direct-connectivity state machine of RFC 4380 sections
// 5.2.3, 5.2.4 and 5.2.6, pure: it takes now and returns what to send
// or deliver; the Client does the I/O and holds the lock. With relay set
// it is a relay's (section 5.4): no address of its own, packets from the
// TUN carry native sources (the bubbles' source too), and packets from
// peers go to native destinations.
type peers struct {
	relay       bool
	addr        netip.Addr // ours; invalid while unqualified
	server      netip.Addr // our server's primary address
	port        uint16     // servers' port (3544)
	m           map[netip.Addr]*peer
	queuedBytes int
	queueRate   ratelimit.Bucket // what may start waiting
	rand        io.Reader        // echo test nonces; nil: crypto/rand
}

func newPeers(port uint16) *peers {
	return &peers{m: map[netip.Addr]*peer{}, port: port, queueRate: ratelimit.New(QueueRate, QueueBurst)}
}

// reset forgets every peer: the address changed.
func (p *peers) reset(addr, server netip.Addr) (dropped int) {
	for _, q := range p.m {
		dropped += q.waiting()
	}
	p.addr, p.server = addr, server
	clear(p.m)
	p.queuedBytes = 0
	return dropped
}

func ipv6Src(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b[8:24])) }
func ipv6Dst(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b[24:40])) }

// validIPv6 reports whether b holds exactly one IPv6 packet (up to
// trailers past its payload length).
func validIPv6(b []byte) bool {
	return len(b) >= 40 && b[0]>>4 == 6 && len(b) >= 40+int(binary.BigEndian.Uint16(b[4:6]))
}

// outbound decides on an IPv6 packet read from the TUN device. It
// returns where to send pkt directly (valid to) or a drop reason, and
// appends bubbles to send to out. A queued packet is copied.
func (p *peers) outbound(now time.Time, pkt []byte, out []datagram) (to netip.AddrPort, r Reason, _ []datagram) {
	if !validIPv6(pkt) {
		return to, Malformed, out
	}
	dst := ipv6Dst(pkt)
	if p.relay {
		if !wire.Prefix.Contains(dst) {
			return to, DstNotTeredo, out
		}
	} else {
		if !p.addr.IsValid() {
			return to, NotQualified, out
		}
		if ipv6Src(pkt) != p.addr {
			return to, NotOurs, out
		}
		if !wire.Prefix.Contains(dst) {
			return p.outboundNative(now, pkt, dst, out)
		}
	}
	q := p.m[dst]
	if q == nil {
		a, _ := wire.ParseAddress(dst)
		if !a.Mapped.Addr().IsGlobalUnicast() || a.Mapped.Port() == 0 {
			return to, NoRelay, out
		}
		if len(p.m) >= MaxPeers && !p.evict(now) {
			return to, TooManyPeers, out
		}
		q = &peer{Peer: Peer{Addr: dst, Mapped: a.Mapped}, server: a.Server, cone: a.Cone()}
		p.m[dst] = q
	}
	if p.relay {
		// The latest native source names the bubbles: the peer answers
		// to it, through us.
		q.bubbleSrc = ipv6Src(pkt)
	}
	if q.Trusted && now.Sub(q.LastRecv) < PeerTimeout {
		return q.Mapped, 0, out
	}
	r, out = p.enqueue(now, q, pkt, out)
	return to, r, out
}

// enqueue queues a copy of pkt for the untrusted peer q, within the
// bounds, and sends its first bubble (or echo test) or a due one.
func (p *peers) enqueue(now time.Time, q *peer, pkt []byte, out []datagram) (Reason, []datagram) {
	q.Trusted = false
	if q.waiting() >= QueuePeerPackets || q.queuedBytes+len(pkt) > QueuePeerBytes || p.queuedBytes+len(pkt) > QueueTotalBytes {
		return QueueFull, out
	}
	if !p.queueRate.Allow(now) {
		return RateLimited, out
	}
	q.queue = append(q.queue, append([]byte(nil), pkt...))
	q.queuedBytes += len(pkt)
	p.queuedBytes += len(pkt)
	q.Queued = q.waiting()
	if q.bubbles == 0 || (q.bubbles < BubbleAttempts && now.Sub(q.lastBubble) >= BubbleInterval) {
		out = p.bubble(now, q, out)
	}
	return 0, out
}

// bubble appends a direct bubble to q's mapped address and, unless q is
// cone, an indirect one through its server (RFC 4380 section 5.2.6).
func (p *peers) bubble(now time.Time, q *peer, out []datagram) []datagram {
	if q.Native {
		return p.echoTest(now, q, out)
	}
	q.bubbles++
	q.lastBubble = now
	src := p.addr
	if p.relay {
		src = q.bubbleSrc
	}
	b, _ := wire.Bubble(src, q.Addr).Append(nil)
	out = append(out, datagram{To: q.Mapped, Payload: b})
	if !q.cone {
		out = append(out, datagram{To: netip.AddrPortFrom(q.server, p.port), Payload: b})
	}
	return out
}

// evict forgets an untrusted peer with nothing queued, or one not heard
// from for PeerTimeout, to make room.
func (p *peers) evict(now time.Time) bool {
	for a, q := range p.m {
		if q.waiting() == 0 && (!q.Trusted || now.Sub(q.LastRecv) >= PeerTimeout) {
			delete(p.m, a)
			return true
		}
	}
	return false
}

// tick resends bubbles that are due and gives up on peers that did not
// answer BubbleAttempts of them; it returns how many packets it dropped.
func (p *peers) tick(now time.Time, out []datagram) (dropped int, _ []datagram) {
	for a, q := range p.m {
		if q.waiting() == 0 {
			if !q.Trusted && now.Sub(q.lastBubble) >= PeerTimeout || q.Trusted && now.Sub(q.LastRecv) >= 2*PeerTimeout {
				delete(p.m, a)
			}
			continue
		}
		if now.Sub(q.lastBubble) < BubbleInterval {
			continue
		}
		if q.bubbles < BubbleAttempts {
			out = p.bubble(now, q, out)
			continue
		}
		dropped += q.waiting()
		p.dropQueue(q)
	}
	return dropped, out
}

func (p *peers) dropQueue(q *peer) {
	p.queuedBytes -= q.queuedBytes
	q.queue, q.inQueue, q.queuedBytes, q.Queued, q.bubbles = nil, nil, 0, 0, 0
}

// trust marks q heard from now and appends its queues: what waited for
// it to its mapped address, what came from it to the TUN device.
func (p *peers) trust(now time.Time, q *peer, out []datagram) []datagram {
	q.Trusted, q.LastRecv = true, now
	for _, b := range q.queue {
		out = append(out, datagram{To: q.Mapped, Payload: b})
	}
	for _, b := range q.inQueue {
		out = append(out, datagram{Payload: b})
	}
	p.dropQueue(q)
	return out
}

// verdict is what to do with a packet from the UDP socket.
type verdict uint8

const (
	drop        verdict = iota
	deliver             // write the IPv6 packet to the TUN device
	consumed            // handled here (a bubble)
	toQualifier         // a packet from the server for the qualifier (an RA)
)

// inbound checks a Teredo packet from the UDP source from (RFC 4380
// section 5.2.3). It returns the offset of the IPv6 packet within pkt
// and what to do with it, and appends what to send to out: a direct
// bubble answering an indirect one, and the queue of a peer that has
// just become trusted.
func (p *peers) inbound(now time.Time, from netip.AddrPort, pkt []byte, out []datagram) (off int, v verdict, r Reason, _ []datagram) {
	var origin netip.AddrPort
	// The authentication header (RAs) and the origin indication
	// (RFC 4380 section 5.1.1), then the IPv6 packet.
	if len(pkt) >= 2 && pkt[0] == 0 && pkt[1] == 1 {
		if len(pkt) < 13 {
			return 0, drop, Malformed, out
		}
		off = 13 + int(pkt[2]) + int(pkt[3])
	}
	if len(pkt) >= off+2 && pkt[off] == 0 && pkt[off+1] == 0 {
		if len(pkt) < off+8 {
			return 0, drop, Malformed, out
		}
		o, err := wire.ParsePacket(append(pkt[off:off+8:off+8], bubbleTail[:]...))
		if err != nil {
			return 0, drop, Malformed, out
		}
		origin = o.Origin
		off += 8
	}
	ip := pkt[min(off, len(pkt)):]
	if !validIPv6(ip) {
		return 0, drop, Malformed, out
	}
	src, dst := ipv6Src(ip), ipv6Dst(ip)
	bubble := ip[6] == wire.ProtoNone && binary.BigEndian.Uint16(ip[4:6]) == 0
	fromServer := !p.relay && from.Port() == p.port && (from.Addr() == p.server || from.Addr() == p.server.Next())
	if fromServer {
		if !p.addr.IsValid() || ip[6] == wire.ProtoICMPv6 && dst.IsLinkLocalUnicast() {
			return off, toQualifier, 0, out
		}
		if dst != p.addr {
			return off, drop, DstNotOurs, out
		}
		if bubble {
			// An indirect bubble: a peer asks us to open our NAT to it
			// (RFC 4380 section 5.2.3): a direct bubble to its origin.
			if origin.IsValid() {
				b, _ := wire.Bubble(p.addr, src).Append(nil)
				out = append(out, datagram{To: origin, Payload: b})
			}
			return off, consumed, 0, out
		}
		return off, deliver, 0, out
	}
	if !p.relay && !p.addr.IsValid() {
		return off, drop, NotQualified, out
	}
	if !wire.Prefix.Contains(src) {
		if p.relay {
			return off, drop, SrcNotTeredo, out
		}
		v, r, out := p.inboundNative(now, from, ip, bubble, out)
		return off, v, r, out
	}
	// RFC 4380 sections 5.2.3 and 5.4.2: the source names where it
	// came from.
	a, _ := wire.ParseAddress(src)
	if a.Mapped != from {
		return off, drop, SrcMismatch, out
	}
	if p.relay {
		if wire.Prefix.Contains(dst) {
			return off, drop, DstTeredo, out
		}
	} else if dst != p.addr {
		return off, drop, DstNotOurs, out
	}
	q := p.m[src]
	if q == nil {
		if len(p.m) >= MaxPeers && !p.evict(now) {
			return off, drop, TooManyPeers, out
		}
		q = &peer{Peer: Peer{Addr: src, Mapped: a.Mapped}, server: a.Server, cone: a.Cone()}
		p.m[src] = q
	}
	out = p.trust(now, q, out)
	if bubble {
		return off, consumed, 0, out
	}
	return off, deliver, 0, out
}

// bubbleTail completes an origin indication into a packet that
// wire.ParsePacket accepts, to decode the origin with its codec.
var bubbleTail = func() (b [40]byte) {
	b[0] = 0x60
	b[6] = wire.ProtoNone
	return b
}()

// snapshot lists the peers.
func (p *peers) snapshot() []Peer {
	out := make([]Peer, 0, len(p.m))
	for _, q := range p.m {
		out = append(out, q.Peer)
	}
	return out
}
