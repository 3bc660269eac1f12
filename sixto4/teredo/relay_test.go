package teredo

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/sixto4/teredo/wire"
)

var native = netip.MustParseAddr("2001:db8:2::2")

func newRelayPeers() *peers {
	p := newPeers(wire.Port)
	p.relay = true
	return p
}

// TestRelayOutbound: a native packet to a Teredo peer waits for the
// peer's bubble; the bubbles come from the native source (RFC 4380
// section 5.4.1), directly and, the peer being restricted, through its
// server; the peer's bubble flushes the queue and later packets go
// directly.
func TestRelayOutbound(t *testing.T) {
	p := newRelayPeers()
	now := time.Unix(1e9, 0)
	peer := teredoAddr(t, peerServer, false, peerMapped)
	pkt := packet(t, native, peer, 58, 64)
	to, r, out := p.outbound(now, pkt, nil)
	if to.IsValid() || r != 0 {
		t.Fatalf("first packet: to %v, drop %v; want queued", to, r)
	}
	want := []datagram{
		{To: peerMapped, Payload: bubble(t, native, peer)},
		{To: netip.AddrPortFrom(peerServer, wire.Port), Payload: bubble(t, native, peer)},
	}
	if d := cmp.Diff(want, out, addrPortEq); d != "" {
		t.Errorf("bubbles (-want +got):\n%s", d)
	}
	// The peer answers from its mapped address: trusted, queue flushed.
	_, v, r, out := p.inbound(now, peerMapped, bubble(t, peer, native), nil)
	if v != consumed || r != 0 {
		t.Errorf("peer's bubble: verdict %v, drop %v; want consumed", v, r)
	}
	if d := cmp.Diff([]datagram{{To: peerMapped, Payload: pkt}}, out, addrPortEq); d != "" {
		t.Errorf("flushed (-want +got):\n%s", d)
	}
	if to, r, out := p.outbound(now, pkt, nil); to != peerMapped || r != 0 || len(out) != 0 {
		t.Errorf("after trust: to %v, drop %v, sent %d; want direct to %v", to, r, len(out), peerMapped)
	}
	if _, r, _ := p.outbound(now, packet(t, native, native, 58, 8), nil); r != DstNotTeredo {
		t.Errorf("native destination: drop %v, want %v", r, DstNotTeredo)
	}
}

// TestRelayInboundChecks: RFC 4380 section 5.4.2.
func TestRelayInboundChecks(t *testing.T) {
	peer := teredoAddr(t, peerServer, false, peerMapped)
	other := teredoAddr(t, peerServer, false, ourMapped)
	for _, tc := range []struct {
		name string
		from netip.AddrPort
		pkt  []byte
		v    verdict
		r    Reason
	}{
		{"from its mapped address", peerMapped, packet(t, peer, native, 58, 8), deliver, 0},
		{"other port", netip.AddrPortFrom(peerMapped.Addr(), 1), packet(t, peer, native, 58, 8), drop, SrcMismatch},
		{"other address", ourMapped, packet(t, peer, native, 58, 8), drop, SrcMismatch},
		{"native source", peerMapped, packet(t, native, native, 58, 8), drop, SrcNotTeredo},
		{"to a Teredo address", peerMapped, packet(t, peer, other, 58, 8), drop, DstTeredo},
		{"from a server's port", netip.AddrPortFrom(peerServer, wire.Port), packet(t, peer, native, 58, 8), drop, SrcMismatch},
		{"garbage", peerMapped, []byte{0x60, 1, 2}, drop, Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRelayPeers()
			_, v, r, _ := p.inbound(time.Unix(1e9, 0), tc.from, tc.pkt, nil)
			if v != tc.v || r != tc.r {
				t.Errorf("verdict %v, drop %v; want %v, %v", v, r, tc.v, tc.r)
			}
			if tc.v == deliver && len(p.m) != 1 {
				t.Errorf("peers %v; want the sender trusted", p.snapshot())
			}
		})
	}
}

// FuzzRelayInbound: whatever arrives, a delivered packet is a whole
// IPv6 packet from a Teredo source naming the UDP source, to a native
// destination.
func FuzzRelayInbound(f *testing.F) {
	peer := teredoAddr(f, peerServer, false, peerMapped)
	f.Add(bubble(f, peer, native))
	f.Add(withOrigin(f, peerMapped, packet(f, peer, native, 6, 20)))
	f.Add(packet(f, peer, native, 6, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := newRelayPeers()
		off, v, r, out := p.inbound(time.Unix(1e9, 0), peerMapped, b, nil)
		switch v {
		case deliver, consumed:
			ip := b[off:]
			a, err := wire.ParseAddress(ipv6Src(ip))
			if r != 0 || !validIPv6(ip) || err != nil || a.Mapped != peerMapped || wire.Prefix.Contains(ipv6Dst(ip)) {
				t.Fatalf("verdict %v (drop %v) on a packet the relay must refuse", v, r)
			}
		case drop:
			if r == 0 {
				t.Fatal("dropped without a reason")
			}
		default:
			t.Fatalf("verdict %v from a relay", v)
		}
		if len(out) != 0 {
			t.Fatalf("sent %d datagrams on a first packet", len(out))
		}
	})
}
