package teredo

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"gateway/sixto4/teredo/wire"
)

var (
	nativeHost = netip.MustParseAddr("2001:db8:2::2")
	relayAt    = netip.MustParseAddrPort("203.0.113.66:3544")
	otherRelay = netip.MustParseAddrPort("203.0.113.67:3544")
)

// echoRequestIn checks that g is our echo test for dst, sent to our
// server, and returns the reply the native host would send.
func echoRequestIn(t *testing.T, g datagram, ours, dst netip.Addr) []byte {
	t.Helper()
	if g.To != netip.AddrPortFrom(ourServer, wire.Port) {
		t.Fatalf("echo test sent to %v, want our server", g.To)
	}
	p, err := wire.ParsePacket(g.Payload)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := p.IPv6.ICMPv6Message()
	if err != nil {
		t.Fatalf("echo test: %v", err)
	}
	if p.IPv6.Src != ours || p.IPv6.Dst != dst || msg[0] != typeEchoRequest || msg[1] != 0 || len(msg) != 4+echoLen {
		t.Fatalf("echo test %+v; want an echo request from %v to %v", p.IPv6, ours, dst)
	}
	reply := append([]byte{typeEchoReply, 0, 0, 0}, msg[4:]...)
	ip, err := wire.ICMPv6(dst, ours, 60, reply)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ip.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEchoTestFindsRelay: a packet to a native host waits for the echo
// test through our server; the reply names the relay, the queue goes
// there, and afterwards only that relay may speak for the host.
func TestEchoTestFindsRelay(t *testing.T) {
	f := newFixture(t, false)
	pkt := packet(t, f.ours, nativeHost, 6, 100)
	to, r, out := f.p.outbound(f.now, pkt, nil)
	if to.IsValid() || r != 0 || len(out) != 1 {
		t.Fatalf("first packet: to %v, drop %v, sent %d; want queued with one echo test", to, r, len(out))
	}
	reply := echoRequestIn(t, out[0], f.ours, nativeHost)
	if to, r, out := f.p.outbound(f.now, pkt, nil); to.IsValid() || r != 0 || len(out) != 0 {
		t.Fatalf("second packet: to %v, drop %v, sent %d; want queued, no new test", to, r, len(out))
	}
	// The repeat after BubbleInterval carries the same nonce.
	_, out = f.p.tick(f.now.Add(BubbleInterval), nil)
	if len(out) != 1 || !bytes.Equal(echoRequestIn(t, out[0], f.ours, nativeHost), reply) {
		t.Fatalf("repeat: %d datagrams, or another nonce", len(out))
	}

	// A reply with another nonce names no relay: it waits like any
	// packet from an unknown relay.
	bad := bytes.Clone(reply)
	bad[len(bad)-1] ^= 1
	if _, v, r, _ := f.p.inbound(f.now, otherRelay, bad, nil); v != consumed || r != 0 || f.p.m[nativeHost].Mapped.IsValid() {
		t.Fatalf("wrong nonce: verdict %v, drop %v, peer %+v; want queued, no relay", v, r, f.p.m[nativeHost].Peer)
	}

	_, v, r, out := f.p.inbound(f.now, relayAt, reply, nil)
	if v != consumed || r != 0 {
		t.Fatalf("echo reply: verdict %v, drop %v; want consumed", v, r)
	}
	q := f.p.m[nativeHost]
	if !q.Native || !q.Trusted || q.Mapped != relayAt || q.Queued != 0 || f.p.queuedBytes != 0 {
		t.Errorf("peer %+v, %d bytes queued; want native, trusted through %v, empty", q.Peer, f.p.queuedBytes, relayAt)
	}
	// Out: both queued packets to the relay; in: the wrong-nonce reply
	// that waited, to the TUN device.
	var toRelay, toTun int
	for _, g := range out {
		switch {
		case g.To == relayAt && bytes.Equal(g.Payload, pkt):
			toRelay++
		case !g.To.IsValid() && bytes.Equal(g.Payload[tunOffset:], bad):
			toTun++
		default:
			t.Errorf("unexpected datagram to %v", g.To)
		}
	}
	if toRelay != 2 || toTun != 1 {
		t.Errorf("flushed %d to the relay, %d to the TUN device; want 2 and 1", toRelay, toTun)
	}

	now := f.now.Add(time.Second)
	if to, r, out := f.p.outbound(now, pkt, nil); to != relayAt || r != 0 || len(out) != 0 {
		t.Errorf("after the test: to %v, drop %v, sent %d; want direct to %v", to, r, len(out), relayAt)
	}
	data := packet(t, nativeHost, f.ours, 6, 20)
	if _, v, r, _ := f.p.inbound(now, relayAt, data, nil); v != deliver {
		t.Errorf("from the relay: verdict %v, drop %v; want deliver", v, r)
	}
	if _, v, r, _ := f.p.inbound(now, otherRelay, data, nil); v != drop || r != UnknownRelay {
		t.Errorf("from another relay: verdict %v, drop %v; want %v", v, r, UnknownRelay)
	}
	if _, v, r, _ := f.p.inbound(now, relayAt, bubble(t, nativeHost, f.ours), nil); v != consumed || r != 0 {
		t.Errorf("the relay's bubble: verdict %v, drop %v; want consumed", v, r)
	}
}

// TestEchoTestGivesUp: with no reply the test is repeated
// BubbleAttempts times, then the queue is dropped.
func TestEchoTestGivesUp(t *testing.T) {
	f := newFixture(t, false)
	_, _, out := f.p.outbound(f.now, packet(t, f.ours, nativeHost, 6, 100), nil)
	sent, dropped := len(out), 0
	now := f.now
	for range 10 {
		now = now.Add(BubbleInterval)
		d, out := f.p.tick(now, nil)
		sent += len(out)
		dropped += d
	}
	if sent != BubbleAttempts || dropped != 1 || f.p.queuedBytes != 0 {
		t.Errorf("sent %d tests, dropped %d, %d bytes queued; want %d, 1, 0", sent, dropped, f.p.queuedBytes, BubbleAttempts)
	}
}

// TestRelayFirst: a native host's packet arrives from a relay we do not
// know (the relay found us through our server's indirect bubble): it
// waits for the echo test, and the reply through the same relay lets it
// in.
func TestRelayFirst(t *testing.T) {
	f := newFixture(t, false)
	// The relay's indirect bubble through our server: a direct bubble
	// back to it.
	_, v, _, out := f.p.inbound(f.now, netip.AddrPortFrom(ourServer, wire.Port), withOrigin(t, relayAt, bubble(t, nativeHost, f.ours)), nil)
	if v != consumed || len(out) != 1 || out[0].To != relayAt {
		t.Fatalf("indirect bubble: verdict %v, sent %+v; want a direct bubble to %v", v, out, relayAt)
	}
	data := packet(t, nativeHost, f.ours, 58, 16)
	_, v, r, out := f.p.inbound(f.now, relayAt, data, nil)
	if v != consumed || r != 0 || len(out) != 1 {
		t.Fatalf("first packet: verdict %v, drop %v, sent %d; want queued with an echo test", v, r, len(out))
	}
	reply := echoRequestIn(t, out[0], f.ours, nativeHost)
	_, v, r, out = f.p.inbound(f.now, relayAt, reply, nil)
	if v != consumed || r != 0 || len(out) != 1 || out[0].To.IsValid() || !bytes.Equal(out[0].Payload[tunOffset:], data) {
		t.Fatalf("echo reply: verdict %v, drop %v, sent %+v; want the waiting packet to the TUN device", v, r, out)
	}
	if to, _, _ := f.p.outbound(f.now, packet(t, f.ours, nativeHost, 58, 16), nil); to != relayAt {
		t.Errorf("answer goes to %v, want %v", to, relayAt)
	}
}
