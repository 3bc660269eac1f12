package teredo

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/sixto4/teredo/wire"
)

var (
	ourServer  = netip.MustParseAddr("203.0.113.10")
	peerServer = netip.MustParseAddr("203.0.113.20")
	ourMapped  = netip.MustParseAddrPort("198.51.100.2:40000")
	peerMapped = netip.MustParseAddrPort("192.0.2.130:50000")
)

func teredoAddr(t testing.TB, server netip.Addr, cone bool, mapped netip.AddrPort) netip.Addr {
	t.Helper()
	a, err := wire.Address{Server: server, Flags: wire.Flags(cone, 0x1234), Mapped: mapped}.IP()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func packet(t testing.TB, src, dst netip.Addr, next uint8, payload int) []byte {
	t.Helper()
	b, err := wire.IPv6{NextHeader: next, HopLimit: 64, Src: src, Dst: dst, Payload: make([]byte, payload)}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bubble(t testing.TB, src, dst netip.Addr) []byte {
	t.Helper()
	b, _ := wire.Bubble(src, dst).Append(nil)
	return b
}

// withOrigin prefixes pkt with an origin indication, as a server relays it.
func withOrigin(t testing.TB, origin netip.AddrPort, pkt []byte) []byte {
	t.Helper()
	ip, err := wire.ParseIPv6(pkt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.Packet{Origin: origin, IPv6: ip}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	p          *peers
	ours, peer netip.Addr
	now        time.Time
}

func newFixture(t *testing.T, peerCone bool) *fixture {
	f := &fixture{p: newPeers(wire.Port), now: time.Unix(1e9, 0)}
	f.ours = teredoAddr(t, ourServer, false, ourMapped)
	f.peer = teredoAddr(t, peerServer, peerCone, peerMapped)
	f.p.reset(f.ours, ourServer)
	return f
}

func TestOutboundBubblesAndQueue(t *testing.T) {
	for _, cone := range []bool{false, true} {
		t.Run(map[bool]string{false: "restricted peer", true: "cone peer"}[cone], func(t *testing.T) {
			f := newFixture(t, cone)
			pkt := packet(t, f.ours, f.peer, 58, 64)
			to, r, out := f.p.outbound(f.now, pkt, nil)
			if to.IsValid() || r != 0 {
				t.Fatalf("first packet: to %v, drop %v; want queued", to, r)
			}
			want := []datagram{{To: peerMapped, Payload: bubble(t, f.ours, f.peer)}}
			if !cone {
				// Restricted: an indirect bubble through its server too.
				want = append(want, datagram{To: netip.AddrPortFrom(peerServer, wire.Port), Payload: bubble(t, f.ours, f.peer)})
			}
			if d := cmp.Diff(want, out, addrPortEq); d != "" {
				t.Errorf("bubbles (-want +got):\n%s", d)
			}
			// A second packet within BubbleInterval: queued, no bubble.
			if _, r, out := f.p.outbound(f.now.Add(time.Second), pkt, nil); r != 0 || len(out) != 0 {
				t.Errorf("second packet: drop %v, sent %d; want queued silently", r, len(out))
			}
			if q := f.p.m[f.peer]; q.Queued != 2 || q.Trusted {
				t.Errorf("peer %+v; want 2 queued, untrusted", q.Peer)
			}
		})
	}
}

func TestQueueBounds(t *testing.T) {
	f := newFixture(t, false)
	small := packet(t, f.ours, f.peer, 58, 8)
	for i := range QueuePeerPackets {
		if _, r, _ := f.p.outbound(f.now, small, nil); r != 0 {
			t.Fatalf("packet %d dropped: %v", i, r)
		}
	}
	if _, r, _ := f.p.outbound(f.now, small, nil); r != QueueFull {
		t.Errorf("packet %d: drop %v, want %v", QueuePeerPackets+1, r, QueueFull)
	}

	// Bytes per peer: a few big packets fill it before the count does.
	f = newFixture(t, false)
	big := packet(t, f.ours, f.peer, 58, MTU-40)
	n := 0
	for ; n < QueuePeerPackets; n++ {
		if _, r, _ := f.p.outbound(f.now, big, nil); r != 0 {
			break
		}
	}
	if n != QueuePeerBytes/MTU {
		t.Errorf("queued %d packets of %d bytes, want %d (QueuePeerBytes)", n, MTU, QueuePeerBytes/MTU)
	}

	// Total bytes: many peers together stop at QueueTotalBytes (packets
	// a few milliseconds apart: under the rate limit).
	f = newFixture(t, false)
	total := 0
	now := f.now
	for i := range 64 {
		dst := teredoAddr(t, peerServer, false, netip.AddrPortFrom(peerMapped.Addr(), uint16(1000+i)))
		for range QueuePeerPackets {
			now = now.Add(5 * time.Millisecond)
			if _, r, _ := f.p.outbound(now, packet(t, f.ours, dst, 58, MTU-40), nil); r == 0 {
				total += MTU
			}
		}
	}
	if total > QueueTotalBytes || total < QueueTotalBytes-MTU || f.p.queuedBytes != total {
		t.Errorf("queued %d bytes in all (counter %d), want at most %d", total, f.p.queuedBytes, QueueTotalBytes)
	}
}

// TestQueueRate: at most QueueBurst packets start waiting at once, then
// QueueRate a second, however many peers they go to; packets to trusted
// peers are not counted.
func TestQueueRate(t *testing.T) {
	f := newFixture(t, false)
	queued := func(now time.Time, n, port0 int) (ok int, limited int) {
		for i := range n {
			dst := teredoAddr(t, peerServer, false, netip.AddrPortFrom(peerMapped.Addr(), uint16(port0+i)))
			switch _, r, _ := f.p.outbound(now, packet(t, f.ours, dst, 58, 8), nil); r {
			case 0:
				ok++
			case RateLimited:
				limited++
			default:
				t.Fatalf("packet to %v: %v", dst, r)
			}
		}
		return ok, limited
	}
	if ok, limited := queued(f.now, 300, 2000); ok != QueueBurst || limited != 300-QueueBurst {
		t.Fatalf("a burst of 300 new destinations: %d queued, %d rate-limited; want %d queued", ok, limited, QueueBurst)
	}
	if ok, _ := queued(f.now.Add(time.Second/2), 300, 3000); ok != QueueRate/2 {
		t.Fatalf("half a second later: %d queued, want %d", ok, QueueRate/2)
	}
	// From unknown relays too: each would cost an echo test.
	for i := range 2 * QueueBurst {
		src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 9, byte(i >> 8), byte(i), 14: 0, 15: 1})
		pkt := packet(t, src, f.ours, 58, 8)
		_, v, r, _ := f.p.inbound(f.now.Add(time.Second/2), netip.MustParseAddrPort("198.51.100.99:3544"), pkt, nil)
		if v != drop || r != RateLimited {
			t.Fatalf("packet %d from an unknown relay with the bucket empty: %v %v, want rate-limited", i, v, r)
		}
	}
}

func TestBubbleAnswerTrustsAndFlushes(t *testing.T) {
	f := newFixture(t, false)
	pkt := packet(t, f.ours, f.peer, 58, 64)
	f.p.outbound(f.now, pkt, nil)
	f.p.outbound(f.now, pkt, nil)

	// The peer's bubble from another address and port: not trusted.
	_, v, r, out := f.p.inbound(f.now, netip.MustParseAddrPort("192.0.2.130:50001"), bubble(t, f.peer, f.ours), nil)
	if v != drop || r != SrcMismatch || len(out) != 0 || f.p.m[f.peer].Trusted {
		t.Fatalf("bubble from the wrong port: verdict %v, drop %v, sent %d; want dropped src-mismatch", v, r, len(out))
	}

	// From its mapped address: trusted, queue flushed, bubble consumed.
	_, v, r, out = f.p.inbound(f.now, peerMapped, bubble(t, f.peer, f.ours), nil)
	if v != consumed || r != 0 {
		t.Fatalf("bubble: verdict %v, drop %v; want consumed", v, r)
	}
	want := []datagram{{To: peerMapped, Payload: pkt}, {To: peerMapped, Payload: pkt}}
	if d := cmp.Diff(want, out, addrPortEq); d != "" {
		t.Errorf("flushed queue (-want +got):\n%s", d)
	}
	if q := f.p.m[f.peer]; !q.Trusted || q.Queued != 0 || f.p.queuedBytes != 0 {
		t.Errorf("peer %+v, %d bytes queued in all; want trusted, empty", q.Peer, f.p.queuedBytes)
	}

	// Trusted: packets go direct, with no bubble.
	to, r, out := f.p.outbound(f.now.Add(time.Second), pkt, nil)
	if to != peerMapped || r != 0 || len(out) != 0 {
		t.Errorf("to a trusted peer: to %v, drop %v, sent %d; want direct to %v", to, r, len(out), peerMapped)
	}
	// Data from it is delivered.
	if _, v, r, _ := f.p.inbound(f.now.Add(time.Second), peerMapped, packet(t, f.peer, f.ours, 58, 8), nil); v != deliver {
		t.Errorf("data from a trusted peer: verdict %v, drop %v; want deliver", v, r)
	}
	// Silent for PeerTimeout: bubbles again.
	to, _, out = f.p.outbound(f.now.Add(time.Second+PeerTimeout), pkt, nil)
	if to.IsValid() || len(out) != 2 {
		t.Errorf("after PeerTimeout: to %v, sent %d; want queued with two bubbles", to, len(out))
	}
}

func TestIndirectBubble(t *testing.T) {
	f := newFixture(t, false)
	// Miredo sends its indirect bubbles from a link-local address.
	ll := netip.MustParseAddr("fe80::1234")
	in := withOrigin(t, peerMapped, bubble(t, ll, f.ours))
	_, v, r, out := f.p.inbound(f.now, netip.AddrPortFrom(ourServer, wire.Port), in, nil)
	if v != consumed || r != 0 {
		t.Fatalf("indirect bubble: verdict %v, drop %v; want consumed", v, r)
	}
	want := []datagram{{To: peerMapped, Payload: bubble(t, f.ours, ll)}}
	if d := cmp.Diff(want, out, addrPortEq); d != "" {
		t.Errorf("answer (-want +got):\n%s", d)
	}
	// The same from someone else than the server: dropped.
	if _, v, r, _ := f.p.inbound(f.now, netip.MustParseAddrPort("203.0.113.99:3544"), in, nil); v != drop || r != UnknownRelay {
		t.Errorf("bubble with origin from a stranger: verdict %v, drop %v; want %v", v, r, UnknownRelay)
	}
}

func TestBubblesGiveUp(t *testing.T) {
	f := newFixture(t, false)
	f.p.outbound(f.now, packet(t, f.ours, f.peer, 58, 64), nil)
	sent := 2
	now := f.now
	dropped := 0
	for range 10 {
		now = now.Add(BubbleInterval)
		var out []datagram
		var d int
		d, out = f.p.tick(now, nil)
		dropped += d
		sent += len(out)
	}
	if sent != 2*BubbleAttempts || dropped != 1 {
		t.Errorf("sent %d bubbles, dropped %d packets; want %d and 1", sent, dropped, 2*BubbleAttempts)
	}
	if f.p.queuedBytes != 0 {
		t.Errorf("%d bytes still queued", f.p.queuedBytes)
	}
}

func TestDrops(t *testing.T) {
	f := newFixture(t, false)
	native := netip.MustParseAddr("2001:db8::1")
	other := teredoAddr(t, ourServer, false, netip.MustParseAddrPort("198.51.100.3:1"))
	outCases := []struct {
		name string
		pkt  []byte
		want Reason
	}{
		{"multicast destination", packet(t, f.ours, netip.MustParseAddr("ff0e::1"), 58, 8), NoRelay},
		{"not our source", packet(t, other, f.peer, 58, 8), NotOurs},
		{"short", []byte{0x60, 0, 0}, Malformed},
		{"payload length past the end", packet(t, f.ours, f.peer, 58, 8)[:44], Malformed},
	}
	for _, c := range outCases {
		t.Run("out/"+c.name, func(t *testing.T) {
			if _, r, _ := f.p.outbound(f.now, c.pkt, nil); r != c.want {
				t.Errorf("drop %v, want %v", r, c.want)
			}
		})
	}
	inCases := []struct {
		name string
		from netip.AddrPort
		pkt  []byte
		want Reason
	}{
		{"native bubble from a stranger", peerMapped, bubble(t, native, f.ours), UnknownRelay},
		{"source names another mapping", netip.MustParseAddrPort("192.0.2.131:50000"), packet(t, f.peer, f.ours, 58, 8), SrcMismatch},
		{"not to us", peerMapped, packet(t, f.peer, other, 58, 8), DstNotOurs},
		{"from the server, not to us", netip.AddrPortFrom(ourServer, wire.Port), packet(t, f.peer, other, 58, 8), DstNotOurs},
		{"truncated origin", peerMapped, []byte{0, 0, 1, 2}, Malformed},
		{"short auth", peerMapped, []byte{0, 1, 0, 0, 9}, Malformed},
		{"auth longer than packet", peerMapped, []byte{0, 1, 200, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Malformed},
	}
	for _, c := range inCases {
		t.Run("in/"+c.name, func(t *testing.T) {
			if _, v, r, _ := f.p.inbound(f.now, c.from, c.pkt, nil); v != drop || r != c.want {
				t.Errorf("verdict %v, drop %v; want dropped %v", v, r, c.want)
			}
		})
	}
	if _, r, _ := newPeers(wire.Port).outbound(f.now, packet(t, f.ours, f.peer, 58, 8), nil); r != NotQualified {
		t.Errorf("unqualified: drop %v, want %v", r, NotQualified)
	}
}

func FuzzInbound(f *testing.F) {
	ours := teredoAddr(f, ourServer, false, ourMapped)
	peer := teredoAddr(f, peerServer, false, peerMapped)
	f.Add(bubble(f, peer, ours), false)
	f.Add(withOrigin(f, peerMapped, bubble(f, peer, ours)), true)
	f.Add(packet(f, peer, ours, 6, 20), false)
	// A native host's packet (through a relay) and an echo reply.
	f.Add(packet(f, netip.MustParseAddr("2001:db8:2::2"), ours, 6, 20), false)
	reply := packet(f, netip.MustParseAddr("2001:db8:2::2"), ours, 58, 4+echoLen)
	reply[40] = typeEchoReply
	f.Add(reply, false)
	f.Fuzz(func(t *testing.T, b []byte, fromServer bool) {
		p := newPeers(wire.Port)
		p.reset(ours, ourServer)
		from := peerMapped
		if fromServer {
			from = netip.AddrPortFrom(ourServer, wire.Port)
		}
		off, v, r, _ := p.inbound(time.Unix(1e9, 0), from, b, nil)
		if v == deliver || v == toQualifier {
			if r != 0 || !validIPv6(b[off:]) {
				t.Fatalf("verdict %v with drop %v on an invalid packet at %d", v, r, off)
			}
		}
		if v == drop && r == 0 {
			t.Fatal("dropped without a reason")
		}
	})
}

func BenchmarkTrustedPath(b *testing.B) {
	p := newPeers(wire.Port)
	ours := teredoAddr(b, ourServer, false, ourMapped)
	peer := teredoAddr(b, peerServer, false, peerMapped)
	p.reset(ours, ourServer)
	now := time.Unix(1e9, 0)
	p.inbound(now, peerMapped, bubble(b, peer, ours), nil)
	outPkt := packet(b, ours, peer, 6, 1200)
	inPkt := packet(b, peer, ours, 6, 1200)
	out := make([]datagram, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		if to, r, _ := p.outbound(now, outPkt, out[:0]); !to.IsValid() || r != 0 {
			b.Fatal("not direct")
		}
		if _, v, _, _ := p.inbound(now, peerMapped, inPkt, out[:0]); v != deliver {
			b.Fatal("not delivered")
		}
	}
}

var addrPortEq = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
